"""Run, ladder and rung names that try to leave the runs folder ('../', absolute paths) are refused
with exit status 2, and nothing is written outside the runs folder."""

from __future__ import annotations

import pytest
import yaml

from modelladder.cli import main

ESCAPES = ["../evil", "../../evil", "/tmp/evil-abs", "a/../../evil", "..", ".", ".hidden", "a/b", "evil\x00"]


def files_outside(tmp_path) -> list:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                  if p.name not in ("run.yaml", "ladder.yaml") and "runs" not in p.relative_to(tmp_path).parts)


@pytest.mark.parametrize("name", ESCAPES)
def test_train_refuses_a_run_name_that_escapes(tmp_path, capsys, name):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"model": {"name": "logreg"}, "data": {"limit": 100}}))
    runs = tmp_path / "deep" / "runs"
    assert main(["train", str(tmp_path / "run.yaml"), "--runs-dir", str(runs), "--name", name]) == 2
    assert "run name must be 1-128 letters, digits" in capsys.readouterr().err
    assert files_outside(tmp_path) == [] and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("where", ["run", "ladder", "rung"])
def test_names_in_configs_that_escape_are_refused(tmp_path, capsys, where):
    if where == "run":
        config = {"name": "../evil", "model": {"name": "logreg"}}
        argv = ["train", str(tmp_path / "run.yaml")]
    else:
        rung = {"name": "../evil" if where == "rung" else "ok", "model": {"name": "logreg"}}
        config = {"name": "../evil" if where == "ladder" else "ok", "data": {"limit": 100}, "rungs": [rung]}
        argv = ["run", str(tmp_path / "run.yaml")]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main([*argv, "--runs-dir", str(tmp_path / "deep" / "runs")]) == 2
    assert "name must be 1-128 letters, digits" in capsys.readouterr().err
    assert files_outside(tmp_path) == [] and not (tmp_path / "evil").exists()
