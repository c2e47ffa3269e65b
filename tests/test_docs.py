"""The documentation: the mkdocs site under docs/ builds with --strict, and README.md's links resolve.

mkdocs.yml turns a link to a missing page or anchor, and a page left out of the nav, into warnings, and
strict turns warnings into errors. README.md is outside mkdocs' view (docs_dir is docs/), so its links are
checked here. Nothing is skipped: a missing mkdocs fails the build test.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """Markdown without fenced code blocks (a `[x](y)` inside a code block is not a link)."""
    return FENCE.sub("", text)


def _links(text: str) -> list[str]:
    prose = _prose(text)
    return LINK.findall(prose) + REFERENCE.findall(prose)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(markdown: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(_prose(markdown.read_text(encoding="utf-8")))}


def _readme_problems() -> list[str]:
    problems = []
    text = README.read_text(encoding="utf-8")
    for target in _links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (README.parent / path).resolve() if path else README
        if not file.exists():
            problems.append(f"{target}: {file.relative_to(REPO) if file.is_relative_to(REPO) else file} does not exist")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            problems.append(f"{target}: no heading with anchor #{anchor} in {file.relative_to(REPO)}")
    return problems


def test_mkdocs_site_builds_strict(tmp_path):
    """`mkdocs build --strict` from this environment: a broken link or anchor, or a page not in the nav, fails."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict",
               "--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, f"{' '.join(command)} failed (exit {done.returncode}):\n{output}"
    assert (tmp_path / "site" / "index.html").is_file(), output


def test_mkdocs_config_fails_on_broken_links_and_omitted_pages():
    """The settings that make the build above bite stay on (mkdocs 1.6 `validation:`; strict: warn -> error)."""
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config.get("strict") is True
    validation = config.get("validation", {})
    for group, checks in {"nav": ("omitted_files", "not_found"),
                          "links": ("not_found", "anchors", "absolute_links")}.items():
        for check in checks:
            level = validation.get(group, {}).get(check)
            assert level == "warn", f"mkdocs.yml validation.{group}.{check} is {level!r}, not 'warn'"


def test_readme_relative_links_resolve():
    """Every relative link in README.md (docs/*.md and others) names a file that exists, and an anchor it has."""
    links = _links(README.read_text(encoding="utf-8"))
    assert links, "no links found in README.md: the link pattern no longer matches"
    problems = _readme_problems()
    assert not problems, "broken links in README.md:\n" + "\n".join(problems)


def test_readme_links_every_docs_page():
    """The README is the way in: each page under docs/ is linked from it."""
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _links(README.read_text(encoding="utf-8"))}
    missing = sorted(str(p.relative_to(REPO)) for p in DOCS.rglob("*.md") if p.resolve() not in linked)
    assert not missing, f"docs pages not linked from README.md: {missing}"


def test_readme_tables_are_copies_of_the_docs():
    """The README's result tables are kept verbatim from docs/ (the measured figures live there)."""
    docs = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    doc_lines = {line.strip() for line in docs.splitlines()}
    rows = [line.strip() for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    differ = [row for row in rows if row not in doc_lines]
    assert not differ, "README.md table rows not found verbatim in docs/ (update both):\n" + "\n".join(differ)
