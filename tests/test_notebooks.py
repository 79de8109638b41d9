"""The notebooks as files: paired sources, parameters, guards, clean outputs. (nbval runs them.)"""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from tools.run_notebooks import coalesce_streams, notebook_sources, strip_churn, sync_inputs

NB = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = notebook_sources(NB)


def _inputs(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_the_numbered_notebooks_exist():
    names = [p.stem[:2] for p in SOURCES]
    assert names[:8] == ["00", "01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_py_and_ipynb_inputs_agree(py):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.exists(), f"{py.name} has no executed {ipynb.name}; run ./run_all.sh"
    assert _inputs(jupytext.read(py)) == _inputs(nbformat.read(ipynb, as_version=4)), (
        f"{ipynb.name} inputs differ from {py.name}: run `python -m tools.run_notebooks sync {py}`"
    )


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_notebook_conventions(py):
    nb = jupytext.read(py)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "FAST = True" in params[0].source and "OUT_DIR = " in params[0].source
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert "google.colab" in code[0], "the first code cell is the Colab install guard"
    body = "\n".join(code)
    assert "OUT_DIR" in body.split("OUT_DIR = ", 1)[1], "figures go through OUT_DIR"
    assert nb.cells[0].cell_type == "markdown"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_committed_outputs_have_no_stderr_and_no_papermill_churn(py):
    nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
    assert "papermill" not in nb.metadata
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata
        for out in cell.get("outputs", []):
            assert not (out.output_type == "stream" and out.name == "stderr"), out.get("text", "")[:200]
            assert out.output_type != "error"


def test_sync_keeps_outputs_of_unchanged_cells_and_strip_removes_churn(tmp_path):
    py = tmp_path / "00_demo.py"
    py.write_text("# %%\nx = 1\nx\n\n# %%\ny = 2\n")
    ipynb = sync_inputs(py)
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)]
    nb.cells[0].metadata["papermill"] = {"duration": 0.1}
    nb.cells[0].metadata["execution"] = {"iopub.status.idle": "2026-01-01"}
    nb.metadata["papermill"] = {"start_time": "now"}
    nbformat.write(nb, ipynb)
    strip_churn(ipynb)
    nb = nbformat.read(ipynb, as_version=4)
    assert "papermill" not in nb.metadata and not nb.cells[0].metadata
    py.write_text("# %%\nx = 1\nx\n\n# %%\ny = 3\n")
    nb = nbformat.read(sync_inputs(py), as_version=4)
    assert nb.cells[0].outputs[0]["data"]["text/plain"] == "1" and nb.cells[1].source == "y = 3"


def test_split_streams_are_merged_so_reruns_do_not_churn():
    out = nbformat.v4.new_output
    cell = [
        out("stream", name="stdout", text="a\n"),
        out("stream", name="stdout", text=["b\n", "c\n"]),
        out("stream", name="stderr", text="w\n"),
        out("execute_result", {"text/plain": "1"}),
        out("stream", name="stdout", text="d\n"),
    ]
    merged = coalesce_streams(cell)
    assert [(o.output_type, o.get("name"), o.get("text")) for o in merged] == [
        ("stream", "stdout", "a\nb\nc\n"),
        ("stream", "stderr", "w\n"),
        ("execute_result", None, None),
        ("stream", "stdout", "d\n"),
    ]


def test_sync_gives_stable_cell_ids(tmp_path):
    py = tmp_path / "00_demo.py"
    py.write_text("# %%\nx = 1\n\n# %%\ny = 2\n")
    first = [c.id for c in nbformat.read(sync_inputs(py), as_version=4).cells]
    (tmp_path / "00_demo.ipynb").unlink()
    assert [c.id for c in nbformat.read(sync_inputs(py), as_version=4).cells] == first
    assert len(set(first)) == 2


def test_run_names_the_failing_notebook_and_cell_and_stops(tmp_path, capsys):
    from tools.run_notebooks import run_notebooks

    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    header = "# ---\n# jupyter:\n#   kernelspec:\n#     name: python3\n#     display_name: Python 3\n# ---\n\n"
    (nbs / "00_ok.py").write_text(header + "# %%\nopen('../figures/ok.txt', 'w').write('x')\nprint('fine')\n")
    (nbs / "01_bad.py").write_text(header + "# %%\nx = 1\n\n# %%\nraise ValueError('boom')\n")
    (nbs / "02_never.py").write_text(header + "# %%\nprint('not reached')\n")
    assert run_notebooks(root=tmp_path) == 1
    err = capsys.readouterr().err
    assert "FAILED: 01_bad.py, cell 2 (ValueError: boom)" in err
    ok = nbformat.read(nbs / "00_ok.ipynb", as_version=4)
    assert ok.cells[0].outputs[0]["text"] == "fine\n" and "papermill" not in ok.metadata
    assert (tmp_path / "figures" / "ok.txt").is_file() and not (nbs / "02_never.ipynb").exists()


def test_run_only_the_named_notebooks(tmp_path):
    from tools.run_notebooks import run_notebooks

    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    header = "# ---\n# jupyter:\n#   kernelspec:\n#     name: python3\n#     display_name: Python 3\n# ---\n\n"
    for name in ("00_a", "01_b", "02_c"):
        (nbs / f"{name}.py").write_text(header + f"# %%\nprint('{name}')\n")
    assert run_notebooks(only=["00", "02"], root=tmp_path) == 0
    assert sorted(p.name for p in nbs.glob("*.ipynb")) == ["00_a.ipynb", "02_c.ipynb"]


# ---- the manner of the notebooks: teach the mechanism, conclude from the numbers, keep the plumbing aside ----
MECHANISMS = {"01": 2, "02": 3, "03": 6, "04": 7, "09": 5}  # notebook -> a section of docs/method.md it implements


def _cells(py):
    return jupytext.read(py).cells


def _code_lines(source: str) -> list[str]:
    return [ln for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")]


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_the_colab_guard_is_one_line(py):
    first = next(c for c in _cells(py) if c.cell_type == "code")
    lines = _code_lines(first.source)
    assert len(lines) == 1 and "google.colab" in lines[0], f"{py.name}: the Colab guard is one line: {lines}"


@pytest.mark.parametrize("py", SOURCES, ids=lambda p: p.stem)
def test_each_notebook_ends_with_what_it_shows_exercises_and_the_check(py):
    cells = _cells(py)
    heads = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## What this shows" in c.source]
    assert len(heads) == 1, f"{py.name}: one '## What this shows' heading"
    shows = cells[heads[0] + 1]
    assert shows.cell_type == "code" and "print(" in shows.source, "the heading is followed by a printing code cell"
    ex = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source]
    assert len(ex) == 1 and ex[0] > heads[0], f"{py.name}: '## Exercises' after 'What this shows'"
    assert len(re.findall(r"^\d\. ", cells[ex[0]].source, re.M)) >= 2, "2-3 numbered exercises"
    code = [c for c in cells if c.cell_type == "code"]
    last = code[-1]
    assert "key_numbers(" in last.source and last.source.startswith("# Check"), "the key-number check is last"
    assert not any("key_numbers(" in c.source for c in code[:-1]), "one key-number cell"
    assert cells.index(last) > ex[0]


@pytest.mark.parametrize("num,section", sorted(MECHANISMS.items()))
def test_mechanism_notebooks_show_the_equation_and_the_code_that_implements_it(num, section):
    import ast

    from cilf.notebook.source import source_text

    (py,) = [p for p in SOURCES if p.stem.startswith(num)]
    cells = _cells(py)
    md = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "$$" in md, f"{py.name}: the paper's equation as display math"
    assert f"docs/method.md, section {section}" in md or "docs/method.md, sections" in md, py.name
    assert re.search(rf"^## {section}\. ", (py.parents[1] / "docs" / "method.md").read_text(), re.M)
    calls = [c.source for c in cells if c.cell_type == "code" and "show_source(" in c.source]
    assert calls, f"{py.name}: the implementing code is shown (show_source)"
    names = {}  # what the notebook imported, to resolve show_source's arguments
    for c in cells:
        if c.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(c.source)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cilf"):
                for a in node.names:
                    names[a.asname or a.name] = (node.module, a.name)
    import importlib

    (call,) = [
        n
        for n in ast.walk(ast.parse(calls[0]))
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "show_source"
    ]
    objs = []
    for arg in call.args:
        parts = ast.unparse(arg).split(".")
        mod, name = names[parts[0]]
        obj = getattr(importlib.import_module(mod), name)
        for p in parts[1:]:
            obj = getattr(obj, p)
        objs.append(obj)
    n_lines = len(source_text(*objs).splitlines())
    assert 10 <= n_lines <= 50, f"{py.name}: show {n_lines} lines; the 20-40 that implement the equation"


def test_source_text_names_the_module_and_is_the_code_that_runs():
    import inspect

    from cilf.model.fourier import GlobalFilter
    from cilf.model.similarity import global_scores
    from cilf.notebook.source import show_source, source_text

    text = source_text(GlobalFilter.forward, global_scores)
    assert text.startswith("# cilf/model/fourier.py: GlobalFilter.forward\ndef forward(self")
    assert "# cilf/model/similarity.py: global_scores\n" in text
    assert inspect.getsource(global_scores).strip() in text
    assert show_source(global_scores).data == source_text(global_scores)
    with pytest.raises(ValueError):
        source_text()


def test_the_table_of_full_model_maes_matches_the_files_it_names():
    import json

    root = NB.parent
    text = (root / "docs" / "notebooks.md").read_text()
    section = text.split("## Every MAE quoted for the full model", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and "`figures/" in r]
    assert len(rows) >= 8
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        mae, file, key = cells[2], cells[-2].strip("`"), cells[-1].strip("`")
        path = root / file
        if not path.is_file():
            pytest.fail(f"docs/notebooks.md quotes {file}, which does not exist: run its notebook")
        numbers = json.loads(path.read_text())["numbers"]
        assert key in numbers, f"{file} has no key {key!r}"
        digits = len(mae.split(".")[1])
        assert abs(numbers[key] - float(mae)) <= 0.5 * 10**-digits + 1e-9, f"{file} {key}: {numbers[key]} != {mae}"
