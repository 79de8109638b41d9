"""End to end: on a small SynthAge set training beats the mean baseline, is deterministic and resumes exactly;
the official dataset layouts go through `python -m cilf train/eval --dataset`."""

import csv
import json

import numpy as np
import pytest

from cilf.app.params import CorrectionFit
from cilf.app.train import train
from cilf.persist.factory import create_model

pytestmark = pytest.mark.slow


def test_training_beats_the_train_mean_baseline(trained):
    out, report = trained
    assert report["source"] == "this run, SynthAge (synthetic)"
    base = report["baseline_train_mean"]["mae"]
    # what training learns: the first estimate. On this tiny random-init-CLIP run the cross-fitted correction
    # made x* worse than y0 (measured with 5 folds: 16.25 -> 18.74; docs/method.md, section 7); that is reported, not asserted away
    y0 = report["first_estimate_y0"]["mae"]
    assert y0 < 0.85 * base, (y0, base)
    assert report["model"]["mae"] < base, (report["model"]["mae"], base)
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


# ---- the paper's datasets through `python -m cilf train/eval --dataset` ----
FAST_MODEL = ["--set", "width=32", "depth=1", "ensemble_size=2", "error_hidden=32"]


def _cli(args, capsys):
    from cilf.cli import main

    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_morph2_b2_trains_and_evaluates_through_the_cli(tmp_path, capsys):
    import layouts

    root = layouts.morph(tmp_path / "morph")
    layouts.morph_shared(root)
    shared = layouts.morph_b2_shared(root)
    run = tmp_path / "run"
    data = ["--dataset", "morph2", "--root", str(root), "--protocol", "B2", "--quiet"]
    train_args = ["train", *data, "--epochs", "2", "--batch-size", "16", "--out", str(run), *FAST_MODEL]
    code, out, err = _cli([*train_args, "--stop-after", "1"], capsys)
    assert code == 0, err
    assert f"warning: {shared} subjects appear in both train and test" in err
    assert "warning: 1 image(s) on disk are named by no list of protocol B2" in err  # the tree's zero-byte file
    # a resumed run keeps its dataset, protocol, fold and root
    other = tmp_path / "other"  # another root (not one holding the run folder: that overlap is refused first)
    other.mkdir()
    for change in (["--protocol", "B1"], ["--fold", "1"], ["--root", str(other)]):
        args = [*train_args, "--resume"]
        if change[0] in args:
            args[args.index(change[0]) + 1] = change[1]
        else:
            args += change
        code, _, err = _cli(args, capsys)
        assert code == 2 and f"the run was started with {change[0][2:]}=" in err, err
    code, out, err = _cli([*train_args, "--resume"], capsys)
    assert code == 0, err
    assert "== this run, MORPH-II B2: " in out and "baseline: predict the training mean" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["source"] == "this run, MORPH-II B2"
    assert metrics["dataset"]["protocol"] == "B2" and metrics["dataset"]["split_warnings"]["shared"] == {
        "S2->rest": shared
    }
    info = metrics["dataset"]["images"]
    assert metrics["n"] == info["test"] and info["val"] > 0  # val carved from the training subjects
    train_ages = [float(p.name[-6:-4]) for p in root.rglob("*.JPG") if p.stat().st_size]  # labels in the names
    base = metrics["baseline_train_mean"]
    assert min(train_ages) <= base["prediction"] <= max(train_ages) and np.isfinite(base["mae"])
    code, out, err = _cli(
        ["eval", *data, "--checkpoint", str(run / "best"), "--json", str(tmp_path / "e.json")], capsys
    )
    assert code == 0, err
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["source"] == "this run, MORPH-II B2" and ev["n"] == metrics["n"]
    assert ev["model"]["mae"] == pytest.approx(metrics["model"]["mae"], abs=1e-5)
    assert ev["baseline_train_mean"]["mae"] == pytest.approx(base["mae"])
    assert f"{shared} subjects appear in both train and test" in err and "baseline: predict the training mean" in out


def test_adience_eval_reports_exact_and_one_off_group_accuracy(tmp_path, capsys):
    import layouts

    from cilf.metrics import age_group, group_accuracy

    root = layouts.adience(tmp_path / "adience")
    data = ["--dataset", "adience", "--root", str(root), "--fold", "1", "--quiet"]
    code, _, err = _cli(
        ["train", *data, "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "run"), *FAST_MODEL], capsys
    )
    assert code == 0, err
    code, out, err = _cli(
        ["eval", *data, "--checkpoint", str(tmp_path / "run"), "--json", str(tmp_path / "e.json")], capsys
    )
    assert code == 0, err
    assert "== this run, Adience 5-fold fold 1: " in out and "groups exact" in out and "1-off" in out
    ev = json.loads((tmp_path / "e.json").read_text())
    rows = list(csv.DictReader((tmp_path / "run" / "test_predictions.csv").open()))
    exact, one_off = group_accuracy(
        [age_group(float(r["true_age"])) for r in rows], [age_group(float(r["age"])) for r in rows]
    )
    assert ev["model"]["group_exact"] == pytest.approx(exact, abs=1e-6)
    assert ev["model"]["group_1off"] == pytest.approx(one_off, abs=1e-6)
    b = ev["baseline_train_mean"]
    true_groups = [age_group(float(r["true_age"])) for r in rows]
    assert (b["group_exact"], b["group_1off"]) == pytest.approx(
        group_accuracy(true_groups, [age_group(b["prediction"])] * len(rows))
    )


def test_train_reports_a_missing_dataset_with_exit_code_3(tmp_path, capsys):
    code, _, err = _cli(
        [
            "train",
            "--dataset",
            "adience",
            "--root",
            str(tmp_path / "absent"),
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
        capsys,
    )
    assert code == 3 and "Adience not found at" in err


def _finetune_cfg(small_cfg):
    from cilf.persist.clip_weights import bundled_weights_path

    if not bundled_weights_path("cilf-micro").is_file():
        pytest.skip("no bundled weights in this checkout")
    return small_cfg.replace(pretrained="bundled", unfreeze_last_blocks=1)


def test_last_block_fine_tuned_from_the_boundary_cache_resumes_exactly(
    small_cfg, tmp_path, data_env, train_cfg, monkeypatch
):
    """unfreeze_last_blocks=1: only the last image block (with ln_post/proj) and the heads change; the
    checkpoint holds the fine-tuned block, not the frozen ones; stop + resume gives the same metrics."""
    import torch
    from safetensors.torch import load_file

    from cilf.persist.checkpoint import load_model

    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    cfg = _finetune_cfg(small_cfg)
    full = train(cfg, train_cfg(tmp_path / "full", epochs=2))
    assert list((tmp_path / "cache" / "features").glob("cilf-micro-block3of4-*/*.safetensors"))  # read from disk
    torch.manual_seed(0)
    start, tuned = create_model(cfg).clip.model.visual, load_model(tmp_path / "full" / "last").clip.model.visual
    assert not torch.equal(
        start.transformer.resblocks[3].mlp.c_fc.weight, tuned.transformer.resblocks[3].mlp.c_fc.weight
    )
    assert not torch.equal(start.proj, tuned.proj)
    for name, p in start.named_parameters():
        if not name.startswith(("transformer.resblocks.3.", "ln_post.", "proj")):
            assert torch.equal(p, tuned.get_parameter(name)), name
    saved = load_file(str(tmp_path / "full" / "last" / "model.safetensors"))
    clip_keys = {k for k in saved if k.startswith("clip.model.")}
    assert "clip.model.visual.transformer.resblocks.3.mlp.c_fc.weight" in clip_keys
    assert not any(
        k.startswith(("clip.model.visual.transformer.resblocks.2.", "clip.model.transformer.")) for k in clip_keys
    )
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

    from cilf.app.crossfit import fit_features
    from cilf.app.features import extract_boundary
    from cilf.app.schedule import param_groups
    from cilf.data.datasets import SynthAge
    from cilf.model.clip import BoundaryTokens
    from cilf.persist.checkpoint import load_model, save_checkpoint

    cfg = _finetune_cfg(small_cfg)
    torch.manual_seed(0)
    encoder = create_model(cfg).eval()
    groups = param_groups(encoder, 1e-3, 0.25)
    assert [g["lr"] for g in groups] == [1e-3, 2.5e-4]
    assert all(p.requires_grad for g in groups for p in g["params"])
    ds = SynthAge(split="val", n_images=1200, seed=0, transform=encoder.preprocess, progress=False)
    tokens, ages, _ = extract_boundary(encoder, ds, encoder.clip.boundary, progress=False)
    model = fit_features(cfg, BoundaryTokens(tokens, 3), ages, epochs=1, batch_size=32, correction=CorrectionFit(3))
    with pytest.raises(ValueError, match="first trainable block is 3"):
        fit_features(cfg, BoundaryTokens(tokens, 2), ages, epochs=1)
    save_checkpoint(model, tmp_path / "ckpt")
    again = load_model(tmp_path / "ckpt")
    images = torch.stack([ds[i][0] for i in range(8)])
    with torch.no_grad():
        a, b = model.eval()(images), again(images)
    assert torch.equal(a.age, b.age) and torch.equal(a.y0, b.y0)
    assert not torch.equal(model.clip.model.visual.proj, create_model(cfg).clip.model.visual.proj)  # it did train


def test_the_prompt_row_says_zero_shot_only_while_clip_is_as_pretrained(small_cfg):
    """With a fine-tuned tower the prompts read tuned features: the report must not call that zero-shot CLIP."""
    from cilf.app.evaluate import evaluation_report, format_report

    assert not create_model(small_cfg).clip.tuned
    for changes in (
        {"freeze_image": False},
        {"unfreeze_last_blocks": 1},
        {"unfreeze_text_blocks": 1},
        {"prompts": "learned"},
    ):
        assert create_model(small_cfg.replace(**changes)).clip.tuned, changes
    y = np.array([20.0, 40.0, 60.0])
    pred = {
        "age": y + 1,
        "y0": y + 1,
        "zero_shot": y + 5,
        "steps": np.zeros(3, dtype=int),
        "accepted": np.ones(3, dtype=bool),
        "spread": np.zeros(3),
        "error0": np.zeros(3),
        "spread0": np.zeros(3),
    }
    frozen = evaluation_report(y, pred, 40.0, "test")
    tuned = evaluation_report(y, pred, 40.0, "test", clip_tuned=True)
    assert frozen["zero_shot_clip"] == {"mae": 5.0, "clip": "as pretrained"}
    assert tuned["zero_shot_clip"] == {"mae": 5.0, "clip": "fine-tuned"}
    assert "zero-shot CLIP (prompts)  MAE   5.00" in format_report(frozen)
    text = format_report(tuned)
    assert "zero-shot CLIP" not in text and "prompts on the fine-tuned CLIP (not zero-shot)  MAE   5.00" in text
