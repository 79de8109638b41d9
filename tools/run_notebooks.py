"""Run the numbered notebooks headlessly (used by ``./run_all.sh``).

For each ``notebooks/NN_name.py`` (jupytext percent, the source), in order:
1. rebuild the paired ``.ipynb``'s inputs from the ``.py`` (outputs kept; never ``jupytext --sync``,
   which picks the source by file time);
2. execute it with papermill: FAST mode in place; ``--full`` passes ``FAST=False`` and writes the
   executed copy to ``runs/notebooks-full/`` so the committed notebooks stay the FAST ones;
3. strip papermill's metadata churn (timings, status), so a re-run only changes real outputs.
Prints a summary (notebook, seconds, figures written) and exits non-zero naming the notebook and
cell that failed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]


def notebook_sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("[0-9][0-9]_*.py"))


def sync_inputs(py: Path) -> Path:
    """Write the .ipynb paired with ``py``: inputs from the .py, outputs of the old .ipynb kept."""
    ipynb = py.with_suffix(".ipynb")
    new = jupytext.read(py)
    if ipynb.exists():
        old = nbformat.read(ipynb, as_version=4)
        old_outputs = {(c.cell_type, c.source): c for c in old.cells if c.cell_type == "code"}
        for cell in new.cells:
            prev = old_outputs.get((cell.cell_type, cell.source))
            if prev is not None:
                cell.outputs = prev.get("outputs", [])
                cell.execution_count = prev.get("execution_count")
    for i, cell in enumerate(new.cells):  # stable ids: a re-run rewrites no unchanged cell
        cell.id = hashlib.sha1(f"{i}:{cell.cell_type}:{cell.source}".encode()).hexdigest()[:8]
    new.metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    nbformat.write(new, ipynb)
    return ipynb


def coalesce_streams(outputs: list) -> list:
    """Merge consecutive stdout (or stderr) outputs: how a kernel splits a stream depends on timing."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (
            out.get("output_type") == "stream"
            and prev is not None
            and prev.get("output_type") == "stream"
            and prev.get("name") == out.get("name")
        ):
            prev["text"] = "".join(prev["text"]) + "".join(out["text"])
        else:
            merged.append(out)
    return merged


def strip_churn(path: Path) -> None:
    """Remove papermill's per-run metadata (timestamps, durations, status) from a notebook."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    count = 0
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count if cell.get("outputs") is not None else None
            cell.outputs = coalesce_streams(cell.get("outputs", []))
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
    nbformat.write(nb, path)


def _figures_snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.glob("*") if p.is_file()} if folder.exists() else {}


def run_notebooks(full: bool = False, only: list[str] | None = None, root: Path = ROOT) -> int:
    """Sync, execute and clean ``root/notebooks/NN_*.py`` in order; 0, or 1 after the first failure."""
    import papermill as pm

    nb_dir = root / "notebooks"
    figures = root / "figures"
    figures.mkdir(exist_ok=True)
    out_dir = root / "runs" / "notebooks-full"
    summary = []
    for py in notebook_sources(nb_dir):
        if only and not any(py.stem.startswith(o) for o in only):
            continue
        ipynb = sync_inputs(py)
        target = out_dir / ipynb.name if full else ipynb
        target.parent.mkdir(parents=True, exist_ok=True)
        before = _figures_snapshot(figures)
        t0 = time.time()
        print(f"== {py.name}: running ({'full' if full else 'FAST'}) ==", flush=True)
        try:
            pm.execute_notebook(
                str(ipynb),
                str(target),
                parameters={"FAST": False} if full else None,
                cwd=str(nb_dir),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                # the kernel's own log is noise here ("running over TCP without encryption"
                # on localhost; "KeyboardInterrupt caught" when a finished kernel is shut
                # down): a failing cell or a dead kernel is still reported by papermill
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
        except pm.PapermillExecutionError as e:
            print(
                f"FAILED: {py.name}, cell {e.exec_count} ({e.ename}: {e.evalue}); executed copy with the "
                f"traceback: {target}",
                file=sys.stderr,
            )
            return 1
        strip_churn(target)
        after = _figures_snapshot(figures)
        written = sorted(Path(p).name for p, m in after.items() if before.get(p) != m)
        summary.append((py.stem, time.time() - t0, written))
    print(f"\n{'notebook':28s} {'seconds':>8s}  figures written")
    for name, secs, written in summary:
        print(f"{name:28s} {secs:8.1f}  {', '.join(written) or '-'}")
    print(f"{'total':28s} {sum(s for _, s, _ in summary):8.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.run_notebooks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="sync, execute and clean every numbered notebook")
    r.add_argument("--full", action="store_true")
    r.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 00 02")
    s = sub.add_parser("sync", help="rebuild .ipynb inputs from the .py sources (outputs kept)")
    s.add_argument("paths", nargs="*")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cmd == "run":
        return run_notebooks(full=args.full, only=args.only)
    for p in args.paths or notebook_sources(ROOT / "notebooks"):
        print(sync_inputs(Path(p)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
