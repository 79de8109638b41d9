import json

import numpy as np
import open_clip
import pytest
import torch

from cilf.notebook.analysis import age_separation, correction_outputs, filter_spectra, fpe_steps, paired_embeddings
from cilf.model.clip import bundled_weights_path
from cilf.run.clip_report import recall_at_k
from cilf.model.fourier import GlobalFilter
from cilf.run.pretrain import PretrainConfig, export_weights, pretrain_clip, training_caption


def test_recall_at_k_hand_computed():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.0], [0.1, 0.2, 0.3]])
    # row 0: match ranked 1st; row 1: 2nd; row 2: 1st
    assert recall_at_k(sim, ks=(1, 2)) == {"R@1": pytest.approx(200 / 3), "R@2": pytest.approx(100.0)}


def test_training_caption_mixes_in_the_prompt_wording():
    rng = np.random.default_rng(0)
    caps = {training_caption({"caption": "a photo of a 7-year-old girl."}, 7.0, rng, 0.5) for _ in range(50)}
    assert caps == {"a photo of a 7-year-old girl.", "a photo of a 7-year-old person."}


def test_pretraining_is_deterministic_resumable_and_exports_open_clip_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("CILF_DATA", str(tmp_path / "data"))
    kw = dict(n_images=256, epochs=2, batch_size=32, warmup_steps=2, progress=False)
    a = pretrain_clip(PretrainConfig(out=str(tmp_path / "a"), **kw))
    part = pretrain_clip(PretrainConfig(out=str(tmp_path / "b"), stop_after_epochs=1, **kw))
    assert part["stopped_after_epoch"] == 1
    with pytest.raises(FileExistsError):
        pretrain_clip(PretrainConfig(out=str(tmp_path / "b"), **kw))
    b = pretrain_clip(PretrainConfig(out=str(tmp_path / "b"), **kw), resume=True)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert a["history"][-1]["loss"] < a["history"][0]["loss"]  # it learns
    model, _, _ = open_clip.create_model_and_transforms("cilf-micro", pretrained=a["weights"])  # open_clip's own loader
    ref, _, _ = open_clip.create_model_and_transforms("cilf-micro", pretrained=None)
    ref.load_state_dict(torch.load(tmp_path / "a" / "state.pt", weights_only=False)["model"])
    x = torch.randn(2, 3, 112, 112)
    torch.testing.assert_close(model.encode_image(x), ref.encode_image(x), atol=2e-2, rtol=2e-2)  # fp16 export
    assert json.loads((tmp_path / "a" / "history.json").read_text())[-1]["epoch"] == 2


def test_export_is_float16_and_small(tmp_path):
    model, _, _ = open_clip.create_model_and_transforms("cilf-micro", pretrained=None)
    p = export_weights(model, tmp_path / "w.safetensors")
    n = sum(v.numel() for v in model.state_dict().values())
    assert p.stat().st_size < 2.1 * n and p.stat().st_size < 20 * 2**20


def test_bundled_weights_if_shipped_load_by_name():
    path = bundled_weights_path("cilf-micro")
    if not path.is_file():
        pytest.skip("no bundled weights in this checkout")
    assert path.stat().st_size <= 20 * 2**20
    import cilf

    m = cilf.create_model(pretrained="bundled")
    assert m.cfg.pretrained == "bundled"


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
    ordered = np.repeat(np.arange(10.0), 5)[:, None] * np.ones((1, 3)) + np.random.default_rng(0).normal(0, .01, (50, 3))
    ordered = np.c_[np.cos(ordered[:, 0] / 5), np.sin(ordered[:, 0] / 5), np.ones(50)]
    assert age_separation(ordered, np.repeat(np.arange(10.0), 5), k=4) < age_separation(
        ordered, np.random.default_rng(1).permutation(np.repeat(np.arange(10.0), 5)), k=4)
