"""Portable runs: a checkpoint names its CLIP weights by content (SHA-256), finds them again after the weights
file moved (``--clip-weights``, ``$CILF_CLIP_WEIGHTS``), refuses other weights naming both hashes, and says
which weights it loaded. Real micro-CLIP weights, a real (tiny) training run."""

import json
import logging
import shutil
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file

from cilf.cli import main
from cilf.io import sha256_file
from cilf.persist.checkpoint import CLIP_WEIGHTS, load_model, read_weights_record, write_manifest
from cilf.persist.clip_weights import (
    WeightsMismatchError,
    WeightsNotFoundError,
    WeightsRecord,
    bundled_weights_path,
    forget_logged,
    locate,
    record_for,
)
from cilf.persist.factory import build_clip

N_IMAGES = 120


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The bundled micro-CLIP weights as a user's own file, and a file of other weights (random init)."""
    if not bundled_weights_path("cilf-micro").is_file():
        pytest.skip("no bundled weights in this checkout")
    d = tmp_path_factory.mktemp("weights")
    mine = d / "my-clip.safetensors"
    shutil.copyfile(bundled_weights_path("cilf-micro"), mine)
    torch.manual_seed(0)
    from cilf.model.config import CILFConfig

    other = d / "other-clip.safetensors"
    random_clip = build_clip(CILFConfig(pretrained=None)).model
    save_file({k: v.contiguous() for k, v in random_clip.state_dict().items()}, str(other))
    return mine, other


@pytest.fixture(scope="module")
def run(weights, small_cfg, tmp_path_factory):
    """One epoch on a tiny SynthAge with pretrained=<the user's file>: (run folder, config, env for CILF_*)."""
    from cilf.app.params import TrainConfig
    from cilf.app.train import train

    mine, _ = weights
    base = tmp_path_factory.mktemp("portable")
    env = {"CILF_DATA": str(base / "data"), "CILF_CACHE": str(base / "cache")}
    cfg = small_cfg.replace(pretrained=str(mine))
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        out = base / "run"
        train(
            cfg,
            TrainConfig(
                out=str(out),
                epochs=1,
                n_images=N_IMAGES,
                batch_size=16,
                warmup_steps=1,
                progress=False,
                crossfit_folds=3,
            ),
        )
    return out, cfg, env


@pytest.fixture
def cilf_env(run, monkeypatch):
    for k, v in run[2].items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CILF_CLIP_WEIGHTS", raising=False)
    return run[0]


def _images(env):
    from pathlib import Path

    return sorted(str(p) for p in Path(env["CILF_DATA"]).rglob("*.jpg"))[:6]


def _predict(capsys, out, run, *extra):
    """``cilf predict`` on six SynthAge faces: (exit code, ages or None, stderr)."""
    target = out.parent / "ages.json"
    target.unlink(missing_ok=True)
    code = main(
        ["predict", *_images(run[2]), "--checkpoint", str(out), "--aligned", "--quiet", "--json", str(target), *extra]
    )
    err = capsys.readouterr().err
    return code, ([r["age"] for r in json.loads(target.read_text())] if code == 0 else None), err


def test_the_checkpoint_records_the_weights_by_content_and_path_hint(run, weights):
    out, _, _ = run
    mine, _ = weights
    rec = read_weights_record(out / "best")
    assert rec == WeightsRecord("cilf-micro", "file", sha256_file(mine), path=str(mine.resolve()))
    manifest = json.loads((out / "best" / "manifest.json").read_text())["files"]
    assert CLIP_WEIGHTS in manifest  # checksummed like every file of the checkpoint
    assert json.loads((out / "metrics.json").read_text())["clip_weights"]["sha256"] == rec.sha256


def test_moved_weights_fail_clearly_then_clip_weights_gives_identical_ages(run, weights, cilf_env, capsys, tmp_path):
    out = cilf_env
    mine, _ = weights
    code, before, err = _predict(capsys, out, run)
    assert code == 0 and len(before) == 6
    sha = sha256_file(mine)
    assert f"CLIP weights: cilf-micro, file {mine.resolve()}, sha256 {sha}" in err  # one line, the hash
    assert err.count("CLIP weights:") == 1

    moved = tmp_path / "elsewhere" / "renamed.safetensors"
    moved.parent.mkdir()
    shutil.move(mine, moved)
    try:
        code, _, err = _predict(capsys, out, run)
        assert code == 2 and "Traceback" not in err and err.count("\n") == 1
        assert sha in err and str(mine.resolve()) in err and "--clip-weights" in err and "CILF_CLIP_WEIGHTS" in err
        code, _, err = _capture(capsys, ["eval", "--checkpoint", str(out), "--n-images", str(N_IMAGES), "--quiet"])
        assert code == 2 and sha in err and "--clip-weights" in err and "Traceback" not in err

        code, after, err = _predict(capsys, out, run, "--clip-weights", str(moved))
        assert code == 0 and after == before  # the same weights: the same ages, to the last digit
        assert f"file {moved}, sha256 {sha}" in err
        code, printed, err = _capture(
            capsys,
            ["eval", "--checkpoint", str(out), "--n-images", str(N_IMAGES), "--quiet", "--clip-weights", str(moved)],
        )
        assert code == 0 and "MAE" in printed and f"sha256 {sha}" in err

        with pytest.MonkeyPatch.context() as mp:  # the environment variable, as a lasting setting
            mp.setenv("CILF_CLIP_WEIGHTS", str(moved))
            code, again, _ = _predict(capsys, out, run)
            assert code == 0 and again == before
    finally:
        shutil.move(moved, mine)


def _capture(capsys, argv):
    """(exit code, stdout, stderr) of one command."""
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_other_weights_are_refused_naming_both_hashes(run, weights, cilf_env, capsys, tmp_path):
    out = cilf_env
    mine, other = weights
    want, got = sha256_file(mine), sha256_file(other)
    code, _, err = _predict(capsys, out, run, "--clip-weights", str(other))
    assert code == 2 and want in err and got in err and "refused" in err and "Traceback" not in err
    with pytest.raises(WeightsMismatchError, match=got):
        load_model(out, clip_weights=other)

    # other content at the recorded path itself (the file was replaced): refused too, both hashes named
    shutil.move(mine, tmp_path / "kept.safetensors")
    shutil.copyfile(other, mine)
    try:
        with pytest.raises(WeightsNotFoundError) as e:
            load_model(out)
        assert want in str(e.value) and got in str(e.value) and "--clip-weights" in str(e.value)
        assert load_model(out, clip_weights=tmp_path / "kept.safetensors").clip.weights.sha256 == want
    finally:
        shutil.move(tmp_path / "kept.safetensors", mine)


def test_a_checkpoint_without_its_weights_record_is_refused_naming_the_file(run, tmp_path):
    out, _, _ = run
    old = tmp_path / "old"
    shutil.copytree(out / "best", old)
    (old / CLIP_WEIGHTS).unlink()
    write_manifest(old)  # a manifest made to match: the record itself is missing
    with pytest.raises(ValueError, match=f"{CLIP_WEIGHTS}: not listed in"):
        load_model(old)


def test_resume_after_the_weights_file_moved(weights, small_cfg, tmp_path, monkeypatch):
    from cilf.app.params import TrainConfig
    from cilf.app.train import train

    mine, _ = weights
    monkeypatch.setenv("CILF_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    tcfg = TrainConfig(
        out=str(tmp_path / "run"),
        epochs=2,
        n_images=N_IMAGES,
        batch_size=16,
        warmup_steps=1,
        progress=False,
        crossfit_folds=3,
    )
    copy = tmp_path / "a" / "clip.safetensors"
    copy.parent.mkdir()
    shutil.copyfile(mine, copy)
    cfg = small_cfg.replace(pretrained=str(copy))
    assert "stopped_after_epoch" in train(cfg, replace(tcfg, stop_after_epochs=1))
    moved = tmp_path / "b" / "clip.safetensors"
    moved.parent.mkdir()
    shutil.move(copy, moved)
    with pytest.raises(WeightsNotFoundError, match="--clip-weights"):  # the old path: not found, clearly
        train(cfg, tcfg, resume=True)
    report = train(cfg.replace(pretrained=str(moved)), tcfg, resume=True)  # the new path: same content, resumes
    assert report["epochs"] == 2 and report["clip_weights"]["path"] == str(moved.resolve())


def test_the_log_line_names_the_weights_once(weights, small_cfg, caplog):
    import cilf

    mine, _ = weights
    forget_logged()
    with caplog.at_level(logging.INFO, logger="cilf.weights"):
        cilf.create_model(small_cfg.replace(pretrained=str(mine)))
        cilf.create_model(small_cfg.replace(pretrained=str(mine)))
    lines = [r.getMessage() for r in caplog.records if r.name == "cilf.weights"]
    assert lines == [f"CLIP weights: cilf-micro, file {mine.resolve()}, sha256 {sha256_file(mine)}"]


def test_bundled_and_tag_records_are_found_again(weights, monkeypatch):
    from open_clip import pretrained as oc

    mine, _ = weights
    rec, _ = record_for("cilf-micro", "bundled")
    assert rec.source == "bundled" and rec.sha256 == sha256_file(bundled_weights_path("cilf-micro"))
    assert locate(rec) == "bundled"
    monkeypatch.setitem(oc._PRETRAINED, "cilf-micro", {"mytag": {"file": str(mine)}})  # a tag in open_clip's cache
    rec, source = record_for("cilf-micro", "mytag")
    assert (rec.source, rec.tag, rec.sha256, source) == ("tag", "mytag", sha256_file(mine), "mytag")
    assert locate(rec) == "mytag"
    with pytest.raises(WeightsNotFoundError, match="open_clip's cache"):
        locate(rec, clip_weights=mine)
    with pytest.raises(WeightsNotFoundError, match="neither a file nor an open_clip tag"):
        record_for("cilf-micro", "no-such-tag")


def test_both_bundled_micro_clips_are_recorded_apart_and_found_again():
    """ "bundled-web" (the default) and "bundled" are different files; each record finds its own file again, and a
    record made before there were two (no tag) still means the exact-caption weights."""
    from cilf.model.config import CILFConfig
    from cilf.persist.clip_weights import WeightsRecord

    web_path, exact_path = bundled_weights_path("cilf-micro", "bundled-web"), bundled_weights_path("cilf-micro")
    if not (web_path.is_file() and exact_path.is_file()):
        pytest.skip("the bundled weights are not in this checkout")
    assert CILFConfig().pretrained == "bundled"
    web, _ = record_for("cilf-micro", "bundled-web")
    exact, _ = record_for("cilf-micro", "bundled")
    assert (web.source, web.tag, exact.tag) == ("bundled", "bundled-web", None)
    assert web.sha256 == sha256_file(web_path) != exact.sha256 == sha256_file(exact_path)
    assert (locate(web), locate(exact)) == ("bundled-web", "bundled")
    assert web.describe().startswith("cilf-micro, bundled-web (")
    old = WeightsRecord.from_dict(
        {"format": "cilf-clip-weights/1", "model": "cilf-micro", "source": "bundled", "sha256": exact.sha256}
    )
    assert old.pretrained() == "bundled" and locate(old) == "bundled"
    wrong = WeightsRecord("cilf-micro", "bundled", exact.sha256, tag="bundled-web")  # web tag, exact hash
    with pytest.raises(WeightsNotFoundError, match="holds other weights"):
        locate(wrong)


def test_prompt_encoding_shows_a_bar_only_when_asked(small_cfg, capsys):
    from cilf.model.clip import TEXT_BATCH

    adapter = build_clip(small_cfg)
    assert len(small_cfg.ages) * len(small_cfg.templates) > TEXT_BATCH
    capsys.readouterr()
    adapter.warm_text_cache(progress=False)
    assert capsys.readouterr().err == ""
    quiet = adapter.class_text_features()
    adapter._text_cache = None
    adapter.warm_text_cache(progress=True)
    assert "encode prompts" in capsys.readouterr().err
    assert torch.equal(adapter.class_text_features(), quiet)  # the bar changes nothing
    flat = [p for group in adapter.class_prompts() for p in group]  # batches give the one-pass features
    with torch.no_grad():
        whole = torch.nn.functional.normalize(adapter.encode_text(flat), dim=-1)
    whole = torch.nn.functional.normalize(whole.view(len(small_cfg.ages), -1, whole.shape[-1]).mean(1), dim=-1)
    torch.testing.assert_close(quiet, whole)
