"""Notebook analysis helpers: FPE steps, filter spectra, paired embeddings, correction outputs."""

import numpy as np
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
