"""The oracle floor: age from the cues SynthAge drew (or its latent variables), tuned on validation only, skipped on
real data."""

import json
from pathlib import Path

import layouts
import numpy as np
import pytest
import torch

from cilf.bench.oracle import TITLE, fit_oracle, latent_matrix, missing_latents, oracle_for_run, split_oracle, tune
from cilf.data import read_manifest

SMALL = {"width": 32, "depth": 1, "ensemble_size": 2, "error_hidden": 32}


@pytest.fixture(scope="module")
def synth_bench(synth_root, tmp_path_factory):
    """SynthAge (1,200 images) 80/20, one seed: the full model (1 epoch), the oracle, the linear probe on the
    frozen micro-CLIP features, and the train-mean baseline."""
    from cilf.bench.runner import BenchConfig, run_benchmark

    tmp = tmp_path_factory.mktemp("oracle")
    bcfg = BenchConfig(
        dataset="synthage",
        root=str(synth_root),
        seeds=1,
        epochs=1,
        variants=("full",),
        peers=("oracle", "linear_probe", "train_mean"),
        out=str(tmp / "out"),
        cache_dir=str(tmp / "cache"),
        progress=False,
        model=SMALL,
    )
    return bcfg, run_benchmark(bcfg)


def test_the_oracle_is_far_below_the_baseline_and_below_a_frozen_feature_peer(synth_bench):
    _, res = synth_bench
    m = res["methods"]
    oracle, probe, mean = m["oracle"]["mae"], m["linear_probe"]["mae"], m["train_mean"]["mae"]
    assert oracle < 0.6 * probe < 0.6 * mean, (oracle, probe, mean)
    (run,) = res["per_run"]["oracle"]
    assert run["oracle"]["val_images"] > 0 and run["oracle"]["max_iter"] >= 1
    assert run["oracle"]["learning_rate"] in (0.05, 0.15, 0.4)


def test_the_oracle_is_a_row_of_the_tables_with_paired_statistics(synth_bench):
    from cilf.bench.runner import format_results
    from cilf.notebook.paper_tables import results_table

    bcfg, res = synth_bench
    o = res["methods"]["oracle"]
    assert o["mae_ci"][0] < o["mae"] < o["mae_ci"][1] and o["paired_images"] == res["test_images"]
    assert o["verdict"] == "better" and o["delta_ci"][1] < 0  # the floor is below the full model
    assert len(res["per_run"]["oracle"][0]["pred"]) == res["test_images"]
    row = next(ln for ln in format_results(res).splitlines() if ln.startswith(TITLE))
    assert f"{o['mae_pooled']:.2f}" in row
    assert TITLE in list(results_table(res)["method"])
    assert TITLE in next(Path(bcfg.out).glob("*/results.csv")).read_text()
    saved = [json.loads(p.read_text()) for p in Path(bcfg.out).glob("*/runs/*.json")]
    (key,) = [s["key"] for s in saved if s["key"]["method"] == "oracle"]
    assert key["oracle"]["max_iter"] >= 1 and "growth_k" in key["oracle"]["latents"]  # its version is in the key


def test_the_oracle_is_a_labelled_line_in_the_synthage_figures(synth_bench):
    from cilf.notebook.paper_tables import plot_ablations_and_peers, plot_protocol_bars, pyplot

    _, res = synth_bench
    fig = plot_ablations_and_peers(res)
    bars, curves = fig.axes[0], fig.axes[1]
    assert TITLE not in [t.get_text() for t in bars.get_yticklabels()]  # a line, not a bar
    (line,) = [ln for ln in bars.get_lines() if ln.get_label().startswith(TITLE)]
    assert line.get_xdata()[0] == pytest.approx(res["methods"]["oracle"]["mae"])
    assert TITLE in [ln.get_label() for ln in curves.get_lines()]
    fig = plot_protocol_bars([res, {**res, "protocol": "other"}], ("full", "oracle", "train_mean"))
    ax = fig.axes[0]
    assert any(t.get_text().startswith(TITLE) for t in ax.get_legend().get_texts())
    floors = [c for c in ax.collections if c.get_label().startswith(TITLE)]
    from matplotlib.container import BarContainer

    bar_groups = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(floors) == 1 and len(bar_groups) == 2  # one labelled line collection; bars: full, train mean
    pyplot().close("all")


def test_tuning_uses_validation_only_never_test(synth_root):
    from cilf.bench.peers import PEERS, PeerInputs

    rows = read_manifest(synth_root / "manifest.csv")
    train, test = [r for r in rows if r["split"] == "train"][:300], [r for r in rows if r["split"] == "test"][:100]
    y = torch.tensor([r["age"] for r in train])

    def run(test_rows):
        inp = PeerInputs(
            torch.zeros(len(train), 1), y, torch.zeros(len(test_rows), 1), train_rows=train, test_rows=test_rows
        )
        return PEERS["oracle"].fit_and_predict(inp)

    ages, extras = run(test)
    ages_perm = np.random.default_rng(0).permutation([r["age"] for r in test])
    shuffled = [{**r, "age": float(a)} for r, a in zip(test, ages_perm)]
    again, extras2 = run(shuffled)
    assert extras2 == extras and np.array_equal(again, ages)  # test ages cannot move the choice
    from cilf.data.protocols import holdout

    (part,) = holdout(train, test_frac=0.2, seed=0)
    x, yy = latent_matrix(train, "visible"), y.double().numpy()
    params, val_mae = tune(x[part.train], yy[part.train], x[part.test], yy[part.test])
    assert extras["oracle"] == {**params, "val_mae": val_mae, "val_images": len(part.test)}
    assert {train[i]["subject"] for i in part.test}.isdisjoint(train[i]["subject"] for i in part.train)


def test_the_oracle_on_the_generator_split_and_for_a_train_run(synth_root, monkeypatch):
    rows = read_manifest(synth_root / "manifest.csv")
    out = split_oracle(rows)
    test = np.array([r["age"] for r in rows if r["split"] == "test"])
    mean = np.mean([r["age"] for r in rows if r["split"] == "train"])
    assert out["mae"] < 0.3 * np.abs(test - mean).mean() and out["test_images"] == len(test)
    assert oracle_for_run({"train_config": {"data": "faces.csv", "n_images": 10}}) is None
    monkeypatch.setattr("cilf.data.synthage.default_root", lambda spec: synth_root)
    assert oracle_for_run({"train_config": {"data": None, "n_images": 1200, "data_seed": 0}}) == out


def test_rows_without_latents_say_why(synth_root):
    rows = read_manifest(synth_root / "manifest.csv")[:3]
    assert missing_latents(rows) is None and latent_matrix(rows).shape == (3, 10)
    old = [{k: v for k, v in r.items() if k not in ("growth_k", "yaw", "long_hair")} for r in rows]
    assert "python -m cilf synthage --out ROOT" in missing_latents(old) and "growth_k" in missing_latents(old)
    assert missing_latents([{"path": "a.jpg", "age": 3.0}]) == "no latent ageing variables (SynthAge only)"
    with pytest.raises(ValueError, match="cannot be read as numbers"):
        latent_matrix([{**rows[0], "yaw": "sideways"}])
    with pytest.raises(ValueError, match="SynthAge only"):
        fit_oracle([{"path": "a.jpg", "age": 3.0}], [3.0])


def test_a_real_layout_skips_the_oracle_and_says_so(tmp_path):
    from cilf.bench.runner import BenchConfig, format_results, run_benchmark
    from cilf.notebook.paper_tables import results_table

    root = layouts.agedb(tmp_path / "agedb")
    res = run_benchmark(
        BenchConfig(
            dataset="agedb",
            root=str(root),
            seeds=1,
            variants=(),
            peers=("oracle", "train_mean"),
            out=str(tmp_path / "out"),
            cache_dir=str(tmp_path / "cache"),
            progress=False,
        )
    )
    assert res["methods"]["oracle"] == {"skipped": "no latent ageing variables (SynthAge only)"}
    assert np.isfinite(res["methods"]["train_mean"]["mae"])
    assert f"{TITLE:40s} skipped: no latent ageing variables (SynthAge only)" in format_results(res)
    table = results_table(res).set_index("method")
    assert table.loc[TITLE, "MAE [95% CI]"] == "skipped: no latent ageing variables (SynthAge only)"


def test_the_training_figure_draws_the_oracle_line():
    from cilf.notebook.plots import pyplot, training_report_figure

    history = [{"epoch": e, "val_mae": 9.0 - e, "val_mae_y0": 9.5 - e} for e in range(1, 4)]
    report = {
        "baseline_train_mean": {"mae": 18.0},
        "model": {"mae": 5.5, "cs_curve": {"0": 5.0, "5": 50.0}},
        "source": "this run, SynthAge (synthetic)",
    }
    fig = training_report_figure(history, report, oracle={"mae": 2.2})
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith(TITLE)]
    assert line.get_ydata()[0] == 2.2 and "test MAE 2.20" in line.get_label()
    assert not any(ln.get_label().startswith(TITLE) for ln in training_report_figure(history, report).axes[0].lines)
    pyplot().close("all")


def test_the_drawn_cues_carry_no_skin_age_the_renderer_did_not_draw(synth_root):
    from cilf.data.synthage import drawn_skin_signs, visible_cues

    row = read_manifest(synth_root / "manifest.csv")[0]
    young, older = {**row, "skin_age": "21.0"}, {**row, "skin_age": "27.9"}
    assert visible_cues(young) == visible_cues(older)  # no skin sign is drawn below skin age 28
    assert latent_matrix([young]).tolist() != latent_matrix([older]).tolist()  # the latents still tell them apart
    assert (
        drawn_skin_signs(40)["wrinkle"] > 0 and drawn_skin_signs(40)["sag"] == 0 and drawn_skin_signs(60)["spots"] > 0
    )


def test_the_drawn_cue_oracle_is_a_higher_floor_than_the_latent_one(synth_root):
    rows = read_manifest(synth_root / "manifest.csv")
    visible, latent = split_oracle(rows, "visible"), split_oracle(rows, "latent")
    assert visible["mae"] > latent["mae"], (visible, latent)  # it is not handed what the pixels cannot show
