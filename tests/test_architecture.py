"""The layers hold: no import cycle, no upward import, no private name used across modules, no cited path missing.

The layers are read from pyproject.toml's import-linter contract (one place); import-linter itself also runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> list[list[str]]:
    """Top layer first; each layer a list of sibling modules or packages."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in cfg if c["type"] == "layers"]
    return [[m.strip() for m in re.split(r"[|:]", layer)] for layer in layers]


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    for i, layer in enumerate(layers):
        if any(module == m or module.startswith(m + ".") for m in layer):
            return i
    return None


def upward_imports(graph, layers) -> list[str]:
    """'a -> b' for every import of a module from a layer above its own (a lower index is higher)."""
    bad = []
    for a in sorted(graph.modules):
        la = _layer_of(a, layers)
        for b in sorted(graph.find_modules_directly_imported_by(a)):
            lb = _layer_of(b, layers)
            if la is not None and lb is not None and lb < la:
                bad.append(f"{a} -> {b}")
    return bad


def import_cycles(graph) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph.modules):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("cilf", include_external_packages=False)


def _package_inits(graph) -> set[str]:
    """Package modules (``cilf.app`` for cilf/app/__init__.py): a package's import of its own submodules is
    not a cycle of the layers' code."""
    return {m for m in graph.modules if (ROOT / m.replace(".", "/") / "__init__.py").is_file()}


def _module_graph(graph):
    """The graph without the edges into and out of package __init__ modules (re-exports)."""
    g = grimp.ImportGraph()
    inits = _package_inits(graph)
    for m in graph.modules:
        g.add_module(m)
    for a in graph.modules:
        for b in graph.find_modules_directly_imported_by(a):
            if a not in inits and b not in inits:
                g.add_import(importer=a, imported=b)
    return g


def test_no_import_cycle(graph):
    assert import_cycles(_module_graph(graph)) == []


def test_no_upward_import(graph):
    assert upward_imports(graph, _layers()) == []


def test_import_linter_contracts_are_kept():
    # In a child process: import-linter calls logging.config.dictConfig, which disables every logger that
    # already exists in this process (cilf.weights among them) and would silence later tests' log lines.
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1]))"
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "pyproject.toml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_checks_catch_a_new_upward_import_or_cycle(graph):
    g = _module_graph(graph)
    g.add_import(importer="cilf.model.fourier", imported="cilf.app.train")
    assert "cilf.model.fourier -> cilf.app.train" in upward_imports(g, _layers())
    assert any("cilf.model.fourier" in c for c in import_cycles(g))


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for path in (ROOT / "cilf").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cilf"):
                bad += [
                    f"{path.relative_to(ROOT)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert bad == []


def test_cited_package_paths_exist():
    """Every ``cilf/...`` or ``tools/...`` path named in the notebooks, docs and README is a real file or folder."""
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "notebooks").glob("[0-9]*.py")]
    missing = set()
    for t in texts:
        for m in re.finditer(r"(?<![\w/.])((?:cilf|tools)/[\w/.-]*\w)", t.read_text()):
            if not (ROOT / m.group(1)).exists():
                missing.add(f"{t.relative_to(ROOT)}: {m.group(1)}")
    assert sorted(missing) == []
