"""The CLIP retrieval report."""

import pytest
import torch

from cilf.app.clip_report import recall_at_k


def test_recall_at_k_hand_computed():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.0], [0.1, 0.2, 0.3]])
    # row 0: match ranked 1st; row 1: 2nd; row 2: 1st
    assert recall_at_k(sim, ks=(1, 2)) == {"R@1": pytest.approx(200 / 3), "R@2": pytest.approx(100.0)}


def test_other_weights_are_compared_with_the_bundled_ones_paired_over_subjects(tmp_path, monkeypatch):
    import json

    from cilf.app.clip_report import clip_report, format_clip_report
    from cilf.persist.clip_weights import bundled_weights_path

    monkeypatch.setenv("CILF_DATA", str(tmp_path / "data"))
    rep = clip_report(
        n_images=200,
        n_retrieval=20,
        device="cpu",
        out=tmp_path / "out",
        progress=False,
        weights={"copy": str(bundled_weights_path("cilf-micro"))},
    )
    d = rep["others"]["copy"]["zero_shot_minus_bundled"]
    assert d["estimate"] == 0 and d["ci"] == [0, 0] and d["unit"] == "subjects"  # the same weights: no difference
    assert rep["others"]["copy"]["zero_shot_mae"] == rep["bundled"]["zero_shot_mae"]
    saved = json.loads((tmp_path / "out" / "clip_report.json").read_text())
    assert "errors" not in saved["bundled"] and "copy" in saved["others"]
    assert "copy (" in format_clip_report(rep) and "minus bundled +0.00 [0.00, 0.00]" in format_clip_report(rep)
