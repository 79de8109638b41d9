"""Pre-training the micro-CLIP: captions, determinism, resume, open_clip-loadable float16 export."""

import json

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import load_file

from cilf.app.pretrain import PretrainConfig, export_weights, pretrain_clip, training_caption


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
    ref.load_state_dict(torch.load(tmp_path / "a" / "state.pt", weights_only=True)["model"])
    x = torch.randn(2, 3, 112, 112)
    torch.testing.assert_close(model.encode_image(x), ref.encode_image(x), atol=2e-2, rtol=2e-2)  # fp16 export
    assert json.loads((tmp_path / "a" / "history.json").read_text())[-1]["epoch"] == 2


def test_export_is_float16_and_small(tmp_path):
    model, _, _ = open_clip.create_model_and_transforms("cilf-micro", pretrained=None)
    p = export_weights(model, tmp_path / "w.safetensors")
    n = sum(v.numel() for v in model.state_dict().values())
    assert p.stat().st_size < 2.1 * n and p.stat().st_size < 20 * 2**20
    saved, state = load_file(str(p)), model.state_dict()
    assert saved.keys() == state.keys()
    for k, v in state.items():  # every float weight is the float16 rounding of the model's; the rest exact
        assert torch.equal(saved[k], v.half() if v.is_floating_point() else v), k


def test_bf16_pretraining_tracks_fp32_and_is_refused_on_resume_with_another_precision(tmp_path, monkeypatch):
    """bf16 autocast changes the arithmetic, not the method: same data and seed, the losses stay close."""
    monkeypatch.setenv("CILF_DATA", str(tmp_path / "data"))
    kw = dict(n_images=256, epochs=2, batch_size=32, warmup_steps=2, progress=False)
    fp32 = pretrain_clip(PretrainConfig(out=str(tmp_path / "f"), **kw))["history"]
    bf16 = pretrain_clip(PretrainConfig(out=str(tmp_path / "h"), precision="bf16", **kw))["history"]
    assert bf16[-1]["loss"] < bf16[0]["loss"]  # it learns
    for a, b in zip(fp32, bf16):
        assert abs(a["loss"] - b["loss"]) < 0.05 * a["loss"], (fp32, bf16)
    pretrain_clip(PretrainConfig(out=str(tmp_path / "p"), stop_after_epochs=1, **kw))
    with pytest.raises(Exception, match="precision"):
        pretrain_clip(PretrainConfig(out=str(tmp_path / "p"), precision="bf16", **kw), resume=True)
    with pytest.raises(ValueError, match="precision"):
        PretrainConfig(precision="fp16")
