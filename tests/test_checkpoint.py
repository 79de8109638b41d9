"""Checkpoints: save and reload give the same model; damaged or edited ones fail naming the file."""

import numpy as np
import pytest
import torch

import cilf
from cilf.app.crossfit import fit_features
from cilf.app.infer import predict_features
from cilf.app.params import CorrectionFit
from cilf.persist.checkpoint import load_model, save_checkpoint, write_manifest
from cilf.persist.clip_weights import bundled_weights_path
from cilf.utils import seed_everything


def _trained_in_memory(cfg):
    """A CILF trained for a few epochs on features of 48 random images (ages 5..85): (model, features, images)."""
    torch.manual_seed(0)
    images = torch.randn(48, 3, 112, 112)
    with torch.no_grad():
        features = cilf.create_model(cfg).encode_image(images)
    model = fit_features(
        cfg, features, torch.linspace(5, 85, 48), epochs=3, batch_size=16, warmup_steps=2, correction=CorrectionFit(3)
    )
    return model, features, images


@pytest.mark.parametrize("pretrained", [None, "bundled"], ids=["random-clip-saved", "bundled-clip-reloaded"])
def test_checkpoint_round_trip_gives_identical_predictions(small_cfg, tmp_path, pretrained):
    if pretrained == "bundled" and not bundled_weights_path(small_cfg.clip_model).is_file():
        pytest.skip("no bundled weights in this checkout")
    cfg = small_cfg.replace(pretrained=pretrained)
    model, features, images = _trained_in_memory(cfg)
    seed_everything(0)  # fit_features starts from this initialisation: training must have moved it
    untrained = cilf.create_model(cfg).state_dict()
    trained = model.state_dict()
    for part in ("fusion.", "head.", "corrector."):
        assert any(not torch.equal(v, untrained[k]) for k, v in trained.items() if k.startswith(part)), part

    reloaded = load_model(save_checkpoint(model, tmp_path / "ck"))
    saved, loaded = model.trainable_state_dict(), reloaded.trainable_state_dict()
    assert saved.keys() == loaded.keys() and any(k.startswith("fusion.") for k in saved)
    assert any(k.startswith("clip.model.") for k in saved) == (pretrained is None)  # frozen bundled CLIP: not copied
    everything = reloaded.state_dict()
    assert everything.keys() == trained.keys()
    for k, v in trained.items():
        assert torch.equal(everything[k], v), k

    pa, pb = predict_features(model, features), predict_features(reloaded, features)
    assert set(pa) >= {"age", "y0", "steps", "accepted", "spread", "zero_shot"}
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    with torch.no_grad():  # from pixels: the CLIP weights round-trip too
        a, b = model(images[:8]), reloaded(images[:8])
    for name in ("y0", "age"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.correction.steps, b.correction.steps)


@pytest.mark.slow
def test_a_run_folder_loads_its_best_checkpoint(trained):
    out, _ = trained
    feats = load_model(out / "best").encode_image(torch.randn(4, 3, 112, 112))
    best = predict_features(load_model(out / "best"), feats)
    run = predict_features(load_model(out), feats)  # a run folder means its best/ checkpoint
    np.testing.assert_array_equal(run["age"], best["age"])
    with pytest.raises(FileNotFoundError, match="not a cilf checkpoint"):
        load_model(out.parent)  # neither a checkpoint nor a run


def test_damaged_or_edited_checkpoints_fail_with_the_file_named(tmp_path, small_cfg):
    import json
    import shutil

    from cilf.persist.checkpoint import load_train_state

    good = save_checkpoint(cilf.create_model(small_cfg), tmp_path / "good")
    load_model(good)
    truncated = shutil.copytree(good, tmp_path / "truncated")
    (truncated / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated/model.safetensors: checksum mismatch, the file is damaged"):
        load_model(truncated)
    write_manifest(truncated)  # a manifest made to match: the weights file itself must be refused
    with pytest.raises(ValueError, match="truncated/model.safetensors: cannot be read"):
        load_model(truncated)
    edited = shutil.copytree(good, tmp_path / "edited")
    cfg = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**cfg, "width": cfg["width"] // 2}))
    with pytest.raises(ValueError, match="edited/config.json: checksum mismatch, the file is damaged"):
        load_model(edited)
    write_manifest(edited)  # a manifest made to match: the weights are checked against the config
    with pytest.raises(ValueError, match="do not fit .*edited/config.json .*size mismatch"):
        load_model(edited)
    assert (good / "model.safetensors").stat().st_size > 100  # the source was never touched
    (truncated / "train_state.pt").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="train_state.pt: cannot be read to resume"):
        load_train_state(truncated)


def test_a_folder_without_a_manifest_is_not_a_checkpoint(tmp_path, small_cfg):
    import shutil

    good = save_checkpoint(cilf.create_model(small_cfg), tmp_path / "good")
    partial = shutil.copytree(good, tmp_path / "partial")
    (partial / "manifest.json").unlink()
    with pytest.raises(ValueError, match="partial/manifest.json: missing, so .* is not a complete cilf checkpoint"):
        load_model(partial)


def test_every_file_of_a_checkpoint_gets_the_mode_the_umask_gives(tmp_path, small_cfg):
    import os

    old = os.umask(0o022)
    try:
        ck = save_checkpoint(cilf.create_model(small_cfg), tmp_path / "ck")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in ck.iterdir() if p.is_file()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o644}, modes  # safetensors alone makes 0600
