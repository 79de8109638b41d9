"""The whole job as a user meets it: ``./run_all.sh`` and ``./run_all.sh test`` timed on a fresh clone.

The clone is a scratch ``git clone`` of this checkout's committed HEAD (uncommitted changes are not in it,
and the result says whether there were any), run with the existing Python environment used as it is
(``CILF_VENV`` = this interpreter's environment, ``CILF_NO_INSTALL=1``: nothing is installed, and the
environment keeps pointing at your checkout) and, by default, with empty caches of its own (``CILF_CACHE``,
``CILF_DATA`` in the scratch folder): every demo model, SynthAge set and benchmark run is recomputed, as on a
machine that has only the environment. Your ``figures/``, notebooks and caches are not touched; the scratch
folder is removed afterwards unless ``keep``.

Per command: wall seconds, CPU seconds of the command and its children, exit code, and where the time went:
the notebooks' own table (``nbtools run`` prints seconds per notebook) and, for the tests, pytest's JUnit
report (seconds per test and per notebook cell group, counts of passed, failed, skipped).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from cilf.bench.speed_goals import format_goals, goal

# goals, cold, on the 2-core reference machine: the main job within 8 minutes, the tests within 12
TARGET_S = {"./run_all.sh": 480.0, "./run_all.sh test": 720.0}
COMMANDS = (("./run_all.sh", ["./run_all.sh"]), ("./run_all.sh test", ["./run_all.sh", "test"]))
_NOTEBOOK_ROW = re.compile(r"^(\d\d_\w+)\s+([0-9.]+)\s")
_NOTEBOOK_FILE = re.compile(r"(\d\d_\w+\.ipynb)$")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def checkout_root(start: Path) -> Path | None:
    """The git checkout holding ``start`` with a ``run_all.sh`` at its root, or None (e.g. an installed wheel)."""
    try:
        root = Path(_git(start, "rev-parse", "--show-toplevel"))
    except (OSError, subprocess.CalledProcessError):
        return None
    return root if (root / "run_all.sh").is_file() else None


def notebook_seconds(log: str) -> list[dict]:
    """Seconds per notebook from ``nbtools run``'s closing table: ``[{"name", "seconds"}]`` in run order."""
    rows = []
    for line in log.splitlines():
        m = _NOTEBOOK_ROW.match(line)
        if m:
            rows.append({"name": m.group(1), "seconds": float(m.group(2))})
    return rows


def junit_summary(path: Path, top: int = 10) -> dict:
    """Counts and the slowest items of a pytest JUnit XML report.

    Returns ``{"passed", "failed", "skipped", "seconds", "notebooks_s", "tests_s", "slowest": [{"name",
    "seconds"}]}``; nbval items (one per notebook cell, class ``notebooks.NN_name.ipynb``) are summed per
    notebook, so a slow notebook shows as one row.
    """
    root = ET.parse(path).getroot()
    per: dict[str, float] = {}
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    nb_s = 0.0
    for case in root.iter("testcase"):
        secs = float(case.get("time") or 0.0)
        cls, name = case.get("classname", ""), case.get("name", "")
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
        nb = _NOTEBOOK_FILE.search(cls)  # nbval's class name: notebooks.NN_name.ipynb
        if nb:
            key = "nbval " + nb.group(1)
            nb_s += secs
        else:
            key = f"{cls}::{name}"
        per[key] = per.get(key, 0.0) + secs
    total = sum(per.values())
    slowest = sorted(per.items(), key=lambda kv: -kv[1])[:top]
    return {
        **counts,
        "seconds": total,
        "notebooks_s": nb_s,
        "tests_s": total - nb_s,
        "slowest": [{"name": k, "seconds": v} for k, v in slowest],
    }


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_timed(cmd: list[str], cwd: Path, env: dict, log: Path) -> dict:
    """Run ``cmd`` in ``cwd`` with ``env``, output to ``log``; wall and CPU seconds (its children included)."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        rc = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        ).returncode
    # ru_maxrss of the children: the largest process the command ran (a notebook kernel, pytest), in KiB
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"wall_s": time.perf_counter() - t0, "cpu_s": _children_cpu() - cpu0, "rc": rc, "peak_mb": peak}


def bench_whole_job(
    repo: str | Path | None = None,
    venv: str | Path | None = None,
    cold: bool = True,
    keep: bool = False,
    commands=COMMANDS,
    scratch: str | Path | None = None,
) -> dict:
    """Time each of ``commands`` (default ``./run_all.sh``, then ``./run_all.sh test``) in a fresh clone.

    ``repo``: the checkout to clone (default: the one holding this package); ``venv``: the environment to
    use as it is (default ``sys.prefix``); ``cold``: empty ``CILF_CACHE`` / ``CILF_DATA`` (else yours).
    Returns ``{"commit", "dirty", "cold", "venv", "rows": [{"command", "wall_s", "cpu_s", "rc", "peak_mb", "log",
    "notebooks"?, "tests"?}]}``, or ``{"skipped": why}`` when there is no git checkout to clone.
    """
    repo = checkout_root(Path(repo) if repo else Path(__file__).resolve().parent)
    if repo is None:
        return {"skipped": "not run from a git checkout with run_all.sh (the whole job is timed on a clone of one)"}
    venv = Path(venv or sys.prefix)
    work = Path(tempfile.mkdtemp(prefix="cilf-whole-job-", dir=scratch))
    res = {
        "commit": _git(repo, "rev-parse", "HEAD"),
        "dirty": bool(_git(repo, "status", "--porcelain")),
        "cold": cold,
        "venv": str(venv),
        "rows": [],
    }
    try:
        clone = work / "clone"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, capture_output=True)
        env = {**os.environ, "CILF_VENV": str(venv), "CILF_NO_INSTALL": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONPATH", None)  # run_all.sh puts the clone first; nothing of this checkout may leak in
        if cold:
            env.update(CILF_CACHE=str(work / "cache"), CILF_DATA=str(work / "data"))
        for i, (label, cmd) in enumerate(commands):
            junit, log = work / f"junit-{i}.xml", work / f"log-{i}.txt"
            is_test = cmd[-1] == "test"  # the test command also writes a JUnit report
            print(f"whole job: {label} in a fresh clone ({'cold' if cold else 'warm'} caches) ...", flush=True)
            row = {
                "command": label,
                **run_timed([*cmd, f"--junitxml={junit}"] if is_test else list(cmd), clone, env, log),
            }
            text = log.read_text(encoding="utf-8", errors="replace")
            row["log_tail"] = text[-2000:]
            if not is_test:
                row["notebooks"] = notebook_seconds(text)
            elif junit.exists():
                row["tests"] = junit_summary(junit)
            res["rows"].append(row)
            print(f"    {row['wall_s']:.0f} s wall, {row['cpu_s']:.0f} s CPU, exit {row['rc']}", flush=True)
    finally:
        if keep:
            res["scratch"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return res


def whole_job_why(row: dict) -> str:
    """Where one command's time went, in one line (for a missed goal)."""
    if "tests" in row:
        t = row["tests"]
        top = ", ".join(f"{s['name']} {s['seconds']:.0f} s" for s in t["slowest"][:4])
        return (
            f"nbval notebooks {t['notebooks_s']:.0f} s + tests {t['tests_s']:.0f} s of {row['wall_s']:.0f} s "
            f"wall, {row['cpu_s']:.0f} CPU-s; slowest: {top}"
        )
    nbs = sorted(row.get("notebooks", []), key=lambda r: -r["seconds"])
    top = ", ".join(f"{r['name']} {r['seconds']:.0f} s" for r in nbs[:4])
    return f"{row['cpu_s']:.0f} CPU-s; slowest notebooks: {top}" if top else f"{row['cpu_s']:.0f} CPU-s"


def format_whole_job(res: dict) -> str:
    """The section's table: one row per command, then where the time went."""
    if "skipped" in res:
        return f"== the whole job: skipped ({res['skipped']}) =="
    lines = [
        f"== the whole job, fresh clone of {res['commit'][:10]}"
        f"{' (uncommitted changes not included)' if res['dirty'] else ''}, existing environment, "
        f"{'cold' if res['cold'] else 'warm'} caches ==",
        f"{'command':22s} {'wall s':>8s} {'CPU s':>8s}  result",
    ]
    for r in res["rows"]:
        t = r.get("tests")
        result = (
            f"{t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped"
            if t
            else f"{len(r.get('notebooks', []))} notebooks"
        )
        peak = f", largest process {r['peak_mb']:.0f} MB" if "peak_mb" in r else ""
        lines.append(f"{r['command']:22s} {r['wall_s']:8.0f} {r['cpu_s']:8.0f}  exit {r['rc']}, {result}{peak}")
        lines.append(f"    {whole_job_why(r)}")
    return "\n".join(lines)


def whole_job_goals(res: dict) -> list[dict]:
    """One goal per command (``TARGET_S``), in the shape of ``cilf.bench.speed_goals``' goals."""
    if "skipped" in res:
        return [goal("the whole job on a fresh clone, wall s", None, max(TARGET_S.values()), False, res["skipped"])]
    goals = []
    caches = "cold" if res["cold"] else "warm"
    for r in res["rows"]:
        ok = r["rc"] == 0
        goals.append(
            goal(
                f"{r['command']}, fresh clone, existing environment, {caches} caches, wall s",
                r["wall_s"] if ok else None,
                TARGET_S.get(r["command"], 600.0),
                False,
                whole_job_why(r) if ok else f"exit {r['rc']}: not a valid timing (log tail in the JSON)",
                "whole_job.rows",
            )
        )
    return goals


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.whole_job [--warm] [--json figures/bench_speed.json]``: time the whole job on a fresh
    clone and add it (section ``whole_job`` and its goals) to the speed benchmark's JSON."""
    import argparse
    import json

    from cilf.io import write_json

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--warm", action="store_true", help="use your caches (default: empty ones, as a new user)")
    ap.add_argument("--json", default="figures/bench_speed.json", help="speed JSON to add the section to")
    args = ap.parse_args(argv)
    res = bench_whole_job(cold=not args.warm)
    print(format_whole_job(res))
    goals = whole_job_goals(res)
    print(format_goals(goals, "this machine"))
    path = Path(args.json)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["whole_job"] = res
    data["goals"] = [g for g in data.get("goals", []) if g.get("evidence") != "whole_job.rows"] + goals
    write_json(path, data)
    return 0 if all(r["rc"] == 0 for r in res.get("rows", [])) else 1


if __name__ == "__main__":
    sys.exit(main())
