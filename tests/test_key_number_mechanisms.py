"""The key-number rule catches a mechanism that breaks or starts to hurt, naming the number.

The notebooks record mechanisms as differences (x* - y0; MAE with minus without the contrastive loss) and hold
every float to the tight default tolerance (cilf.notebook.key_numbers.default_tolerance). Here the same numbers
come from a small seeded run, once as the code is and once with the mechanism broken; comparing the broken run
against the intact one, as a notebook compares itself against its recorded values, must fail on that number.
"""

import pytest
import torch

from cilf.app.crossfit import fit_features
from cilf.app.infer import predict_features
from cilf.app.params import CorrectionFit
from cilf.notebook.key_numbers import compare
from cilf.persist.factory import create_model

pytestmark = pytest.mark.slow


def _numbers(cfg) -> dict:
    """MAE of y0 and x*, and their difference, of a small model trained on features of 96 random images."""
    torch.manual_seed(0)
    images = torch.randn(96, 3, 112, 112)
    ages = torch.linspace(5, 85, 96)
    with torch.no_grad():
        feats = create_model(cfg).encode_image(images)
    model = fit_features(
        cfg, feats[:64], ages[:64], epochs=3, batch_size=16, warmup_steps=2, correction=CorrectionFit(3)
    )
    pred = predict_features(model, feats[64:])
    y = ages[64:].numpy()
    mae_y0, mae_x = float(abs(pred["y0"] - y).mean()), float(abs(pred["age"] - y).mean())
    return {"mae_y0": mae_y0, "mae_xstar": mae_x, "mae_xstar_minus_y0": mae_x - mae_y0}


@pytest.fixture(scope="module")
def intact(small_cfg):
    return _numbers(small_cfg.replace(correction_fit="joint"))


def test_the_same_run_repeats_within_the_tolerance(small_cfg, intact):
    assert compare("run", _numbers(small_cfg.replace(correction_fit="joint")), intact) == []


def test_a_correction_that_adds_a_tenth_of_a_year_fails_naming_the_number(small_cfg, intact, monkeypatch):
    import cilf.model.cilf_model as cm

    rule = cm.correct_estimates

    def biased(*a, **k):
        result = rule(*a, **k)
        result.x = result.x + 0.1  # the correction now moves every estimate up by 0.1 y
        return result

    monkeypatch.setattr(cm, "correct_estimates", biased)
    moved = compare("04_error_correction", _numbers(small_cfg.replace(correction_fit="joint")), intact)
    assert any(line.startswith("04_error_correction: mae_xstar_minus_y0 =") for line in moved), moved


def test_zeroing_the_contrastive_weight_fails_naming_the_number(small_cfg, intact):
    moved = compare("03_contrastive_fusion", _numbers(small_cfg.replace(correction_fit="joint", w_con=0.0)), intact)
    assert any(line.startswith("03_contrastive_fusion: mae_y0 =") for line in moved), moved
