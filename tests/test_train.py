"""End to end on a small SynthAge set: training beats the mean baseline, is deterministic and resumes exactly."""
import json

import pytest

from cilf.run.train import train

pytestmark = pytest.mark.slow


def test_training_beats_the_train_mean_baseline(trained):
    out, report = trained
    assert report["source"] == "this run, SynthAge (synthetic)"
    base = report["baseline_train_mean"]["mae"]
    assert report["model"]["mae"] < 0.85 * base, (report["model"]["mae"], base)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["model"]["mae"] == pytest.approx(report["model"]["mae"])
    assert (out / "test_predictions.csv").read_text().count("\n") == report["n"] + 1


def test_same_seed_gives_identical_metrics_and_resume_is_exact(trained, small_cfg, tmp_path, data_env, train_cfg):
    _, full = trained
    part = tmp_path / "part"
    first = train(small_cfg, train_cfg(part, stop_after_epochs=2))
    assert first["stopped_after_epoch"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        train(small_cfg, train_cfg(part))
    with pytest.raises(ValueError, match="seed"):
        train(small_cfg, train_cfg(part, seed=1), resume=True)
    resumed = train(small_cfg, train_cfg(part), resume=True)
    assert resumed["model"]["mae"] == full["model"]["mae"]
    assert resumed["model"]["cs_curve"] == full["model"]["cs_curve"]


def _finetune_cfg(small_cfg):
    from cilf.model.clip import bundled_weights_path

    if not bundled_weights_path("cilf-micro").is_file():
        pytest.skip("no bundled weights in this checkout")
    return small_cfg.replace(pretrained="bundled", unfreeze_last_blocks=1)


def test_last_block_fine_tuned_from_the_boundary_cache_resumes_exactly(small_cfg, tmp_path, data_env, train_cfg,
                                                                         monkeypatch):
    """unfreeze_last_blocks=1: only the last image block (with ln_post/proj) and the heads change; the
    checkpoint holds the fine-tuned block, not the frozen ones; stop + resume gives the same metrics."""
    import torch

    from cilf.model.checkpoint import load_model
    from cilf.model.cilf_model import CILF
    from safetensors.torch import load_file

    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    cfg = _finetune_cfg(small_cfg)
    full = train(cfg, train_cfg(tmp_path / "full", epochs=2))
    assert list((tmp_path / "cache" / "features").glob("cilf-micro-block3of4-*/*.safetensors"))  # read from disk
    torch.manual_seed(0)
    start, tuned = CILF(cfg).clip.model.visual, load_model(tmp_path / "full" / "last").clip.model.visual
    assert not torch.equal(start.transformer.resblocks[3].mlp.c_fc.weight, tuned.transformer.resblocks[3].mlp.c_fc.weight)
    assert not torch.equal(start.proj, tuned.proj)
    for name, p in start.named_parameters():
        if not name.startswith(("transformer.resblocks.3.", "ln_post.", "proj")):
            assert torch.equal(p, tuned.get_parameter(name)), name
    saved = load_file(str(tmp_path / "full" / "last" / "model.safetensors"))
    clip_keys = {k for k in saved if k.startswith("clip.model.")}
    assert "clip.model.visual.transformer.resblocks.3.mlp.c_fc.weight" in clip_keys
    assert not any(k.startswith(("clip.model.visual.transformer.resblocks.2.", "clip.model.transformer."))
                   for k in clip_keys)
    part = tmp_path / "part"
    assert train(cfg, train_cfg(part, epochs=2, stop_after_epochs=1))["stopped_after_epoch"] == 1
    with pytest.raises(ValueError, match="backbone_lr_scale"):
        train(cfg, train_cfg(part, epochs=2, backbone_lr_scale=0.5), resume=True)
    resumed = train(cfg, train_cfg(part, epochs=2), resume=True)
    assert resumed["model"]["mae"] == full["model"]["mae"]
    assert resumed["model"]["cs_curve"] == full["model"]["cs_curve"]


def test_fine_tuned_checkpoint_reloads_to_identical_predictions(small_cfg, tmp_path, data_env):
    """fit_features on boundary tokens trains the last block at lr x backbone_lr_scale; saved and reloaded,
    the model predicts the same ages from pixels, bit for bit."""
    import torch

    from cilf.data.datasets import SynthAge
    from cilf.model.checkpoint import load_model, save_checkpoint
    from cilf.model.cilf_model import CILF
    from cilf.run.features import extract_boundary
    from cilf.run.train import fit_features, param_groups
    from cilf.model.clip import BoundaryTokens

    cfg = _finetune_cfg(small_cfg)
    torch.manual_seed(0)
    encoder = CILF(cfg).eval()
    groups = param_groups(encoder, 1e-3, 0.25)
    assert [g["lr"] for g in groups] == [1e-3, 2.5e-4]
    assert all(p.requires_grad for g in groups for p in g["params"])
    ds = SynthAge(split="val", n_images=1200, seed=0, transform=encoder.preprocess, progress=False)
    tokens, ages, _ = extract_boundary(encoder, ds, encoder.clip.boundary, progress=False)
    model = fit_features(cfg, BoundaryTokens(tokens, 3), ages, epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="first trainable block is 3"):
        fit_features(cfg, BoundaryTokens(tokens, 2), ages, epochs=1)
    save_checkpoint(model, tmp_path / "ckpt")
    again = load_model(tmp_path / "ckpt")
    images = torch.stack([ds[i][0] for i in range(8)])
    with torch.no_grad():
        a, b = model.eval()(images), again(images)
    assert torch.equal(a.age, b.age) and torch.equal(a.y0, b.y0)
    assert not torch.equal(model.clip.model.visual.proj, CILF(cfg).clip.model.visual.proj)  # it did train
