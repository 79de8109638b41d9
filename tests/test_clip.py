"""The CLIP adapter over open_clip: weights resolution, local and bundled weights, image features."""
import pytest
import torch

import cilf
from cilf.model.clip import WeightsNotFoundError, bundled_weights_path, resolve_pretrained
from cilf.model.config import CILFConfig


def test_patch_tokens_are_in_the_joint_space(model):
    f = model.encode_image(torch.randn(2, 3, 112, 112))
    h, w = model.clip.grid
    assert f.pooled.shape == (2, model.clip.embed_dim) and f.tokens.shape == (2, h * w, model.clip.embed_dim)
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        model.encode_image(torch.randn(2, 112, 112))


def test_weights_resolution_fails_fast_and_clearly(tmp_path):
    assert resolve_pretrained("cilf-micro", None) is None
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_pretrained("cilf-micro", str(tmp_path / "nope.safetensors"))
    with pytest.raises(WeightsNotFoundError, match="HF_HUB_OFFLINE"):
        cilf.create_model(CILFConfig(clip_model="ViT-B-32", pretrained="openai"))
    with pytest.raises(ValueError, match="unknown open_clip model"):
        cilf.create_model(CILFConfig(clip_model="ViT-Z-99"))


def test_local_checkpoint_path_loads_through_open_clip(tmp_path, small_cfg):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    a = cilf.create_model(small_cfg)
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in a.clip.model.state_dict().items()}, str(path))
    torch.manual_seed(2)
    b = cilf.create_model(small_cfg, pretrained=str(path))
    x = torch.randn(1, 3, 112, 112)
    torch.testing.assert_close(a.encode_image(x).pooled, b.encode_image(x).pooled)


def test_bundled_weights_if_shipped_load_by_name():
    path = bundled_weights_path("cilf-micro")
    if not path.is_file():
        pytest.skip("no bundled weights in this checkout")
    assert path.stat().st_size <= 20 * 2**20
    import cilf

    m = cilf.create_model(pretrained="bundled")
    assert m.cfg.pretrained == "bundled"
