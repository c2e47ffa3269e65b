"""The package's layers (docs/architecture.md): every import statement, at module level or inside a function,
points to the importing module's own layer or a lower one, and no modules import each other in a circle."""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "modelladder"

# lowest first; a module belongs to the layer of its first dotted part below modelladder
LAYERS = [
    {"errors", "schema", "openmp", "registry", "__init__"},
    {"config", "runs"},
    {"data"},
    {"models"},
    {"train"},
    {"serve"},
    {"evaluate"},
    {"tasks"},
    {"explain", "audit", "report"},
    {"verbs"},
    {"cli", "__main__", "api"},  # api: the Python API; the package's __init__ loads it by name, lazily
]
LEVEL = {part: i for i, layer in enumerate(LAYERS) for part in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The modelladder modules that `path` imports (`from modelladder.x import y` counts y when it is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "modelladder":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "modelladder"}
    return {name for name in found if name in MODULES}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def level(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    if part not in LEVEL:
        raise AssertionError(f"{module} is in no layer: add '{part}' to LAYERS here and to docs/architecture.md")
    return LEVEL[part]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    upward = sorted(d for d in GRAPH[module] if level(d) > level(module))
    assert not upward, f"{module} (layer {level(module)}) imports higher layers: {upward}"


def test_no_import_circles():
    done, path, circles = set(), [], []

    def visit(node):
        if node in path:
            circles.append(path[path.index(node):] + [node])
            return
        if node in done:
            return
        path.append(node)
        for dep in sorted(GRAPH[node]):
            visit(dep)
        path.pop()
        done.add(node)

    for module in sorted(GRAPH):
        visit(module)
    # a package's __init__ re-exporting one of its own modules is not a circle
    real = [c for c in circles if not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in pairwise(c))]
    assert not real, "import circles: " + "; ".join(" -> ".join(c) for c in real)


def test_the_layer_check_bites(tmp_path):
    """A lower layer importing a higher one is found (guards the walker itself)."""
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from modelladder.verbs.train import train_run\n")
    assert "modelladder.verbs.train" in imports(bad)
    assert level("modelladder.verbs.train") > level("modelladder.train.loop")
