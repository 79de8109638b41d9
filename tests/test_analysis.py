"""Notebook analysis helpers: FPE steps, filter spectra, paired embeddings, correction outputs."""

import numpy as np
import pytest
import torch

from cilf.model.fourier import GlobalFilter
from cilf.notebook.analysis import age_separation, correction_outputs, filter_spectra, fpe_steps, paired_embeddings


def test_analysis_helpers(small_cfg):
    import cilf

    torch.manual_seed(0)
    f = GlobalFilter(4, (6, 6))
    steps = fpe_steps(f, torch.randn(6, 6, 4))
    assert steps["spectrum"].shape == (6, 4) and steps["output"].shape == (6, 6)
    model = cilf.create_model(small_cfg)
    assert [s.shape for s in filter_spectra(model)] == [(8, 5)]
    feats = model.encode_image(torch.randn(5, 3, 112, 112))
    ages = torch.tensor([10.0, 20, 30, 40, 50])
    fi, ti = paired_embeddings(model, feats, ages)
    assert fi.shape == ti.shape == (5, model.clip.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(fi, axis=1), 1, atol=1e-5)
    corr = correction_outputs(model, feats)
    assert corr["traj"].shape == (5, small_cfg.max_steps + 1) and corr["x"].shape == (5,)
    np.testing.assert_allclose(corr["traj"][:, 0], corr["y0"], atol=1e-5)
    ordered = np.repeat(np.arange(10.0), 5)[:, None] * np.ones((1, 3)) + np.random.default_rng(0).normal(
        0, 0.01, (50, 3)
    )
    ordered = np.c_[np.cos(ordered[:, 0] / 5), np.sin(ordered[:, 0] / 5), np.ones(50)]
    assert age_separation(ordered, np.repeat(np.arange(10.0), 5), k=4) < age_separation(
        ordered, np.random.default_rng(1).permutation(np.repeat(np.arange(10.0), 5)), k=4
    )
    with torch.no_grad():  # an all-pass filter K = 1 has a flat unit spectrum
        for blk in model.fusion.former.blocks:
            blk.mixer.filter.weight.zero_()
            blk.mixer.filter.weight[..., 0] = 1.0
    np.testing.assert_allclose(filter_spectra(model)[0], np.ones((8, 5)))


def test_the_age_head_taken_apart_adds_up_to_the_model(small_cfg):
    import cilf
    from cilf.notebook.analysis import prior_and_context

    torch.manual_seed(0)
    model = cilf.create_model(small_cfg.replace(similarity_prior=True))
    with torch.no_grad():  # a trained-looking head: both terms speak, and context prompting moves the text
        model.head.head_gain.fill_(0.3)
        model.head.prior_weight.fill_(0.8)
        model.fusion.gamma.fill_(0.5)
    feats = model.encode_image(torch.randn(4, 3, 112, 112))
    parts = prior_and_context(model, feats, batch=3)
    out = model(features=feats, correct=False)
    np.testing.assert_allclose(parts["prior"] + parts["head"], out.logits.detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(parts["y0"], out.y0.detach().numpy(), atol=1e-3)  # batches of 3 and 4
    assert parts["alpha"] == pytest.approx(0.8) and parts["g"] == pytest.approx(3.0) and parts["gamma"] == 0.5
    assert parts["context_shift"].shape == (4, small_cfg.num_classes) and (parts["context_shift"] > 0).all()
    with torch.no_grad():  # gamma = 0 at inference is exactly "without the context shift"
        model.fusion.gamma.zero_()
        np.testing.assert_allclose(
            model(features=feats, correct=False).y0.numpy(), parts["y0_without_context"], atol=1e-3
        )
    with torch.no_grad():  # with alpha = 1, the prior term alone is exactly zero-shot CLIP
        model.head.prior_weight.fill_(1.0)
    zero_shot = model.clip.zero_shot_ages(feats.pooled).numpy()
    np.testing.assert_allclose(prior_and_context(model, feats)["y0_prior_only"], zero_shot, atol=1e-3)
    with pytest.raises(ValueError, match="similarity_prior"):
        prior_and_context(cilf.create_model(small_cfg), feats)


def test_spearman_ci_resamples_subjects_and_sees_no_skill_in_noise():
    from cilf.notebook.analysis import spearman_ci

    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    rho, (lo, hi) = spearman_ci(a, a + rng.normal(scale=0.3, size=300), n_resamples=300)
    assert rho > 0.9 and lo > 0.85 and lo <= rho <= hi
    rho, (lo, hi) = spearman_ci(a, rng.normal(size=300), n_resamples=300)
    assert lo < 0 < hi  # noise: the CI contains 0
    groups = np.repeat(np.arange(30), 10)  # 30 subjects of 10 identical images: only 30 independent draws
    b = np.repeat(rng.normal(size=30), 10)
    c = b + np.repeat(rng.normal(size=30), 10)
    w_images = np.diff(spearman_ci(b, c, n_resamples=300)[1])[0]
    w_subjects = np.diff(spearman_ci(b, c, groups, n_resamples=300)[1])[0]
    assert w_subjects > 2 * w_images
    assert spearman_ci(a, a * 2, n_resamples=50) == spearman_ci(a, a * 2, n_resamples=50)  # seeded
    with pytest.raises(ValueError):
        spearman_ci([1.0, 2.0], [1.0, 2.0])


def test_curve_differences_are_paired_and_levels_count_at_every_n():
    from cilf.notebook.analysis import curve_differences, curve_errors

    y = np.arange(40.0)
    result = {
        "test_ages": y.tolist(),
        "subject_counts": [3, 10],
        "methods": {"full": {"kind": "curve"}, "zero_shot": {"kind": "level"}, "other": {"kind": "curve"}},
        "pred": {
            "full": {"3": [(y + 2).tolist()] * 2, "10": [(y + 1).tolist()] * 2},
            "zero_shot": {"10": [(y + 3).tolist()] * 2},  # a level: trained once, read at every n
            "other": {"3": [(y + 2).tolist(), [None] * 40]},  # a seed without predictions
        },
    }
    assert curve_errors(result, "zero_shot", 3).shape == (2, 40)
    assert curve_errors(result, "other", 10) is None
    d = curve_differences(result, "full", "zero_shot")
    assert sorted(d) == [3, 10] and d[3].estimate == pytest.approx(-1.0) and d[10].estimate == pytest.approx(-2.0)
    assert d[10].ci_low == d[10].ci_high == pytest.approx(-2.0)  # the same shift on every image: no spread
    assert curve_differences(result, "full", "other") == {}  # no image predicted by every seed of both


def test_run_predictions_reads_numbers_flags_and_gaps(tmp_path):
    from cilf.notebook.analysis import run_predictions

    (tmp_path / "test_predictions.csv").write_text(
        "path,true_age,age,y0,accepted,zero_shot\na.png,30,31.5,32,True,None\nb.png,40,38,38,False,41\n"
    )
    p = run_predictions(tmp_path)
    assert list(p["path"]) == ["a.png", "b.png"] and p["accepted"].tolist() == [1.0, 0.0]
    assert np.isnan(p["zero_shot"][0]) and p["zero_shot"][1] == 41 and p["age"].tolist() == [31.5, 38.0]


def test_own_image_share_tells_recognising_the_image_from_matching_its_age():
    from cilf.notebook.analysis import own_image_share

    rng = np.random.default_rng(0)
    n, d = 200, 16
    ages = rng.integers(1, 90, n).astype(float)
    age_dir = rng.normal(size=(90, d))
    by_age = age_dir[ages.astype(int) - 1]
    # targets that carry each image's own signature: the own target wins among same-age positives
    own = rng.normal(size=(n, d))
    share, chance = own_image_share(by_age + own, by_age + own, ages)
    assert share > 0.95 and chance < 0.5
    # targets that carry the age only: identical for equal ages, so the own target never wins strictly
    share_age, _ = own_image_share(by_age + 0.1 * rng.normal(size=(n, d)), by_age, ages)
    assert share_age < share and share_age <= 2 * chance
