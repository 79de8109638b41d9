"""The learning curve: nested subject subsets, the same test split at every point, the epochs rule, clipping."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cilf.bench.curve import CurveConfig, curve_epochs, format_curve, run_learning_curve, subject_order


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    out = tmp_path_factory.mktemp("curve")
    cfg = CurveConfig(
        n_images=150,
        subjects=(3, 10, 500, None),
        seeds=1,
        epochs=1,
        batch_size=16,
        min_steps=2,
        methods=("full", "zero_shot", "train_mean"),
        out=str(out),
        progress=False,
        crossfit_folds=2,
    )
    return run_learning_curve(cfg), cfg


def test_curve_gives_finite_maes_for_every_point(curve):
    r, _ = curve
    n_all = r["training_subjects"]
    assert r["subject_counts"] == [3, 10, n_all]
    for m in ("full", "train_mean"):
        pts = r["methods"][m]["points"]
        assert sorted(int(n) for n in pts) == [3, 10, n_all]
        for p in pts.values():
            assert math.isfinite(p["mae"]) and p["mae_ci"][0] <= p["mae"] <= p["mae_ci"][1]
    zs = r["methods"]["zero_shot"]
    assert zs["kind"] == "level" and list(zs["points"]) == [str(n_all)]
    assert set(r["full_minus_zero_shot"]) == {"3", "10", str(n_all)}
    assert r["source"] == "this run, SynthAge (synthetic) 80-20"
    # the test images' subjects are recorded beside their ages: what a reader's own analysis resamples
    assert len(r["test_subjects"]) == len(r["test_ages"]) and len(set(r["test_subjects"])) < len(r["test_ages"])
    text = format_curve(r)
    assert "CILF-CIAE (full)" in text and "Zero-shot CLIP" in text


def test_subject_draws_are_nested_and_seeded():
    subjects = [f"s{i // 5}" for i in range(200)]
    a, b = subject_order(subjects, 0), subject_order(subjects, 1)
    assert sorted(a) == sorted(set(subjects)) and a == subject_order(subjects, 0) and a != b
    for small, large in ((3, 10), (10, 30), (30, 40)):
        assert set(a[:small]) <= set(a[:large])


def test_subsets_in_the_run_are_nested_and_share_the_test_split(curve):
    r, _ = curve
    order = r["subject_order"]["0"]
    pts = sorted((p for p in r["points"] if p["seed"] == 0), key=lambda p: p["n_subjects"])
    chosen = [set(order[: p["n_subjects"]]) for p in pts]
    assert all(a < b for a, b in zip(chosen, chosen[1:]))
    assert [p["images"] for p in pts] == sorted(p["images"] for p in pts) and pts[0]["images"] < pts[-1]["images"]
    n_test = r["test_images"]
    for m, by_n in r["pred"].items():  # every point predicts the same test images, in the same order
        for preds in by_n.values():
            assert all(len(p) == n_test for p in preds), m
    saved = json.loads(Path(r["written_to"]).read_text())
    assert saved["test_ages"] == r["test_ages"] and len(r["test_ages"]) == n_test


def test_small_subsets_train_more_epochs_by_the_min_steps_rule(curve):
    r, cfg = curve
    for p in r["points"]:
        assert p["epochs"] == max(cfg.epochs, math.ceil(cfg.min_steps * cfg.batch_size / p["images"]))
    assert curve_epochs(15, 200, 64, 15) == math.ceil(200 * 64 / 15) and curve_epochs(15, 200, 64, 10**6) == 15
    assert "min_steps" in r["epochs_rule"]
    assert r["epochs"]["3"][0] > r["epochs"][str(r["training_subjects"])][0]


def test_counts_larger_than_available_are_clipped_and_said_once(curve):
    r, _ = curve
    n_all = r["training_subjects"]
    assert 10 < n_all < 500
    assert r["requested"][str(n_all)] == [500, "all"]
    assert len([t for t in r["notes"] if "clipped" in t]) == 1 and "[500]" in r["notes"][0]


def test_unknown_methods_and_bad_counts_are_refused():
    with pytest.raises(ValueError, match="unknown method"):
        CurveConfig(methods=("full", "nonsense"))
    with pytest.raises(ValueError, match="at least 1"):
        CurveConfig(subjects=(0, 10))


def test_cli_prints_the_table_and_a_rerun_reuses_every_run(curve, capsys):
    from cilf.cli import main

    r, cfg = curve
    args = [
        "curve",
        "--n-images",
        "150",
        "--subjects",
        "3",
        "10",
        "500",
        "all",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--min-steps",
        "2",
        "--methods",
        "full",
        "zero_shot",
        "train_mean",
        "--out",
        cfg.out,
        "--crossfit-folds",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "this run, SynthAge (synthetic) 80-20" in text and "full - zero-shot (paired)" in text
    assert f"all {r['training_subjects']}" in text and "runs computed 0" in text
    again = json.loads(Path(r["written_to"]).read_text())
    full = r["methods"]["full"]["points"]
    assert all(np.isclose(again["methods"]["full"]["points"][n]["mae"], full[n]["mae"]) for n in full)


def test_a_fixed_step_budget_trains_every_subset_for_the_same_steps():
    # ceil(steps / batches per epoch) epochs: 15 images at batch 32 -> 60 epochs of 1 step; 960 -> 2 epochs of 30
    assert [curve_epochs(2, 200, 32, n, steps=60) for n in (15, 50, 150, 500, 960)] == [60, 30, 12, 4, 2]
    steps = [e * math.ceil(n / 32) for e, n in zip([60, 30, 12, 4, 2], (15, 50, 150, 500, 960))]
    assert min(steps) == 60 and max(steps) < 60 + math.ceil(500 / 32)  # at most one epoch's batches more
    assert curve_epochs(2, 10, 32, 15) == 22  # without steps: the min_steps rule, as before


def test_fixed_steps_and_the_other_clips_zero_shot_level_in_a_run(tmp_path):
    from cilf.persist.clip_weights import bundled_weights_path

    if not bundled_weights_path("cilf-micro", "bundled-web").is_file():
        pytest.skip("the web-caption weights are not in this checkout")
    cfg = CurveConfig(
        n_images=150,
        subjects=(3, None),
        seeds=1,
        steps=6,
        warmup_steps=2,
        batch_size=16,
        methods=("full", "zero_shot"),
        model={"pretrained": "bundled-web"},
        zero_shot_weights=("bundled",),
        out=str(tmp_path),
        progress=False,
        crossfit_folds=2,
    )
    r = run_learning_curve(cfg)
    assert all(s >= 6 and s < 6 + math.ceil(150 / 16) for ss in r["steps"].values() for s in ss)
    assert "the same number of optimisation steps" in r["epochs_rule"]
    assert r["budget"]["steps"] == 6 and r["budget"]["cilf"]["epochs"] == "per size"  # not the unused cfg.epochs
    web, exact = r["methods"]["zero_shot"], r["methods"]["zero_shot@bundled"]
    assert exact["kind"] == "level" and exact["title"] == "Zero-shot CLIP prompts (bundled)"
    p_web, p_exact = (next(iter(e["points"].values())) for e in (web, exact))
    assert p_web["images"] == p_exact["images"] and p_web["mae"] != p_exact["mae"]  # the same images, other weights
    text = format_curve(r)
    assert "Zero-shot CLIP prompts (bundled)" in text and "optimisation steps" in text
