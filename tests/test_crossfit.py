"""The calibrated correction: folds, out-of-fold first estimates, the post-hoc fit of E, and that it removes
a known bias; with correction off the age model trains exactly the same."""

import numpy as np
import pytest
import torch

import cilf
from cilf.app.correction_report import correction_report
from cilf.app.crossfit import fit_error_model, fit_features, fold_ids, held_out_gate, out_of_fold_estimates
from cilf.app.infer import predict_features
from cilf.app.params import Budget, CorrectionFit
from cilf.model.config import CILFConfig
from cilf.model.correction import ErrorEnsemble, inverse_correct


def test_folds_are_balanced_and_keep_each_subject_whole():
    groups = [f"s{i // 5}" for i in range(100)]  # 20 subjects of 5 images
    folds = fold_ids(100, 5, seed=0, groups=groups)
    assert sorted(np.bincount(folds).tolist()) == [20] * 5
    for g in set(groups):
        assert len({folds[i] for i in range(100) if groups[i] == g}) == 1
    plain = fold_ids(103, 4, seed=0, groups=[""] * 103)  # no usable subjects: image by image
    assert sorted(np.bincount(plain).tolist()) == [25, 26, 26, 26]
    assert not np.array_equal(fold_ids(100, 5, seed=1, groups=groups), folds)


def _shrunk(n, seed, dim=4):
    """Features h carrying the true age y, and first estimates shrunk towards the mean: y0 = 50 + 0.6 (y - 50) + noise."""
    g = torch.Generator().manual_seed(seed)
    y = 10 + 80 * torch.rand(n, generator=g)
    h = torch.cat([((y - 50) / 25).unsqueeze(1), torch.ones(n, 1), 0.1 * torch.randn(n, dim - 2, generator=g)], 1)
    y0 = 50 + 0.6 * (y - 50) + torch.randn(n, generator=g)
    return h, y0, y


def test_the_calibrated_correction_removes_most_of_an_injected_bias():
    torch.manual_seed(0)
    ens = ErrorEnsemble(4, members=3, hidden=32, candidate_range=20.0)
    h, y0, y = _shrunk(1000, seed=1)
    fit_error_model(ens, h, y0, y, epochs=150, lr=1e-2, candidate_range=20.0, seed=0, batch_size=128)
    assert bool(ens.calibrated)
    ht, y0t, yt = _shrunk(500, seed=2)  # fresh images with the same bias
    with torch.no_grad():
        r = inverse_correct(y0t, ens.error_fn(ht, y0t), eps=0.5, eta=1.0, max_steps=10)
    pred = {
        "y0": y0t.numpy(),
        "age": r.x.numpy(),
        "accepted": r.accepted.numpy(),
        "steps": r.steps.numpy(),
        "error0": r.error0.numpy(),
        "spread0": r.spread0.numpy(),
        "spread": r.spread.numpy(),
    }
    rep = correction_report(yt.numpy(), pred)
    assert rep["n_corrected"] >= 250  # E_P rejects the badly shrunk estimates (most of them)
    assert rep["mae_xstar_on_corrected"] <= 0.5 * rep["mae_y0_on_corrected"]
    # the mean signed error per decile of the true age (from -13 to +13 years) shrinks
    order = np.argsort(yt.numpy())
    before = [float((y0t - yt).numpy()[i].mean()) for i in np.array_split(order, 10)]
    after = [float((r.x - yt).numpy()[i].mean()) for i in np.array_split(order, 10)]
    assert max(map(abs, before)) > 10
    assert max(map(abs, after)) <= 0.35 * max(map(abs, before))
    # E_P is calibrated: its predicted |error| rises with the actual one
    assert rep["spearman_predicted_vs_actual_abs_error"] > 0.5
    cal = rep["calibration"]
    assert cal[-1]["actual_abs_error"] > 3 * cal[0]["actual_abs_error"]


@pytest.fixture(scope="module")
def tiny(small_cfg):
    """Features of 60 random images under the random-init small CLIP and their ages (5..85)."""
    torch.manual_seed(0)
    with torch.no_grad():
        feats = cilf.create_model(small_cfg).encode_image(torch.randn(60, 3, 112, 112))
    return feats, torch.linspace(5, 85, 60)


def test_out_of_fold_estimates_never_see_their_own_labels(small_cfg, tiny):
    feats, ages = tiny
    folds = fold_ids(60, 3, seed=0)
    settings = Budget(epochs=2, batch_size=16, warmup_steps=2, device="cpu")
    a, ha = out_of_fold_estimates(small_cfg, feats, ages, folds, settings, fused=True)
    changed = ages.clone()
    changed[torch.from_numpy(folds == 0)] = 90.0  # relabel fold 0 only
    b, hb = out_of_fold_estimates(small_cfg, feats, changed, folds, settings, fused=True)
    held = torch.from_numpy(folds == 0)
    torch.testing.assert_close(a[held], b[held], rtol=0, atol=0)  # fold 0's estimates ignore fold 0's labels
    torch.testing.assert_close(ha[held], hb[held], rtol=0, atol=0)  # and so do its fused features, E's input
    assert not torch.equal(a[~held], b[~held])  # the other folds' models trained on them
    assert not torch.equal(ha[~held], hb[~held])
    assert ha.ndim == 2 and ha.shape[0] == 60


def test_correction_off_trains_the_identical_age_model(small_cfg, tiny):
    feats, ages = tiny
    # without the gate, which switches this tiny model's correction off
    kw = dict(epochs=3, batch_size=16, warmup_steps=2, seed=3, correction=CorrectionFit(3, correction_gate=False))
    on = fit_features(small_cfg, feats[:48], ages[:48], **kw)
    off = fit_features(small_cfg.replace(correction=False), feats[:48], ages[:48], **kw)
    p_on, p_off = predict_features(on, feats[48:]), predict_features(off, feats[48:])
    np.testing.assert_array_equal(p_on["y0"], p_off["y0"])  # the only difference is the inference step
    np.testing.assert_array_equal(p_off["age"], p_off["y0"])
    assert bool(on.corrector.calibrated)
    moved = float(np.abs(p_on["age"] - p_on["y0"]).mean())
    assert moved > 0, f"the correction moved no estimate: mean |x* - y0| = {moved} years on {len(p_on['age'])} images"
    joint = fit_features(small_cfg.replace(correction_fit="joint"), feats[:48], ages[:48], **kw)
    assert not bool(joint.corrector.calibrated)


def test_the_error_model_learns_from_the_features_asked_for(small_cfg, tiny):
    feats, ages = tiny
    preds = {}
    for which in ("final", "out_of_fold"):
        fit = CorrectionFit(3, correction_gate=False, error_features=which)
        model = fit_features(
            small_cfg, feats[:48], ages[:48], epochs=2, batch_size=16, warmup_steps=2, seed=3, correction=fit
        )
        preds[which] = predict_features(model, feats[48:])
    np.testing.assert_array_equal(preds["final"]["y0"], preds["out_of_fold"]["y0"])  # the same age model
    assert not np.array_equal(preds["final"]["age"], preds["out_of_fold"]["age"])  # E learnt from other inputs
    with pytest.raises(ValueError, match="error_features"):
        CorrectionFit(error_features="in_sample")


def test_the_report_flags_a_model_without_correction_and_counts_the_corrected_subset():
    y = np.array([10.0, 20, 30, 40])
    none = correction_report(y, {"y0": y + 1, "age": y + 1, "accepted": np.ones(4, bool), "steps": np.zeros(4)})
    assert none["n_corrected"] == 0 and none["mae_y0_on_corrected"] is None and "calibration" not in none
    pred = {
        "y0": y + [1, 2, 8, 10],
        "age": y + [1, 2, 1, 3],
        "accepted": np.array([1, 1, 0, 0], bool),
        "steps": np.array([0, 0, 2, 3]),
        "error0": np.array([0.1, 0.4, 7, 9]),
        "spread": np.ones(4),
        "spread0": np.array([1.0, 2, 3, 4]),
    }
    rep = correction_report(y, pred)
    assert rep["n_corrected"] == 2 and rep["accepted_by_EP_pct"] == 50.0
    assert rep["mae_y0_on_corrected"] == 9.0 and rep["mae_xstar_on_corrected"] == 2.0
    assert rep["spearman_predicted_vs_actual_abs_error"] == pytest.approx(1.0)
    assert [b["n"] for b in rep["calibration"]] == [1, 1, 1, 1]
    assert rep["calibration"][-1]["actual_abs_error"] == 10.0


_GATE_CFG = CILFConfig(candidate_range=20.0)
_GATE_FIT = CorrectionFit(error_epochs=150, error_lr=1e-2)


def test_the_gate_keeps_a_correction_that_removes_bias_on_the_held_out_fold():
    torch.manual_seed(0)
    h, y0, y = _shrunk(1000, seed=1)
    folds = fold_ids(1000, 5, seed=0)
    gate = held_out_gate(
        ErrorEnsemble(4, members=3, hidden=32, candidate_range=20.0), h, y0, y, folds, _GATE_CFG, _GATE_FIT
    )
    assert gate["held_out_images"] == int((folds == 4).sum()) == 200
    assert gate["applied"] and gate["mae_xstar"] <= 0.6 * gate["mae_y0"] and gate["delta_ci"][1] < 0


def test_the_gate_resamples_subjects_when_it_has_them():
    torch.manual_seed(0)
    h, y0, y = _shrunk(600, seed=2)
    subjects = [f"s{i // 6}" for i in range(600)]
    folds = fold_ids(600, 5, seed=0, groups=subjects)
    kw = dict(cfg=_GATE_CFG, fit=CorrectionFit(error_epochs=20, error_lr=1e-2))
    ens = ErrorEnsemble(4, members=2, hidden=16, candidate_range=20.0)
    by_subject = held_out_gate(ens, h, y0, y, folds, groups=subjects, **kw)
    by_image = held_out_gate(ens, h, y0, y, folds, **kw)
    assert (by_subject["ci_unit"], by_image["ci_unit"]) == ("subjects", "images")
    assert by_subject["mae_xstar"] == by_image["mae_xstar"]  # the same probe; only the interval's unit differs
    assert by_subject["delta_ci"] != by_image["delta_ci"]


def test_the_gate_switches_off_a_correction_that_does_not_hold_on_the_held_out_fold():
    """Residuals that shift between folds (every estimate 6 y too high, except on the held-out fold): E learns to
    subtract 6 years, which is right on the folds it saw and wrong on the held-out one, so the gate says no."""
    g = torch.Generator().manual_seed(3)
    y = 10 + 80 * torch.rand(1000, generator=g)
    h = torch.cat([((y - 50) / 25).unsqueeze(1), torch.randn(1000, 3, generator=g)], 1)
    folds = fold_ids(1000, 5, seed=0)
    y0 = y + 6.0 * torch.from_numpy(folds != 4).float() + 0.5 * torch.randn(1000, generator=g)
    torch.manual_seed(0)
    ens = ErrorEnsemble(4, members=3, hidden=32, candidate_range=20.0)
    gate = held_out_gate(ens, h, y0, y, folds, _GATE_CFG, _GATE_FIT)
    assert not gate["applied"], gate
    assert gate["mae_xstar"] > 2 * gate["mae_y0"] and gate["corrected"] > 100 and gate["delta_ci"][0] > 0
    assert not bool(ens.calibrated)  # the probe was a copy: E itself is fitted afterwards, on every fold


def test_a_gated_off_correction_reports_E_P_but_moves_nothing(small_cfg, tiny):
    feats, ages = tiny
    model = fit_features(
        small_cfg,
        feats[:48],
        ages[:48],
        epochs=3,
        batch_size=16,
        warmup_steps=2,
        seed=3,
        correction=CorrectionFit(3, correction_gate=False),
    )
    on = predict_features(model, feats[48:])
    assert not np.array_equal(on["age"], on["y0"])
    model.corrector.applied.fill_(False)
    off = predict_features(model, feats[48:])
    np.testing.assert_array_equal(off["age"], off["y0"])
    np.testing.assert_array_equal(off["accepted"], on["accepted"])  # E_P's judgement is still reported
    assert not off["accepted"].all() and (off["steps"] == 0).all()


def test_the_printed_report_says_whether_the_gate_applied_the_correction():
    from cilf.app.correction_report import format_correction

    c = {
        "accepted_by_EP_pct": 60.0,
        "mean_steps": 1.0,
        "n_corrected": 4,
        "mae_y0_on_corrected": 5.0,
        "mae_xstar_on_corrected": 5.0,
        "fit": {"gate": {"held_out_images": 200, "mae_y0": 4.1, "mae_xstar": 4.6, "corrected": 90, "applied": False}},
    }
    text = "\n".join(format_correction(c))
    assert "held-out gate (200 training images" in text and "4.10 (y0) -> 4.60 (x*)" in text
    assert "switched off: x* = y0" in text
    c["fit"]["gate"].update(mae_xstar=3.9, applied=True)
    assert "correction applied" in "\n".join(format_correction(c))


def test_fold_models_reuse_the_final_models_encoded_prompts_with_identical_estimates(small_cfg, tiny, monkeypatch):
    from cilf.model.clip import CLIPAdapter

    feats, ages = tiny
    folds = fold_ids(60, 3, seed=0)
    settings = Budget(epochs=1, batch_size=16, warmup_steps=2, seed=1, device="cpu")
    final = fit_features(
        small_cfg.replace(correction=False), feats, ages, epochs=1, batch_size=16, warmup_steps=2, seed=1
    )
    encoded = []
    real = CLIPAdapter.encode_text
    monkeypatch.setattr(CLIPAdapter, "encode_text", lambda self, texts: encoded.append(len(texts)) or real(self, texts))
    alone, _ = out_of_fold_estimates(small_cfg, feats, ages, folds, settings)
    assert len(encoded) > 0  # each fold model encodes the prompts itself
    encoded.clear()
    shared, _ = out_of_fold_estimates(small_cfg, feats, ages, folds, settings, text_from=final)
    assert encoded == []  # none does when the final model's are reused
    assert torch.equal(alone, shared)  # and the estimates are bit for bit the same
    # a model with other text weights (another seed of a random-init tower) is not a source
    torch.manual_seed(123)
    other = cilf.create_model(small_cfg)
    with torch.no_grad():
        other.clip.class_text_features()
    fresh = cilf.create_model(small_cfg)
    assert fresh.clip.adopt_text_cache(other.clip) == all(
        torch.equal(a, b)
        for (n, a), (_, b) in zip(fresh.clip.model.state_dict().items(), other.clip.model.state_dict().items())
        if not n.startswith("visual.")
    )
