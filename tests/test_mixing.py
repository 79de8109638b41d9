"""cilf.bench.mixing: the token-grid tasks where mixing must work, and the FourierFormer claim read on them."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from cilf.bench.mixing import MixingBench, format_mixing, make_task, run_mixing, train_one


def test_the_context_target_is_the_share_of_the_key_colour():
    x, y = make_task("context", 5, 6, seed=3)
    assert x.shape == (5, 6, 6, 7) and y.shape == (5,)
    colour = x[..., :4].argmax(-1).reshape(5, -1)
    key = x[..., 4].reshape(5, -1).argmax(-1)
    assert torch.all(x[..., 4].reshape(5, -1).sum(-1) == 1)  # one key per grid
    want = torch.stack([(colour[i] == colour[i, key[i]]).float().mean() for i in range(5)])
    assert torch.allclose(y, want)
    again = make_task("context", 5, 6, seed=3)
    assert torch.equal(again[0], x) and torch.equal(again[1], y)  # same seed, same data


def test_the_offset_target_pairs_each_marker_with_the_one_half_a_grid_away():
    x, y = make_task("offset", 3, 4, seed=0)
    a, b = x[..., 0], x[..., 1]
    for i in range(3):
        total = sum(float(a[i, r, c] * b[i, (r + 2) % 4, (c + 2) % 4]) for r in range(4) for c in range(4))
        assert y[i].item() == pytest.approx(total / (16 * 0.25))


def test_bad_sizes_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="unknown task"):
        MixingBench(tasks=("nope",))
    with pytest.raises(ValueError, match="seeds"):
        MixingBench(seeds=1)
    with pytest.raises(ValueError, match="fourier, attention and none"):
        MixingBench(mixers=("fourier", "attention"))
    with pytest.raises(ValueError, match="unknown task"):
        make_task("nope", 2, 4, 0)


def test_a_small_run_sets_the_margin_on_validation_and_reads_the_claim_on_test():
    cfg = MixingBench(grids=(4,), seeds=2, epochs=2, n_train=64, n_val=32, n_test=40)
    result = run_mixing(cfg, progress=False)
    assert [(r["task"], r["tokens"]) for r in result["rows"]] == [("context", 16), ("offset", 16)]
    for r in result["rows"]:
        best = r["best_on_val"]
        assert best in ("fourier", "attention") and r["mae_val"][best] == min(
            r["mae_val"]["fourier"], r["mae_val"]["attention"]
        )
        gap = r["mae_val"]["none"] - r["mae_val"][best]
        assert r["margin"] == (pytest.approx(0.1 * gap) if gap > 0 else None)  # validation only
        assert r["claim"]["ci_low"] <= r["claim"]["estimate"] <= r["claim"]["ci_high"]
        assert r["claim"]["estimate"] == pytest.approx(r["mae"]["fourier"] - r["mae"]["attention"], abs=1e-6)
        if r["margin"] is None or not r["control"]["resolved"]:
            assert r["verdict"] == "not testable here"
        assert all(s >= 0 for s in r["seconds_per_run"].values())
    text = format_mixing(result)
    assert "context N=16" in text and "offset N=16" in text and result["source"] in text


def test_with_several_learning_rates_each_mixer_keeps_its_best_on_validation():
    cfg = MixingBench(
        tasks=("offset",), grids=(4,), seeds=2, epochs=2, n_train=64, n_val=32, n_test=40, lrs=(1e-4, 1e-2)
    )
    (r,) = run_mixing(cfg, progress=False)["rows"]
    for m in cfg.mixers:
        by_lr = r["mae_val_by_lr"][m]
        assert set(by_lr) == {"0.0001", "0.01"} and by_lr[f"{r['lr'][m]:g}"] == min(by_lr.values())
        assert r["mae_val"][m] == pytest.approx(min(by_lr.values()))  # the row reads the runs at the kept rate
    assert len({v for d in r["mae_val_by_lr"].values() for v in d.values()}) == 6  # six runs, six errors
    with pytest.raises(ValueError, match="lrs="):
        MixingBench(lrs=())


def test_fused_attention_trains_the_same_function_as_explicit_attention():
    cfg = MixingBench(grids=(4,), seeds=2, epochs=2, n_train=64, n_val=32, n_test=40)
    data = {k: make_task("context", n, 4, i) for i, (k, n) in enumerate((("train", 64), ("val", 32), ("test", 40)))}
    explicit = train_one(cfg, "attention", 4, data, seed=0)
    fused = train_one(dataclasses.replace(cfg, fused_attention=True), "attention", 4, data, seed=0)
    np.testing.assert_allclose(fused["test"], explicit["test"], atol=1e-4)  # same weights, same steps, same errors
    assert not np.allclose(train_one(cfg, "none", 4, data, seed=0)["test"], explicit["test"], atol=1e-4)


def test_the_command_writes_its_result_and_refuses_a_bad_grid(tmp_path, capsys):
    from cilf.cli import main

    out = tmp_path / "mixing.json"
    args = ["bench-mixing", "--tasks", "offset", "--grids", "4", "--seeds", "2", "--epochs", "1", "--n-train", "64"]
    assert main([*args, "--lrs", "0.002", "0.01", "--json", str(out), "--out", str(tmp_path / "runs"), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert [r["task"] for r in result["rows"]] == ["offset"] and result["config"]["grids"] == [4]
    assert result["config"]["lrs"] == [0.002, 0.01] and set(result["rows"][0]["lr"]) == {"fourier", "attention", "none"}
    assert "offset N=16" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench-mixing", "--grids", "2"])
    assert "at least 4" in capsys.readouterr().err


def test_finished_runs_are_saved_and_an_extended_run_reuses_them(tmp_path):
    from cilf.bench.mixing import run_mixing
    from cilf.io import FolderLock, OutputError

    small = dict(tasks=("context",), grids=(4,), n_train=64, n_val=32, n_test=40, epochs=1, width=8, depth=1)
    out = tmp_path / "runs"
    first = run_mixing(MixingBench(**small, seeds=2), progress=False, out=out)
    assert first["runs"] == {"computed": 6, "reused": 0} and first["device"] == "cpu"
    more = run_mixing(MixingBench(**small, seeds=3), progress=False, out=out)  # one more seed: 3 new runs
    assert more["runs"] == {"computed": 3, "reused": 6}
    again = run_mixing(MixingBench(**small, seeds=2), progress=False, out=out)
    assert again["runs"] == {"computed": 0, "reused": 6} and again["rows"][0]["mae"] == first["rows"][0]["mae"]
    assert again["train_seconds"] == pytest.approx(first["train_seconds"])  # reused runs keep their measured time
    assert again["rows"][0]["claim"] == first["rows"][0]["claim"]  # the saved errors give the same intervals
    seed0 = next(f for f in (out / "runs").glob("*.json") if json.loads(f.read_text())["key"]["seed"] == 0)
    seed0.write_text("{damaged")  # a damaged run is computed again, never trusted
    assert run_mixing(MixingBench(**small, seeds=2), progress=False, out=out)["runs"] == {"computed": 1, "reused": 5}
    with FolderLock(out, "another bench-mixing"):  # one writer per folder
        with pytest.raises(OutputError, match="in use"):
            run_mixing(MixingBench(**small, seeds=2), progress=False, out=out)
