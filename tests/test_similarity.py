"""Pixel-text similarity: global scores S and dense score maps M against hand-computed values."""

import math

import pytest
import torch

from cilf.model.similarity import dense_score_maps, global_scores


def _cos(a, b):
    return float(a @ b) / (float(a.norm()) * float(b.norm()))


def test_global_scores_follow_the_paper_formula():
    g = torch.Generator().manual_seed(0)
    v, text, tau = torch.randn(2, 5, generator=g), torch.randn(3, 5, generator=g), 0.07
    s = global_scores(v, text, tau)
    for i in range(2):  # S_i = exp(sim(T_i, I) / tau) / sum_j exp(sim(T_j, I) / tau)
        e = [math.exp(_cos(v[i], text[k]) / tau) for k in range(3)]
        assert s[i].tolist() == pytest.approx([x / sum(e) for x in e], rel=1e-5)


def test_dense_maps_are_per_token_cosines_on_the_grid():
    g = torch.Generator().manual_seed(1)
    h, w = 2, 3
    tokens, text = torch.randn(2, h * w, 4, generator=g), torch.randn(5, 4, generator=g)
    maps = dense_score_maps(tokens, text, (h, w))
    assert maps.shape == (2, 5, h, w)
    for b in range(2):
        for k in range(5):
            for i in range(h):
                for j in range(w):  # tokens are row-major over the grid
                    assert maps[b, k, i, j].item() == pytest.approx(_cos(tokens[b, i * w + j], text[k]), abs=1e-6)
    with pytest.raises(ValueError, match="do not fill a 2 x 2 grid"):
        dense_score_maps(tokens, text, (2, 2))
