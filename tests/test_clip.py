"""The CLIP adapter over open_clip: weights resolution, local and bundled weights, image features."""

import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

import cilf
from cilf.model.config import CILFConfig
from cilf.persist.clip_weights import WeightsNotFoundError, bundled_weights_path, resolve_pretrained
from cilf.persist.factory import build_clip

# ViT-B-32's shape (224 px images, 32 px patches, a 7 x 7 grid, class-token pooling), shrunk to be cheap;
# the "avg" twin pools by averaging the patch tokens instead of taking the class token.
TINY_B32 = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_B32_AVG = {**TINY_B32, "vision_cfg": {**TINY_B32["vision_cfg"], "pool_type": "avg"}}


@pytest.fixture(scope="module", params=["cilf-micro-bundled", "tiny-b32-random", "tiny-b32-avg-random"])
def adapter(request, tmp_path_factory):
    """A CLIPAdapter in eval mode: the bundled micro-CLIP, or a random-init ViT-B-32-like tower."""
    if request.param == "cilf-micro-bundled":
        if not bundled_weights_path("cilf-micro").is_file():
            pytest.skip("no bundled weights in this checkout")
        cfg = CILFConfig(pretrained="bundled")
    else:
        name = "cilf-test-" + request.param.removesuffix("-random")
        path = tmp_path_factory.mktemp("open_clip_config") / f"{name}.json"
        path.write_text(json.dumps(TINY_B32_AVG if "avg" in name else TINY_B32))
        open_clip.add_model_config(path)
        cfg = CILFConfig(clip_model=name, pretrained=None)
    torch.manual_seed(0)
    return build_clip(cfg).eval()


def _images(adapter, n=2):
    size = adapter.model.visual.image_size[0]
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_pooled_embedding_is_open_clips_encode_image(adapter):
    x = _images(adapter)
    v = adapter.encode_image(x).pooled
    ref = adapter.model.encode_image(x)  # open_clip's own forward
    assert ref.abs().max() > 1e-2  # not a degenerate all-zero embedding
    torch.testing.assert_close(v, ref, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_text_features_are_open_clips_encode_text(adapter):
    tokenizer = open_clip.get_tokenizer(adapter.cfg.clip_model)
    prompt = "a photo of a 37-year-old person."
    torch.testing.assert_close(
        adapter.encode_text([prompt]), adapter.model.encode_text(tokenizer([prompt])), atol=1e-5, rtol=1e-5
    )
    # T_k: each template's feature L2-normalised, averaged over the templates, normalised again
    text = adapter.class_text_features()
    assert text.shape == (adapter.cfg.num_classes, adapter.embed_dim)
    for k in (0, 37, adapter.cfg.num_classes - 1):
        age = adapter.cfg.ages[k]
        per_template = adapter.model.encode_text(
            tokenizer([t.format(age=age) for t in adapter.cfg.templates]), normalize=True
        )
        torch.testing.assert_close(text[k], F.normalize(per_template.mean(0), dim=-1), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_patch_tokens_and_pooled_embedding_share_the_final_norm_and_projection(adapter):
    """P is ln_post then proj applied to each patch token of the last block; v is the same map of the
    class token (class-token pooling) or the mean of P (average pooling)."""
    visual = adapter.model.visual
    seen = []
    hook = visual.transformer.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        f = adapter.encode_image(_images(adapter))
    finally:
        hook.remove()
    (last,) = seen  # B x (1 + N) x W: the class token, then the patch tokens row by row
    projected = visual.ln_post(last) @ visual.proj
    h, w = adapter.grid
    assert last.shape[1] == 1 + h * w
    torch.testing.assert_close(f.tokens, projected[:, 1:], atol=1e-5, rtol=1e-5)
    if visual.pool_type == "tok":
        torch.testing.assert_close(f.pooled, projected[:, 0], atol=1e-5, rtol=1e-5)
    else:
        assert visual.pool_type == "avg"
        torch.testing.assert_close(f.pooled, f.tokens.mean(1), atol=1e-5, rtol=1e-5)


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


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_boundary_split_is_encode_image(k):
    """encode_to_block then encode_from_block at the frozen boundary L - k is encode_image (float tolerance),
    and the tokens entering block b are what open_clip's blocks 0..b-1 give."""
    torch.manual_seed(0)
    a = build_clip(CILFConfig(pretrained=None, unfreeze_last_blocks=k)).eval()
    v, x = a.model.visual, _images(a)
    assert a.image_blocks == 4 and a.boundary == 4 - k
    with torch.no_grad():
        whole = a.encode_image(x)
        cut = a.encode_to_block(x)
        split = a.encode_from_block(cut)
        ref = v._embeds(x)
        for blk in v.transformer.resblocks[: 4 - k]:
            ref = blk(ref)
        other = a.encode_from_block(a.encode_to_block(x, 1), 1)  # any boundary gives the same features
    assert cut.shape == (2, 1 + a.grid[0] * a.grid[1], v.transformer.width)
    torch.testing.assert_close(cut, ref, atol=1e-6, rtol=1e-6)
    for f in (split, other):
        torch.testing.assert_close(f.pooled, whole.pooled, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(f.tokens, whole.tokens, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="boundary"):
        a.encode_from_block(cut, 5)
    with pytest.raises(ValueError, match="block tokens"):
        a.encode_from_block(cut[..., :10])


def test_last_k_blocks_train_and_the_rest_stays_frozen():
    """unfreeze_last_blocks=k trains the image tower's last k blocks, ln_post and proj only; the text tower
    stays frozen (its blocks train only with unfreeze_text_blocks); too many blocks is a clear error."""
    torch.manual_seed(0)
    a = build_clip(CILFConfig(pretrained=None, unfreeze_last_blocks=2))
    trainable = {n for n, p in a.model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(
            ("visual.transformer.resblocks.2.", "visual.transformer.resblocks.3.", "visual.ln_post.", "visual.proj")
        )
        for n in trainable
    )
    assert "visual.proj" in trainable and a.image_trainable and not a.text_trainable
    f = a.encode_from_block(a.encode_to_block(_images(a)))
    f.pooled.sum().backward()
    assert a.model.visual.transformer.resblocks[2].mlp.c_fc.weight.grad is not None
    assert a.model.visual.transformer.resblocks[1].mlp.c_fc.weight.grad is None
    text = build_clip(CILFConfig(pretrained=None, unfreeze_text_blocks=1))
    assert text.text_trainable and not text.image_trainable
    with pytest.raises(ValueError, match="unfreeze_last_blocks=5, but cilf-micro has 4 blocks"):
        build_clip(CILFConfig(pretrained=None, unfreeze_last_blocks=5))


def test_another_image_size_gives_another_grid_from_the_same_weights():
    """image_size=196 turns the micro-CLIP's 8 x 8 grid into ViT-B/16's 14 x 14 (N = 196): the class-token
    position and every other weight as in the file, the grid's positions interpolated; its own size changes
    nothing."""
    if not bundled_weights_path("cilf-micro").is_file():
        pytest.skip("no bundled weights in this checkout")
    own = build_clip(CILFConfig(pretrained="bundled-web")).eval()
    same = build_clip(CILFConfig(pretrained="bundled-web", image_size=112)).eval()
    big = build_clip(CILFConfig(pretrained="bundled-web", image_size=196)).eval()
    assert own.grid == same.grid == (8, 8) and big.grid == (14, 14)
    a, b = own.model.visual.state_dict(), big.model.visual.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k != "positional_embedding")
    assert torch.equal(a["positional_embedding"][0], b["positional_embedding"][0])  # the class token's
    from open_clip.model import resize_pos_embed

    state = {"visual.positional_embedding": a["positional_embedding"].float()}
    resize_pos_embed(state, big.model)  # the grid's positions: the 8 x 8 ones interpolated bicubically to 14 x 14
    assert torch.equal(b["positional_embedding"], state["visual.positional_embedding"])
    assert not torch.equal(b["positional_embedding"][1:15], a["positional_embedding"][1:].repeat(2, 1)[:14])
    with pytest.raises(ValueError, match="not a multiple of"):
        build_clip(CILFConfig(pretrained="bundled-web", image_size=200))
    x = torch.rand(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(own.encode_image(x).tokens, same.encode_image(x).tokens)
        out = big.encode_image(F.interpolate(x, size=196, mode="bilinear"))
    assert out.tokens.shape == (2, 196, own.encode_image(x).tokens.shape[2]) and out.grid == (14, 14)
    assert "image_size" not in CILFConfig().to_dict()  # saved configs and run keys of the own size are unchanged
    assert CILFConfig.from_dict(CILFConfig(image_size=196).to_dict()).image_size == 196
    with pytest.raises(ValueError, match="image_size"):
        CILFConfig(image_size=0)
