import pytest
import torch

import cilf
from cilf.model.clip import WeightsNotFoundError, resolve_pretrained
from cilf.run.bench import BenchConfig
from cilf.model.config import CILFConfig, parse_overrides
from cilf.run.pretrain import PretrainConfig
from cilf.run.train import TrainConfig


@pytest.fixture(scope="module")
def model(small_cfg):
    torch.manual_seed(0)
    return cilf.create_model(small_cfg)


def test_forward_shapes_and_dtypes(model, small_cfg):
    x = torch.randn(3, 3, 112, 112)
    out = model(x)
    k = small_cfg.num_classes
    h, w = model.clip.grid
    assert out.scores.shape == (3, k) and out.maps.shape == (3, k, h, w)
    assert out.logits.shape == (3, k) and out.text.shape[:2] == (3, k)
    assert out.y0.shape == (3,) and out.age.shape == (3,) and out.fused.shape == (3, model.clip.embed_dim)
    assert all(t.dtype == torch.float32 for t in (out.scores, out.maps, out.y0, out.age))
    torch.testing.assert_close(out.scores.sum(1), torch.ones(3))
    assert (out.maps.abs() <= 1 + 1e-5).all()  # cosines
    c = out.correction
    assert c.steps.dtype == torch.long and c.accepted.dtype == torch.bool and c.spread.shape == (3,)
    assert ((out.age >= small_cfg.age_min) & (out.age <= small_cfg.age_max)).all()


def test_patch_tokens_are_in_the_joint_space(model):
    f = model.encode_image(torch.randn(2, 3, 112, 112))
    h, w = model.clip.grid
    assert f.pooled.shape == (2, model.clip.embed_dim) and f.tokens.shape == (2, h * w, model.clip.embed_dim)
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        model.encode_image(torch.randn(2, 112, 112))


def test_losses_reach_every_trainable_parameter(model):
    model.zero_grad()
    out = model(torch.randn(4, 3, 112, 112))
    parts = model.losses(out, torch.tensor([5.0, 20.0, 45.0, 80.0]))
    assert set(parts) == {"age", "con", "err", "corr", "total"}
    parts["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert not any(p.requires_grad for p in model.clip.model.parameters())  # frozen by default


def test_a_model_that_predicted_under_inference_mode_can_still_train(small_cfg):
    torch.manual_seed(0)
    m = cilf.create_model(small_cfg).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.inference_mode():  # as predict_paths / predict_features run: fills the text cache
        before = m(x).age
    assert not m.clip.class_text_features().is_inference()
    out = m.train()(x)
    m.losses(out, torch.tensor([30.0, 60.0]))["total"].backward()
    assert m.fusion.img_proj.weight.grad is not None
    torch.testing.assert_close(m.eval()(x).age, before)


@pytest.mark.parametrize("changes", [
    dict(mixer="attention"), dict(mixer="none"), dict(contrastive=False), dict(correction=False),
    dict(context_prompting=False), dict(prompts="learned"), dict(unfreeze_last_blocks=1),
])
def test_every_ablation_switch_builds_and_trains(small_cfg, changes):
    torch.manual_seed(0)
    m = cilf.create_model(small_cfg, **changes)
    out = m(torch.randn(2, 3, 112, 112))
    parts = m.losses(out, torch.tensor([30.0, 60.0]))
    parts["total"].backward()
    assert ("con" in parts) == m.cfg.contrastive and ("err" in parts) == m.cfg.correction
    assert (out.correction is None) == (not m.cfg.correction)
    if changes.get("prompts") == "learned":
        assert m.clip.prompt_learner.ctx.grad is not None
    if changes.get("unfreeze_last_blocks"):
        assert any(p.grad is not None for p in m.clip.model.visual.transformer.resblocks[-1].parameters())


def test_config_validation_overrides_and_json_round_trip(tmp_path):
    with pytest.raises(ValueError, match="mixer"):
        CILFConfig(mixer="conv")
    with pytest.raises(ValueError, match="age"):
        CILFConfig(templates=("a photo of a person",))
    ch = parse_overrides(["mixer=attention", "width=32", "correction=false", "eps=0.25", "pretrained=none"])
    assert ch == {"mixer": "attention", "width": 32, "correction": False, "eps": 0.25, "pretrained": None}
    with pytest.raises(ValueError, match="unknown config field"):
        parse_overrides(["widht=3"])
    with pytest.raises(ValueError, match="width expects an integer, got 'abc'"):
        parse_overrides(["width=abc"])
    with pytest.raises(ValueError, match="eps expects a number"):
        parse_overrides(["eps=half"])
    cfg = CILFConfig().replace(**ch)
    cfg.save(tmp_path / "c.json")
    assert CILFConfig.load(tmp_path / "c.json") == cfg
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        CILFConfig.load(tmp_path / "bad.json")


@pytest.mark.parametrize("make, match", [
    (lambda: CILFConfig(ensemble_size=0), "ensemble_size must be at least 1, got 0"),
    (lambda: CILFConfig(tau=0.0), "tau must be positive"),
    (lambda: TrainConfig(epochs=0), "epochs must be at least 1"),
    (lambda: TrainConfig(lr=-1e-3), "lr must be positive"),
    (lambda: BenchConfig(seeds=0), "seeds must be at least 1"),
    (lambda: BenchConfig(peers=("dexx",)), "unknown peer"),
    (lambda: PretrainConfig(batch_size=1), "batch_size"),
])
def test_configs_refuse_values_that_would_fail_deep_inside_a_run(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_cli_reports_a_bad_budget_before_any_work(tmp_path, capsys):
    from cilf.cli import main

    assert main(["train", "--epochs", "0", "--out", str(tmp_path / "run")]) == 2
    assert "epochs must be at least 1" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_cli_help_explains_every_option_and_its_default():
    import argparse

    from cilf.cli import build_parser

    def commands(parser, path=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, path + (name,))
        if path:
            yield " ".join(path), parser

    seen = set()
    for name, parser in commands(build_parser()):
        seen.add(name)
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{name} {action.dest} has no help"
        text = parser.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name
    assert {"train", "predict", "bench", "bench-speed", "data check"} <= seen
    train = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "(default: 0)" in train and "(default: 30)" in train  # a zero default is shown too


def test_cli_version_matches_the_installed_package(capsys):
    from importlib.metadata import version

    from cilf.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"cilf {version('cilf')} ") and version("cilf") == cilf.__version__


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


def test_damaged_or_edited_checkpoints_fail_with_the_file_named(tmp_path, small_cfg):
    import json
    import shutil

    from cilf.model.checkpoint import load_model, load_train_state, save_checkpoint

    good = save_checkpoint(cilf.create_model(small_cfg), tmp_path / "good")
    load_model(good)
    truncated = shutil.copytree(good, tmp_path / "truncated")
    (truncated / "model.safetensors").write_bytes((good / "model.safetensors").read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated/model.safetensors: checksum mismatch, the file is damaged"):
        load_model(truncated)
    (truncated / "manifest.json").unlink()  # a checkpoint from before manifests still loads, unverified
    with pytest.raises(ValueError, match="truncated/model.safetensors: cannot be read"):
        load_model(truncated)
    edited = shutil.copytree(good, tmp_path / "edited")
    cfg = json.loads((edited / "config.json").read_text())
    (edited / "config.json").write_text(json.dumps({**cfg, "width": cfg["width"] // 2}))
    with pytest.raises(ValueError, match="edited/config.json: checksum mismatch, the file is damaged"):
        load_model(edited)
    (edited / "manifest.json").unlink()  # a checkpoint from before manifests: the weights are checked against the config
    with pytest.raises(ValueError, match="do not fit .*edited/config.json .*size mismatch"):
        load_model(edited)
    assert (good / "model.safetensors").stat().st_size > 100  # the source was never touched
    (truncated / "train_state.pt").write_bytes(b"not a state")
    with pytest.raises(ValueError, match="train_state.pt: cannot be read to resume"):
        load_train_state(truncated)
