"""The whole-job section of bench-speed: ./run_all.sh and ./run_all.sh test timed on a fresh clone.

The real commands take half an hour, so the clone here is of a small git repository whose run_all.sh does
what the real one reports (the notebooks' table; a JUnit file for ``test``) and records what it was given;
the real run_all.sh's CILF_NO_INSTALL switch is tested on the real script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tools.whole_job import bench_whole_job, format_whole_job, notebook_seconds, whole_job_goals

ROOT = Path(__file__).resolve().parents[1]

STUB = r"""#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")"
# what the benchmark promised: the environment as it is, empty caches of its own, this clone's code first
echo "{\"venv\": \"$CILF_VENV\", \"no_install\": \"${CILF_NO_INSTALL:-}\", \"cache\": \"${CILF_CACHE:-}\", \
\"pythonpath\": \"${PYTHONPATH:-}\", \"args\": \"$*\"}" > "seen-${1:-main}.json"
cp "seen-${1:-main}.json" "$SEEN_DIR/"
if [[ "${1:-}" == test ]]; then
  junit="${2#--junitxml=}"
  cat > "$junit" <<'XML'
<testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_fast" time="0.5"/>
<testcase classname="tests.test_a" name="test_slow" time="7.0"/>
<testcase classname="tests.test_b" name="test_skip" time="0.0"><skipped message="no GPU"/></testcase>
<testcase classname="tests.test_b" name="test_bad" time="1.0"><failure message="boom"/></testcase>
<testcase classname="notebooks.00_quickstart.ipynb" name="Cell 0" time="2.0"/>
<testcase classname="notebooks.00_quickstart.ipynb" name="Cell 1" time="3.0"/>
</testsuite></testsuites>
XML
  exit "${STUB_TEST_RC:-0}"
fi
mkdir -p figures && echo x > figures/a.png
printf '\nnotebook                      seconds  figures written\n00_quickstart                    12.5  a.png\n01_clip_similarity                3.0  -\ntotal                            15.5\n'
"""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "run_all.sh").write_text(STUB)
    (repo / "run_all.sh").chmod(0o755)
    (repo / "README.md").write_text("stub\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "stub"], check=True)
    return repo


def test_both_commands_are_timed_on_a_clone_with_the_environment_as_it_is_and_empty_caches(tmp_path, monkeypatch):
    repo = _repo(tmp_path)
    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setenv("SEEN_DIR", str(seen))
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    (repo / "README.md").write_text("changed, not committed\n")
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    res = bench_whole_job(repo, venv="/the/env", scratch=tmp_path)

    assert res["dirty"] is True and res["cold"] is True and len(res["commit"]) == 40
    main, tests = res["rows"]
    assert [main["command"], tests["command"]] == ["./run_all.sh", "./run_all.sh test"]
    assert main["rc"] == tests["rc"] == 0 and main["wall_s"] > 0 and tests["wall_s"] > 0
    assert main["notebooks"] == [
        {"name": "00_quickstart", "seconds": 12.5},
        {"name": "01_clip_similarity", "seconds": 3.0},
    ]
    t = tests["tests"]
    assert (t["passed"], t["failed"], t["skipped"]) == (4, 1, 1)
    assert t["notebooks_s"] == pytest.approx(5.0) and t["tests_s"] == pytest.approx(8.5)
    assert t["slowest"][0] == {"name": "tests.test_a::test_slow", "seconds": 7.0}
    assert t["slowest"][1] == {"name": "nbval 00_quickstart.ipynb", "seconds": 5.0}  # one row per notebook
    for name in ("seen-main.json", "seen-test.json"):
        env = json.loads((seen / name).read_text())
        assert env["venv"] == "/the/env" and env["no_install"] == "1"
        assert env["cache"].startswith(str(tmp_path)) and "cilf-whole-job-" in env["cache"]
        assert env["pythonpath"] == ""  # nothing of the calling process's path leaks into the clone
    # the checkout is untouched (its uncommitted change too) and the scratch clone is gone
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before
    assert not list(tmp_path.glob("cilf-whole-job-*"))
    text = format_whole_job(res)
    assert "uncommitted changes not included" in text and "4 passed, 1 failed, 1 skipped" in text
    assert "slowest notebooks: 00_quickstart 12 s" in text


def test_a_failing_command_is_not_a_timing_and_its_goal_says_so(tmp_path, monkeypatch):

    repo = _repo(tmp_path)
    monkeypatch.setenv("SEEN_DIR", str(tmp_path))
    monkeypatch.setenv("STUB_TEST_RC", "1")
    res = bench_whole_job(repo, venv="/the/env", scratch=tmp_path, keep=True)
    assert Path(res["scratch"]).is_dir()  # kept when asked
    goals = [g for g in whole_job_goals(res) if "fresh clone" in g["goal"]]
    assert len(goals) == 2
    assert goals[0]["met"] is True  # 'main' job of the stub: well within 600 s
    assert goals[1]["measured"] is None and goals[1]["met"] is None and "exit 1" in goals[1]["why"]


def test_a_missed_goal_names_where_the_time_went(tmp_path):

    row = {
        "command": "./run_all.sh test",
        "wall_s": 900.0,
        "cpu_s": 1500.0,
        "rc": 0,
        "tests": {
            "passed": 3,
            "failed": 0,
            "skipped": 0,
            "seconds": 880.0,
            "notebooks_s": 600.0,
            "tests_s": 280.0,
            "slowest": [{"name": "nbval 06_ablations.ipynb", "seconds": 400.0}],
        },
    }
    (g,) = whole_job_goals({"cold": True, "rows": [row]})
    assert g["met"] is False and g["measured"] == 900.0
    assert "nbval notebooks 600 s + tests 280 s" in g["why"] and "06_ablations.ipynb 400 s" in g["why"]


def test_outside_a_git_checkout_the_section_says_why_it_was_skipped(tmp_path):
    res = bench_whole_job(tmp_path)
    assert "skipped" in res and "git checkout" in res["skipped"]
    assert "skipped" in format_whole_job(res)


def test_parsers_read_what_the_real_tools_write():
    assert notebook_seconds("== 00_quickstart.py: running (FAST) ==\n00_quickstart   7.0  a.png\ntotal  7.0") == [
        {"name": "00_quickstart", "seconds": 7.0}
    ]


def test_run_all_with_no_install_never_builds_an_environment(tmp_path):
    env = {**os.environ, "CILF_VENV": str(tmp_path / "missing"), "CILF_NO_INSTALL": "1"}
    res = subprocess.run([str(ROOT / "run_all.sh"), "test"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "CILF_NO_INSTALL=1" in res.stderr and str(tmp_path / "missing") in res.stderr
    assert not (tmp_path / "missing").exists()
