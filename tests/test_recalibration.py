"""The correction against recalibration of y0, and the shrunk-estimator positive control (cilf/bench/recalibration)."""

import numpy as np
import pytest
import torch

import cilf
from cilf.app.crossfit import fit_features
from cilf.app.params import Budget, CorrectionFit
from cilf.bench.recalibration import correction_vs_recalibration, fit_isotonic, fit_linear


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
        assert set(rows) == {"y0", "correction", "linear", "isotonic"}
        for name, row in rows.items():
            lo, hi = row["mae_ci"]
            assert lo <= row["mae"] <= hi
            if name != "y0":
                assert row["minus_ref"] == pytest.approx(row["mae"] - rows["y0"]["mae"], abs=1e-6)
                assert row["unit"] == "subjects"
    assert rep["settings"]["test_images"] == 30 and rep["settings"]["train_images"] == 60


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
