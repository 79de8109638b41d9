"""The results registry: every number the README or docs quote from a run outside the notebooks lives in a
file ``results/NAME.json`` that says which command made it, at which commit, on which machine, and when.

    python -m tools.results run NAME --json PATH [--drop KEY ...] -- COMMAND ...   # run COMMAND, record its JSON
    python -m tools.results show NAME                             # the command and the recorded result

``run`` refuses a working tree with uncommitted changes under ``cilf/`` (the commit would not say what ran).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from cilf.io import json_text, write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record(name: str, command: list[str], result: dict, seconds: float, commit: str, drop=()) -> Path:
    """Write ``results/NAME.json``: {name, command, commit, machine, seconds, recorded, result}; the top-level
    keys ``drop`` of the result (e.g. per-image predictions) are left out and listed under "dropped"."""
    missing = [k for k in drop if k not in result]
    if missing:
        raise SystemExit(f"error: --drop {missing[0]}: the result has no such key (it has {sorted(result)})")
    result = {k: v for k, v in result.items() if k not in drop}
    entry = {
        "name": name,
        "command": shlex.join(["python", *command[1:]] if Path(command[0]).name.startswith("python") else command),
        "commit": commit,
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(seconds, 1),
        "recorded": time.strftime("%Y-%m-%d", time.gmtime()),
        "result": result,
    }
    if drop:
        entry["dropped"] = sorted(drop)
    path = RESULTS / f"{name}.json"
    write_text(path, json_text(entry))
    return path


def run(name: str, json_path: str, command: list[str], drop=()) -> Path:
    """Run ``command`` from the repository root, then record the JSON file it wrote at ``json_path``."""
    if _git("status", "--porcelain", "--", "cilf"):
        raise SystemExit("error: cilf/ has uncommitted changes: commit them first, so the result names what ran")
    commit = _git("rev-parse", "HEAD")
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"error: the command failed (exit {done.returncode}); nothing recorded")
    result = json.loads((ROOT / json_path).read_text(encoding="utf-8"))
    return record(name, command, result, time.perf_counter() - t0, commit, drop)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.results", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="action", required=True)
    r = sub.add_parser("run", help="run a command and record the JSON file it writes")
    r.add_argument("name")
    r.add_argument("--json", required=True, help="the JSON file the command writes (relative to the root)")
    r.add_argument("--drop", action="append", default=[], help="a top-level key not to record (repeatable)")
    s = sub.add_parser("show", help="print a recorded result's command and result")
    s.add_argument("name")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args, command = ap.parse_args(argv[:cut]), argv[cut + 1 :]
    if args.action == "run":
        if not command:
            ap.error("give the command after --")
        print(f"recorded {run(args.name, args.json, command, args.drop).relative_to(ROOT)}")
    else:
        entry = json.loads((RESULTS / f"{args.name}.json").read_text(encoding="utf-8"))
        print(f"{entry['command']}  (commit {entry['commit'][:10]}, {entry['recorded']}, {entry['seconds']} s)")
        print(json.dumps(entry["result"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
