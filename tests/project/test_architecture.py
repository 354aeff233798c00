"""The layout docs/architecture.md describes, checked from the source itself."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO

PKG = REPO / "src" / "mnistlab"

# Each folder may import from its own rank and lower ranks, never from a higher one.
RANK = {
    "errors": 0,
    "_version": 0,
    "_io": 0,
    "_imports": 0,
    "data": 1,
    "ops": 1,
    "_runtime": 1,
    "models": 2,
    "runs": 3,
    "train": 4,
    "analysis": 5,
    "serve": 5,
    "bench": 6,
    "cli": 7,
    "__init__": 7,
    "__main__": 7,
}
TOP_LEVEL = {"__init__", "__main__", "_version", "errors", "_io", "_runtime", "_imports"}


def _modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def _home(path: Path) -> str:
    """The folder (or top-level module) a source file belongs to."""
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_homes(path: Path) -> set[str]:
    """The mnistlab folders/modules a file imports from (relative or absolute)."""
    rel = path.relative_to(PKG)
    package = list(rel.parts[:-1])  # the file's package, relative to mnistlab
    homes = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from ..x import y: climb level - 1 packages
                base = package[: len(package) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:  # from . import x at the top level
                    parts = [a.name for a in node.names]
            elif node.module and node.module.split(".")[0] == "mnistlab":
                parts = node.module.split(".")[1:] or [a.name for a in node.names]
            else:
                continue
            homes.add(parts[0])
    return homes


def test_only_the_allowed_modules_sit_at_the_top_level():
    top = {p.stem for p in PKG.glob("*.py")}
    assert top <= TOP_LEVEL, sorted(top - TOP_LEVEL)
    assert len(TOP_LEVEL - {"__init__", "__main__", "_version", "errors"}) <= 3


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_only_point_down_the_layers(path):
    home = _home(path)
    wrong = {h for h in _imported_homes(path) if h in RANK and RANK[h] > RANK[home]}
    assert not wrong, f"{home} imports from higher layers: {sorted(wrong)}"


def test_the_layer_check_sees_a_wrong_way_import(tmp_path, monkeypatch):
    # the check itself can fail: a train module importing analysis is caught
    fake = PKG / "train" / "fitting.py"
    source = "from ..analysis.plots import write_curves\nfrom ..runs import folder\n"
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: source)
    assert _imported_homes(fake) == {"analysis", "runs"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at the top or inside a function
    (a lazy import still makes a circle: each module needs the other to work)."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}

    def known(name: str) -> str:  # mnistlab.models.create_model -> mnistlab.models
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(root.name):
                target = node.module
            else:
                continue
            edges |= {known(f"{target}.{a.name}") for a in node.names}
        graph[name] = edges - {name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, found = {}, {}, [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_modules_import_each_other_in_a_circle():
    assert _circles(_import_graph(PKG)) == []


def test_the_circle_check_sees_a_lazy_circle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from ..b import g\n")
    (pkg / "b.py").write_text("from pkg.sub.a import f\nfrom . import c\n")
    (pkg / "c.py").write_text("import os\n")
    graph = _import_graph(pkg)
    assert graph["pkg.b"] == {"pkg.sub.a", "pkg.c"}
    assert _circles(graph) == [["pkg.b", "pkg.sub.a"]]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_source_file_is_over_400_lines(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400


def test_the_formatter_formats_the_source():
    skipped = [str(p.relative_to(PKG)) for p in _modules() if "fmt: skip" in p.read_text()]
    assert not skipped


def test_no_source_file_is_ignored_by_git():
    # a .gitignore line like "runs/" once hid src/mnistlab/runs/ from every clone
    repo = PKG.parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(repo)) for p in PKG.rglob("*") if p.is_file()]
    files = [f for f in files if "__pycache__" not in f]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *files], cwd=repo, capture_output=True, text=True
    )
    assert proc.returncode == 1, f"ignored by git: {proc.stdout.split()}"


PACKAGES = ["mnistlab", "mnistlab.data", "mnistlab.models", "mnistlab.runs", "mnistlab.serve"]


@pytest.mark.parametrize("package", [*PACKAGES, "mnistlab.train"])
def test_every_exported_name_resolves(package):
    # names load on first use (_imports.lazy_exports): each must lead to a real object
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
        assert name in dir(module)


def test_the_command_line_and_using_a_model_import_no_torch():
    # the small install has no torch: these are what predict and serve load
    code = (
        "import sys, mnistlab.cli.app, mnistlab.serve.predict, mnistlab.serve.numbers, "
        "mnistlab.serve.web.app; print(sorted({m.split('.')[0] for m in sys.modules} "
        "& {'torch', 'matplotlib', 'safetensors', 'onnx', 'torchinfo'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
