"""Peak memory of ``python -m cilf predict`` against the number of input images (repository tooling, not installed):

    python -m tools.predict_memory [--counts 1 100 1000 5000] [--json runs/predict_memory.json]

Each count runs in a fresh process on a folder of that many small PNG files (64 x 64 px noise, made once in a
scratch folder), once on aligned crops (``--aligned``) and once through the face detector; the process's peak
resident memory (``ru_maxrss``) and wall time are printed and written as JSON. predict streams (read, detect,
estimate, then the next batch), so the peak should stay flat: the goal is 5,000 images within 10% of 100.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cilf.io import json_text, write_text

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import resource, sys
from cilf.cli import main
code = main(["predict", sys.argv[1], *sys.argv[3:], "--quiet", "--batch-size", "32", "--json", sys.argv[2]])
print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
GOAL = 1.10  # 5,000 images within 10% of the peak on 100


def make_images(folder: Path, n: int, size: int = 64) -> None:
    """``n`` noise PNGs of ``size`` px in ``folder`` (seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"f{i:05d}.png")


def measure(folder: Path, out: Path, aligned: bool) -> dict:
    """One predict run in a fresh process: exit code, rows written, peak RSS (MiB) and wall seconds."""
    t0 = time.perf_counter()
    extra = ["--aligned"] if aligned else []
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(folder), str(out), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    code, rss_kib = r.stdout.split()[-2:]
    rows = json.loads(out.read_text()) if out.exists() else []
    return {
        "exit_code": int(code),
        "rows": len(rows),
        "peak_mib": round(int(rss_kib) / 1024, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.predict_memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 100, 1000, 5000])
    ap.add_argument("--json", default="runs/predict_memory.json", help="where the result is written")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cilf-predict-memory-") as tmp:
        for n in args.counts:
            folder = Path(tmp) / f"in{n}"
            make_images(folder, n)
            for aligned in (True, False):
                m = measure(folder, Path(tmp) / f"out{n}-{aligned}.json", aligned)
                rows.append({"images": n, "mode": "aligned" if aligned else "detect", **m})
                print(f"{n:6d} images  {rows[-1]['mode']:8s}  peak {m['peak_mib']:7.1f} MiB  {m['seconds']:6.1f} s")
    ratios = {}
    for mode in ("aligned", "detect"):
        by = {r["images"]: r["peak_mib"] for r in rows if r["mode"] == mode}
        if 100 in by and 5000 in by:
            ratios[mode] = round(by[5000] / by[100], 3)
            print(f"{mode}: peak on 5,000 / peak on 100 = {ratios[mode]:.3f} (goal <= {GOAL})")
    result = {
        "source": "this run, noise PNGs 64 x 64 px, CPU",
        "rows": rows,
        "peak_ratio_5000_over_100": ratios,
        "goal": GOAL,
        "met": all(v <= GOAL for v in ratios.values()) if ratios else None,
    }
    write_text(ROOT / args.json, json_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
