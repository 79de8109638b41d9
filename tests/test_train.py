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
