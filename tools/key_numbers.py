"""Record or check the notebooks' key numbers (repository tooling; the notebooks write and check their own with
``cilf.notebook.key_numbers.report``):

    python -m tools.key_numbers record [--figures figures] [--expected notebooks/expected]
    python -m tools.key_numbers check  [--figures figures] [--expected notebooks/expected]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cilf.io import json_text, write_text
from cilf.notebook.key_numbers import compare, default_tolerance, moved_message


def _runs(figures: Path) -> dict[str, dict]:
    """{name: record} of the key-number files in ``figures`` (other JSON files there are skipped)."""
    runs = {}
    for p in sorted(figures.glob("[0-9][0-9]_*.json")):
        rec = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(rec, dict) and "numbers" in rec and rec.get("notebook") == p.stem:
            runs[p.stem] = rec
    return runs


def record(figures: Path, expected: Path) -> list[Path]:
    """Write ``expected/NN_name.json`` from every FAST ``figures/NN_name.json``. Each float gets an explicit
    tolerance: the notebook's, else the one already in the expected file, else the default rule."""
    written = []
    for name, rec in _runs(figures).items():
        if not rec.get("fast"):
            print(f"{name}: skipped (a FAST=False run; only FAST runs are recorded)")
            continue
        path = expected / f"{name}.json"
        old = json.loads(path.read_text(encoding="utf-8")).get("tolerances", {}) if path.is_file() else {}
        tol = {}
        for key, v in rec["numbers"].items():
            if key in rec.get("tolerances", {}):
                tol[key] = rec["tolerances"][key]
            elif key in old:
                tol[key] = old[key]
            elif isinstance(v, float):
                tol[key] = round(default_tolerance(v), 4)
        write_text(path, json_text({"notebook": name, "fast": True, "numbers": rec["numbers"], "tolerances": tol}))
        written.append(path)
        print(f"{name}: {len(rec['numbers'])} numbers recorded -> {path}")
    return written


def check(figures: Path, expected: Path) -> list[str]:
    """Mismatch lines of every FAST figures/NN_name.json against its expected file, executing nothing;
    an expected file without a run, or a run without an expected file, is a mismatch too."""
    runs = {n: r for n, r in _runs(figures).items() if r.get("fast")}
    lines = []
    for path in sorted(expected.glob("[0-9][0-9]_*.json")):
        exp = json.loads(path.read_text(encoding="utf-8"))
        if path.stem not in runs:
            lines.append(f"{path.stem}: no FAST run in {figures} (run the notebook)")
            continue
        lines += compare(path.stem, runs[path.stem]["numbers"], exp["numbers"], exp.get("tolerances"))
    for name in runs:
        if not (expected / f"{name}.json").is_file():
            lines.append(f"{name}: no expected file in {expected}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.key_numbers")
    ap.add_argument("cmd", choices=("record", "check"))
    ap.add_argument("--figures", default="figures", type=Path)
    ap.add_argument("--expected", default="notebooks/expected", type=Path)
    args = ap.parse_args(argv)
    if not args.figures.is_dir():
        print(f"error: no folder {args.figures}; run from the repository root or pass --figures", file=sys.stderr)
        return 2
    if args.cmd == "record":
        args.expected.mkdir(parents=True, exist_ok=True)
        return 0 if record(args.figures, args.expected) else 1
    lines = check(args.figures, args.expected)
    if lines:
        print(moved_message(lines), file=sys.stderr)
        return 1
    print(f"key numbers: {len(list(args.expected.glob('[0-9][0-9]_*.json')))} notebooks checked, all within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
