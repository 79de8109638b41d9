"""End to end on a small SynthAge set: training beats the mean baseline, is deterministic,
resumes exactly, checkpoints round-trip, and predict copes with bad files."""
import json

import numpy as np
import pytest
import torch

from cilf.model.checkpoint import load_model
from cilf.cli import main
from cilf.data.synthage import SynthAgeSpec
from cilf.run.evaluate import predict_features
from cilf.run.predict import predict_paths
from cilf.run.train import TrainConfig, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_env(synth_root, monkeypatch_module):
    # SynthAge(n_images=1200, seed=0) resolves to synth_root through CILF_DATA
    monkeypatch_module.setenv("CILF_DATA", str(synth_root.parent))
    key = SynthAgeSpec(n_images=1200, seed=0).key()
    link = synth_root.parent / f"synthage-{key}"
    if not link.exists():
        link.symlink_to(synth_root)
    return synth_root


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _tcfg(out, **kw):
    return TrainConfig(out=str(out), epochs=kw.pop("epochs", 25), n_images=1200, batch_size=64, warmup_steps=10,
                       progress=False, **kw)


@pytest.fixture(scope="module")
def trained(data_env, small_cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, train(small_cfg, _tcfg(out))


def test_training_beats_the_train_mean_baseline(trained):
    out, report = trained
    assert report["source"] == "this run, SynthAge (synthetic)"
    base = report["baseline_train_mean"]["mae"]
    assert report["model"]["mae"] < 0.85 * base, (report["model"]["mae"], base)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["model"]["mae"] == pytest.approx(report["model"]["mae"])
    assert (out / "test_predictions.csv").read_text().count("\n") == report["n"] + 1


def test_same_seed_gives_identical_metrics_and_resume_is_exact(trained, small_cfg, tmp_path):
    _, full = trained
    part = tmp_path / "part"
    first = train(small_cfg, _tcfg(part, stop_after_epochs=2))
    assert first["stopped_after_epoch"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        train(small_cfg, _tcfg(part))
    with pytest.raises(ValueError, match="seed"):
        train(small_cfg, _tcfg(part, seed=1), resume=True)
    resumed = train(small_cfg, _tcfg(part), resume=True)
    assert resumed["model"]["mae"] == full["model"]["mae"]
    assert resumed["model"]["cs_curve"] == full["model"]["cs_curve"]


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


def test_predict_reports_bad_files_and_predicts_good_ones(trained, tmp_path, capsys):
    from tests.test_data import _bad_files

    out, _ = trained
    files = _bad_files(tmp_path)
    code = main(["predict", *map(str, files.values()), "--checkpoint", str(out / "best"), "--quiet"])
    cap = capsys.readouterr()
    assert code == 0
    predicted = {line.split("\t")[0] for line in cap.out.strip().splitlines()}
    assert predicted == {str(files[k]) for k in ("good", "cmyk", "png16", "rgba")}
    assert "skipped 3 file(s)" in cap.err
    for key, reason in (("empty", "empty file"), ("truncated", "truncated"), ("text", "not an image")):
        assert f"{files[key]}: " in cap.err and reason in cap.err
    assert main(["predict", str(files["empty"]), "--checkpoint", str(out / "best"), "--quiet"]) == 1


def test_zero_shot_predict_works_out_of_the_box(data_env, tmp_path, capsys):
    from tests.test_data import _bad_files

    files = _bad_files(tmp_path)
    code = main(["predict", str(files["good"]), str(files["rgba"]), "--json", "--quiet"])
    cap = capsys.readouterr()
    rows = [json.loads(line) for line in cap.out.splitlines()]
    assert code == 0 and len(rows) == 2 and all(r["mode"] == "zero-shot" and 0 <= r["age"] <= 100 for r in rows)
    assert "zero-shot" in cap.err


def test_predict_paths_with_model_and_cli_eval(trained, tmp_path, capsys, data_env):
    out, report = trained
    model = load_model(out / "best")
    results, skips = predict_paths(model, [data_env / "images"], batch_size=256)
    assert len(results) == 1200 and len(skips) == 0
    assert {"y0", "steps", "accepted", "spread"} <= set(results[0])
    code = main(["eval", "--checkpoint", str(out / "best"), "--n-images", "1200", "--quiet",
                 "--json", str(tmp_path / "m.json")])
    assert code == 0
    assert json.loads((tmp_path / "m.json").read_text())["model"]["mae"] == pytest.approx(report["model"]["mae"], abs=1e-4)
    assert "beats the train-mean baseline" in capsys.readouterr().out


def test_predict_on_a_folder_without_images_says_so(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a face")
    assert main(["predict", str(tmp_path), "--quiet"]) == 1
    assert f"no image files in {tmp_path}" in capsys.readouterr().err
