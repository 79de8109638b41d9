"""Checkpoints: save and reload give the same model; damaged or edited ones fail naming the file."""
import numpy as np
import pytest
import torch

import cilf
from cilf.model.checkpoint import load_model
from cilf.run.evaluate import predict_features


@pytest.mark.slow
def test_checkpoint_round_trip_gives_identical_predictions(trained, small_cfg):
    out, _ = trained
    a = load_model(out / "best")
    b = load_model(out / "best")
    x = torch.randn(4, 3, 112, 112)
    feats = a.encode_image(x)
    pa, pb = predict_features(a, feats), predict_features(b, b.encode_image(x))
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    run = predict_features(load_model(out), feats)  # a run folder means its best/ checkpoint
    np.testing.assert_array_equal(run["age"], pa["age"])
    with pytest.raises(FileNotFoundError, match="not a cilf checkpoint"):
        load_model(out.parent)  # neither a checkpoint nor a run


def test_damaged_or_edited_checkpoints_fail_with_the_file_named(tmp_path, small_cfg):
    import json
    import shutil

    from cilf.model.checkpoint import load_model, load_train_state, save_checkpoint

    good = save_checkpoint(cilf.create_model(small_cfg), tmp_path / "good")
    load_model(good)
    truncated = shutil.copytree(good, tmp_path / "truncated")
    (truncated / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated/model.safetensors: cannot be read"):
        load_model(truncated)
    edited = shutil.copytree(good, tmp_path / "edited")
    cfg = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**cfg, "width": cfg["width"] // 2}))
    with pytest.raises(ValueError, match="do not fit .*edited/config.json .*size mismatch"):
        load_model(edited)
    assert (good / "model.safetensors").stat().st_size > 100  # the source was never touched
    (truncated / "train_state.pt").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="train_state.pt: cannot be read to resume"):
        load_train_state(truncated)
