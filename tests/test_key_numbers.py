"""Key numbers: written by each notebook, compared with notebooks/expected within tolerances."""

import json

import numpy as np
import pytest

from cilf.notebook import key_numbers as kn
from cilf.notebook.key_numbers import KeyNumbersMoved, report
from tools import key_numbers as tk

NAME = "04_error_correction"
NUMBERS = {"mae_x": 5.53, "share_accepted_pct": 40.0, "n_corrected": 120, "verdict": "x* better", "improves": True}


def _expected(folder, numbers=NUMBERS, tolerances=None):
    folder.mkdir(parents=True, exist_ok=True)
    tolerances = tolerances if tolerances is not None else {"mae_x": 0.10}
    (folder / f"{NAME}.json").write_text(
        json.dumps({"notebook": NAME, "fast": True, "numbers": numbers, "tolerances": tolerances})
    )
    return folder


def _run(tmp_path, numbers, **kw):
    return report(
        NAME,
        numbers,
        out_dir=tmp_path / "figures",
        fast=kw.pop("fast", True),
        expected_dir=kw.pop("expected_dir", tmp_path / "expected"),
        **kw,
    )


def test_within_tolerance_passes_and_writes_the_record(tmp_path, capsys):
    _expected(tmp_path / "expected")
    moved = dict(NUMBERS, mae_x=5.60, share_accepted_pct=np.float32(40.03), n_corrected=np.int64(120))
    _run(tmp_path, moved)
    assert capsys.readouterr().out == "key numbers: 5 checked, all within tolerance\n"
    rec = json.loads((tmp_path / "figures" / f"{NAME}.json").read_text())
    assert rec["notebook"] == NAME and rec["fast"] is True and rec["numbers"]["n_corrected"] == 120
    assert rec["numbers"]["mae_x"] == 5.60 and rec["tolerances"] == {}


def test_moved_float_fails_naming_the_notebook_the_number_and_both_values(tmp_path):
    _expected(tmp_path / "expected")
    with pytest.raises(KeyNumbersMoved) as e:
        _run(tmp_path, dict(NUMBERS, mae_x=5.91))
    msg = str(e.value)
    assert "04_error_correction: mae_x = 5.91, expected 5.53 +- 0.1" in msg
    assert "python -m tools.key_numbers record" in msg
    assert isinstance(e.value, AssertionError)
    assert (tmp_path / "figures" / f"{NAME}.json").is_file()  # written before the check: `record` can use it


def test_default_rule_applies_without_a_stored_tolerance(tmp_path):
    _expected(tmp_path / "expected", tolerances={})
    _run(tmp_path, dict(NUMBERS, share_accepted_pct=40.0 + 0.039))  # 0.1% of 40 = 0.04
    with pytest.raises(KeyNumbersMoved, match=r"share_accepted_pct = 40.05, expected 40 \+- 0.04"):
        _run(tmp_path, dict(NUMBERS, share_accepted_pct=40.05))
    assert kn.default_tolerance(1.0) == kn.ABS_FLOOR


def test_every_moved_number_is_listed(tmp_path):
    _expected(tmp_path / "expected")
    with pytest.raises(KeyNumbersMoved) as e:
        _run(tmp_path, dict(NUMBERS, mae_x=1.0, verdict="y0 better", improves=False, n_corrected=121))
    msg = str(e.value)
    assert msg.startswith("4 key number(s) moved")
    assert "verdict = 'y0 better', expected 'x* better'" in msg
    assert "improves = False, expected True" in msg
    assert "n_corrected = 121, expected 120 exactly" in msg


def test_changed_verdict_string_fails(tmp_path):
    _expected(tmp_path / "expected")
    with pytest.raises(KeyNumbersMoved, match="04_error_correction: verdict = 'y0 better', expected 'x\\* better'"):
        _run(tmp_path, dict(NUMBERS, verdict="y0 better"))


def test_missing_and_new_numbers_fail(tmp_path):
    _expected(tmp_path / "expected")
    numbers = {k: v for k, v in NUMBERS.items() if k != "mae_x"} | {"spearman": 0.3}
    with pytest.raises(KeyNumbersMoved) as e:
        _run(tmp_path, numbers)
    msg = str(e.value)
    assert "04_error_correction: mae_x missing from this run, expected 5.53" in msg
    assert "04_error_correction: spearman = 0.3 is new" in msg


def test_int_with_a_tolerance_is_compared_within_it(tmp_path):
    _expected(tmp_path / "expected", tolerances={"n_corrected": 3})
    _run(tmp_path, dict(NUMBERS, n_corrected=122))
    with pytest.raises(KeyNumbersMoved, match="n_corrected = 124, expected 120 \\+- 3"):
        _run(tmp_path, dict(NUMBERS, n_corrected=124))


def test_non_fast_runs_are_written_but_not_checked(tmp_path, capsys):
    _expected(tmp_path / "expected")
    rec = _run(tmp_path, dict(NUMBERS, mae_x=99.0), fast=False)
    assert rec["fast"] is False and "not checked (FAST=False" in capsys.readouterr().out


def test_no_expected_folder_skips_with_one_line(tmp_path, capsys):
    _run(tmp_path, NUMBERS, expected_dir=tmp_path / "nowhere")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "not checked (no folder notebooks/expected beside" in out
    (tmp_path / "expected").mkdir()
    _run(tmp_path, NUMBERS)
    assert "no expected values recorded for 04_error_correction" in capsys.readouterr().out


def test_bad_numbers_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="mae_x = nan is not finite"):
        _run(tmp_path, dict(NUMBERS, mae_x=float("nan")))
    with pytest.raises(TypeError, match="key number mae_x is a list"):
        _run(tmp_path, dict(NUMBERS, mae_x=[1.0]))
    with pytest.raises(ValueError, match="tolerances given for numbers that are not reported"):
        _run(tmp_path, NUMBERS, tolerances={"nope": 1.0})


def test_default_expected_dir_is_the_checkouts():
    assert kn.default_expected_dir().parent.name == "notebooks"


def test_record_then_check_round_trips(tmp_path, capsys):
    figures, expected = tmp_path / "figures", tmp_path / "expected"
    report(NAME, NUMBERS, out_dir=figures, fast=True, tolerances={"mae_x": 0.1}, expected_dir=expected)
    report("05_benchmarks", {"mae_full": 7.0}, out_dir=figures, fast=False, expected_dir=expected)
    (figures / "bench_speed.json").write_text("{}")  # other JSON files in figures/ are not key numbers
    assert tk.main(["record", "--figures", str(figures), "--expected", str(expected)]) == 0
    assert sorted(p.name for p in expected.iterdir()) == [f"{NAME}.json"]  # the FULL run is not recorded
    stored = json.loads((expected / f"{NAME}.json").read_text())
    assert stored["tolerances"] == {"mae_x": 0.1, "share_accepted_pct": 0.04}  # notebook's, else the default rule
    assert tk.main(["check", "--figures", str(figures), "--expected", str(expected)]) == 0
    assert "1 notebooks checked, all within tolerance" in capsys.readouterr().out
    # a hand-widened tolerance is kept by a later record; a moved number then fails `check`, naming it
    stored["tolerances"]["share_accepted_pct"] = 5.0
    (expected / f"{NAME}.json").write_text(json.dumps(stored))
    report(NAME, dict(NUMBERS, mae_x=6.0), out_dir=figures, fast=True, expected_dir=tmp_path / "none")
    assert tk.main(["check", "--figures", str(figures), "--expected", str(expected)]) == 1
    assert "04_error_correction: mae_x = 6, expected 5.53 +- 0.1" in capsys.readouterr().err
    tk.main(["record", "--figures", str(figures), "--expected", str(expected)])
    assert json.loads((expected / f"{NAME}.json").read_text())["tolerances"]["share_accepted_pct"] == 5.0
    # a run without an expected file, or an expected file without a run, fails too
    (figures / f"{NAME}.json").unlink()
    assert tk.check(figures, expected) == [f"{NAME}: no FAST run in {figures} (run the notebook)"]
