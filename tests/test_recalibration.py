"""The correction against recalibration of y0, and the shrunk-estimator positive control (cilf/bench/recalibration)."""

import json

import numpy as np
import pytest
import torch

import cilf
from cilf.app.crossfit import fit_features
from cilf.app.params import Budget, CorrectionFit
from cilf.bench.recalibration import (
    FORMS,
    correction_predictions,
    correction_vs_recalibration,
    fit_isotonic,
    fit_linear,
)


def test_recalibration_maps_undo_a_known_distortion():
    y = np.linspace(5, 85, 200)
    shrunk = 40 + 0.5 * (y - 40)  # a first estimator that compresses every age towards 40
    assert np.allclose(fit_linear(shrunk, y)(shrunk), y)
    iso = fit_isotonic(shrunk, y, (0, 100))
    assert np.allclose(iso(shrunk), y)
    assert iso([-50.0])[0] == pytest.approx(5.0) and iso([500.0])[0] == pytest.approx(85.0)  # clipped, not extrapolated


@pytest.fixture(scope="module")
def small_run():
    cfg = cilf.CILFConfig(pretrained=None, width=32, depth=1, ensemble_size=3, error_hidden=32, similarity_prior=False)
    torch.manual_seed(0)
    with torch.no_grad():
        feats = cilf.create_model(cfg).encode_image(torch.randn(90, 3, 112, 112))
    ages = torch.linspace(5, 85, 90)[torch.randperm(90, generator=torch.Generator().manual_seed(1))]
    budget = Budget(epochs=3, batch_size=16, warmup_steps=2, device="cpu", seed=3)
    fit = CorrectionFit(3, error_epochs=5, correction_gate=False)
    model = fit_features(cfg, feats[:60], ages[:60], **vars(budget), correction=fit)
    groups = [f"s{i // 3}" for i in range(90)]
    report = correction_vs_recalibration(
        model, (feats[:60], ages[:60], groups[:60]), (feats[60:], ages[60:], groups[60:]), budget, fit
    )
    return model, feats, ages, report


def test_the_report_compares_every_method_with_y0_on_the_same_test_images(small_run):
    model, feats, ages, rep = small_run
    for block in ("real", "control"):
        rows = rep[block]
        assert set(rows) == set(FORMS) - {"joint"}  # the joint form is another model: bench-correction trains it
        for name, row in rows.items():
            lo, hi = row["mae_ci"]
            assert lo <= row["mae"] <= hi
            if name != "y0":
                assert row["minus_ref"] == pytest.approx(row["mae"] - rows["y0"]["mae"], abs=1e-6)
                assert row["unit"] == "subjects"
    assert rep["settings"]["test_images"] == 30 and rep["settings"]["train_images"] == 60
    cf, real = rep["real"]["crossfit"], rep["real"]
    assert cf["minus_own_y0"] == pytest.approx(cf["mae"] - real["y0_folds"]["mae"], abs=1e-6)
    assert cf["minus_default"] == pytest.approx(cf["mae"] - real["correction"]["mae"], abs=1e-6)
    assert cf["minus_recal"] == pytest.approx(cf["mae"] - real[cf["recal"]]["mae"], abs=1e-6)


def test_recalibration_does_not_care_that_the_control_shrank_y0(small_run):
    # y0' = m + s (y0 - m) is an increasing affine map of y0: a line or a monotone map fitted on y0' predicts
    # exactly what it predicts fitted on y0, so only the correction and y0 itself feel the shrinkage
    _, _, _, rep = small_run
    for name in ("linear", "isotonic"):
        assert rep["control"][name]["mae"] == pytest.approx(rep["real"][name]["mae"], abs=1e-4)
    assert rep["control"]["y0"]["mae"] != pytest.approx(rep["real"]["y0"]["mae"], abs=1e-3)


def test_a_model_without_correction_is_refused(small_run):
    model, feats, ages, _ = small_run
    plain = cilf.create_model(model.cfg.replace(correction=False))
    with pytest.raises(ValueError, match="correction=False"):
        correction_vs_recalibration(plain, (feats, ages, None), (feats, ages, None), Budget(epochs=1))


def test_the_cross_fitted_form_corrects_each_fold_model_s_own_estimates(small_run, monkeypatch):
    # the fold models' test y0 are what the cross-fitted form starts from: shifting every fold model's output by
    # +5 y moves its first estimate by exactly 5 y, and the final model's y0 not at all
    import cilf.bench.recalibration as recal

    model, feats, ages, _ = small_run
    budget = Budget(epochs=3, batch_size=16, warmup_steps=2, device="cpu", seed=3)
    fit = CorrectionFit(3, error_epochs=5, correction_gate=False)
    groups = [f"s{i // 3}" for i in range(60)]
    args = (model, (feats[:60], ages[:60], groups), (feats[60:], ages[60:]), budget, fit)
    base = correction_predictions(*args)
    real = recal.predict_features

    def shifted(m, f, **kw):
        out = dict(real(m, f, **kw))
        if m is not model:  # a fold model
            out["y0"] = out["y0"] + 5.0
        return out

    monkeypatch.setattr(recal, "predict_features", shifted)
    moved = correction_predictions(*args)
    assert np.allclose(moved["real"]["y0_folds"], base["real"]["y0_folds"] + 5.0, atol=1e-4)
    assert np.allclose(moved["real"]["y0"], base["real"]["y0"])
    assert moved["settings"]["mae_y0_out_of_fold"] != pytest.approx(base["settings"]["mae_y0_out_of_fold"])
    # the cross-fitted correction starts from the fold models' estimates (it moves with them); the default one
    # from the final model's (it does not)
    assert np.abs(moved["real"]["crossfit"] - base["real"]["crossfit"]).mean() > 2.5
    assert np.allclose(moved["real"]["correction"], base["real"]["correction"])


def test_bench_correction_pools_folds_and_seeds_and_reuses_its_runs(data_env, tmp_path, monkeypatch, capsys):
    from cilf.cli import main

    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    out, js = tmp_path / "runs", tmp_path / "correction.json"
    args = ["bench-correction", "--n-images", "1200", "--max-folds", "1", "--seeds", "2", "--epochs", "1"]
    args += ["--crossfit-folds", "2", "--error-epochs", "2", "--out", str(out), "--json", str(js), "--quiet"]
    args += ["--set", "width=32", "depth=1", "ensemble_size=2", "error_hidden=32"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "cross-fitted minus default correction" in text and "this run, SynthAge" in text
    res = json.loads(js.read_text())
    assert set(res["real"]) == set(FORMS) and set(res["control"]) == set(FORMS) - {"joint"}
    joint = res["real"]["joint"]
    assert joint["minus_default"] == pytest.approx(joint["mae"] - res["real"]["correction"]["mae"], abs=1e-6)
    assert "joint (the paper's form) minus default correction" in text
    sp = res["spearman_with_abs_y0_error"]
    assert (
        sp["spread0"]["runs"] == 2 and -1 <= sp["spread0"]["min"] <= sp["spread0"]["mean"] <= sp["spread0"]["max"] <= 1
    )
    assert res["runs"]["computed"] == 2 and res["seeds"] == 2 and res["gate"]["runs"] == 2
    n = res["test_images"]
    assert all(len(r["forms"]["real"]["crossfit"]) == n for r in res["per_run"])
    cells = np.array([r["forms"]["real"]["crossfit"] for r in res["per_run"]])  # (seeds, images), one split
    assert cells.shape == (2, n) and np.isfinite(cells).all()
    for block in ("real", "control"):  # the difference rows are differences of the MAE rows
        rows = res[block]
        cf = rows["crossfit"]
        assert cf["minus_default"] == pytest.approx(cf["mae"] - rows["correction"]["mae"], abs=1e-6)
        assert cf["minus_own_y0"] == pytest.approx(cf["mae"] - rows["y0_folds"]["mae"], abs=1e-6)
    assert main(args) == 0  # every run reused: the same rows
    again = json.loads(js.read_text())
    assert again["runs"] == {"computed": 0, "reused": 2}
    assert again["real"]["crossfit"]["mae"] == res["real"]["crossfit"]["mae"]


def test_bench_correction_refuses_a_model_without_the_post_hoc_correction(data_env, tmp_path, monkeypatch, capsys):
    from cilf.cli import main

    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    args = ["bench-correction", "--n-images", "1200", "--max-folds", "1", "--seeds", "2", "--epochs", "1"]
    args += [
        "--out",
        str(tmp_path / "runs"),
        "--json",
        str(tmp_path / "c.json"),
        "--quiet",
        "--set",
        "correction=false",
    ]
    assert main(args) == 2
    assert "post-hoc correction" in capsys.readouterr().err and not (tmp_path / "c.json").exists()
