"""Faults of the second battery met through ``python -m cilf``: a user's file taken for an output, configs of the
wrong type, integer options out of range, names too long for any file system, damaged results read by
``claims``, a run folder left behind by a bad dataset, a manifest's leaks unreported, and a rounded difference
printed with the wrong sign. Each must end in one line (exit code 2) or a correct result, and nothing of the
user's data may change."""

import hashlib
import json
import math

import numpy as np
import pytest
from PIL import Image

from cilf.cli import main

SMALL = ["--set", "width=32", "depth=1", "ensemble_size=3", "error_hidden=32", "pretrained=none"]
LONG = "x" * 300  # one name over the 255 bytes a file system allows


def _digest(root):
    """{relative path: sha256} of every file below ``root``: what the user had."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def photos(tmp_path):
    """Two small photos and a manifest naming them, in their own folder."""
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / name)
    (root / "m.csv").write_text("path,age,split\na.jpg,30,train\nb.jpg,40,test\n")
    return root


def _manifest_set(root, extra_rows=()):
    """12 tiny faces in train/val/test and a manifest (plus ``extra_rows``); returns the manifest's path."""
    root.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rows = ["path,age,subject,split"]
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / f"i{i}.png")
        rows.append(f"i{i}.png,{20 + i},s{i},{'train' if i < 6 else 'val' if i < 9 else 'test'}")
    (root / "m.csv").write_text("\n".join([*rows, *extra_rows]) + "\n")
    return root / "m.csv"


# -- 1. a user's file is never taken for an output ---------------------------------------------------------------


def test_predict_json_before_a_shell_glob_does_not_replace_the_first_photo(photos, capsys):
    before = _digest(photos)
    # `python -m cilf predict --json photos/*.jpg`: argparse reads --json a.jpg, images [b.jpg]
    assert main(["predict", "--json", str(photos / "a.jpg"), str(photos / "b.jpg"), "--aligned", "--quiet"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert f"--json {photos / 'a.jpg'}: this existing file is an image" in line and "choose a new file name" in line
    assert _digest(photos) == before


def test_eval_json_onto_its_own_manifest_is_refused_before_anything_is_read(photos, tmp_path, capsys):
    before = _digest(photos)
    manifest = str(photos / "m.csv")
    assert main(["eval", "--checkpoint", str(tmp_path / "nowhere"), "--data", manifest, "--json", manifest]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "this output is also an input" in line and "m.csv" in line
    assert _digest(photos) == before  # and no checkpoint was looked for: the refusal came first


@pytest.mark.parametrize(
    "argv, words",
    [
        # an output that resolves to an input, also through a symbolic link
        (["predict", "{p}/a.jpg", "--csv", "{p}/link.csv", "--aligned"], "this output is also an input"),
        (["predict", "{p}/a.jpg", "--json", "{p}/m.csv"], "is a .csv file, not a JSON file"),
        (["predict", "{p}/a.jpg", "--csv", "{p}/b.jpg"], "is an image, not a CSV file"),
        (["predict", "{p}/a.jpg", "--json", "{t}/same", "--csv", "{t}/same"], "are the same file"),
        (["predict", "{p}/a.jpg", "--json", "{p}"], "is a folder; give a file name"),
        (["predict", "{p}/a.jpg", "--csv", "{t}/new.png"], "an image's name (.png) for a CSV file"),
        (["train", "--data", "{p}/m.csv", "--config", "{p}/m.csv", "--figure", "{p}/m.csv"], "also an input"),
        (["train", "--dataset", "utkface", "--root", "{p}", "--out", "{p}/run"], "inside the input folder"),
        (["train", "--out", "{p}/a.jpg"], "is a file, not a folder"),
        (["train", "--config", "{t}/run/best/config.json", "--out", "{t}/run"], "replaced whole"),
        (["align", "{p}", "{t}"], "lies inside the output folder"),
        (["align", "{p}", "{p}/aligned"], "inside the input folder"),
        (["data", "check", "{p}", "--dataset", "utkface", "--json", "{p}/a.jpg"], "is an image"),
        (["synthage", "--out", "{t}/s", "--contact-sheet", "{p}/m.csv"], "not a figure"),
        (["bench-speed", "--json", "{p}/m.csv"], "not a JSON file"),
        (["pretrain-clip", "--out", "{p}/a.jpg"], "is a file, not a folder"),
        (["bench", "--dataset", "utkface", "--root", "{t}/o/data", "--out", "{t}/o"], "lies inside the output folder"),
        (["curve", "--dataset", "utkface", "--root", "{t}/o/data", "--out", "{t}/o"], "lies inside the output folder"),
        (["clip-report", "--weights", "x={t}/o/w.safetensors", "--out", "{t}/o"], "lies inside the output folder"),
    ],
)
def test_every_command_refuses_outputs_over_its_inputs_or_the_users_files(argv, words, photos, tmp_path, capsys):
    (photos / "link.csv").symlink_to(photos / "a.jpg")
    before = _digest(photos)
    argv = [a.format(p=photos, t=tmp_path) for a in argv]
    assert main([*argv, "--quiet"] if argv[0] not in ("bench-speed",) else argv) == 2
    assert words in _one_line_error(capsys.readouterr().err)
    assert _digest(photos) == before
    assert not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


def test_a_report_beside_the_photos_and_a_json_over_an_old_json_are_fine(photos, capsys):
    old = photos / "rows.json"
    old.write_text("[]\n")
    assert (
        main(
            [
                "predict",
                str(photos / "a.jpg"),
                "--json",
                str(old),
                "--csv",
                str(photos / "rows.csv"),
                "--aligned",
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads(old.read_text())[0]["status"] == "ok" and (photos / "rows.csv").is_file()
    capsys.readouterr()


def test_help_states_the_replace_rule(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "an existing .json file (replaced); never over an image, another kind of file or an input" in text


# -- 2. configs typed by their dataclass ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, words",
    [
        ({"correction": "false", "contrastive": "no"}, "correction expects true or false, got 'false'"),
        ({"width": 64.5}, "width expects an integer, got 64.5"),
    ],
)
def test_train_refuses_a_config_of_the_wrong_type_in_one_line(config, words, tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert words in line and "c.json" in line
    assert not (tmp_path / "run").exists()


def test_train_config_fields_are_typed_wherever_it_is_made():
    from cilf.app.params import TrainConfig, saved_train_config

    assert TrainConfig(epochs=3.0, out="x").epochs == 3  # an integral float is the integer
    for bad, words in (
        ({"epochs": 3.5}, "epochs expects an integer, got 3.5"),
        ({"flip": "false"}, "flip expects true or false"),
        ({"lr": True}, "lr expects a number, got True"),
        ({"out": 3}, "out expects a string"),
    ):
        with pytest.raises(ValueError, match=words):
            TrainConfig(**bad)
    typed = saved_train_config({"epochs": 4, "seed": 1, "retired_field": 1})  # a field of another version: left out
    assert typed == {"epochs": 4, "seed": 1}
    with pytest.raises(ValueError, match="run/last: saved run settings: batch_size expects an integer, got '64'"):
        saved_train_config({"batch_size": "64"}, source="run/last: saved run settings: ")


def test_resume_refuses_saved_settings_of_the_wrong_type(tmp_path, monkeypatch, capsys):
    import cilf.app.runfolder as runfolder
    import cilf.app.train as train

    out = tmp_path / "run"
    (out / "last").mkdir(parents=True)
    (out / "run.json").write_text("{}")
    state = {"tcfg": {"epochs": "30", "flip": "false"}}  # written by hand, or by a broken tool
    monkeypatch.setattr(runfolder, "load_train_state", lambda d: state)
    monkeypatch.setattr(train, "load_train_state", lambda d: state)
    assert main(["train", "--resume", "--out", str(out), "--quiet", *SMALL]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "saved run settings: epochs expects an integer, got '30'" in line and str(out / "last") in line


# -- 3. integer options with a minimum are checked when parsed ------------------------------------------------------


@pytest.mark.parametrize(
    "argv, option",
    [
        (["predict", "x.jpg", "--batch-size", "-5"], "--batch-size"),
        (["predict", "x.jpg", "--batch-size", "0"], "--batch-size"),
        (["train", "--batch-size", "1"], "--batch-size"),
        (["train", "--n-images", "10"], "--n-images"),
        (["train", "--fold", "-1"], "--fold"),
        (["train", "--stop-after", "0"], "--stop-after"),
        (["bench", "--seeds", "0"], "--seeds"),
        (["curve", "--min-steps", "-1"], "--min-steps"),
        (["synthage", "--image-size", "4"], "--image-size"),
        (["bench-speed", "--tokens", "0"], "--tokens"),
        (["pretrain-clip", "--epochs", "0"], "--epochs"),
        (["align", "a", "b", "--size", "0"], "--size"),
        (["predict", "x.jpg", "--batch-size", "two"], "--batch-size"),
    ],
)
def test_integer_options_below_their_minimum_are_refused_at_parse_time(argv, option, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {option}: " in err and "Traceback" not in err
    assert "is too small: give an integer of at least" in err or "is not an integer" in err


# -- 6. names over 255 bytes, damaged results for claims -----------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", f"{{t}}/{LONG}.jpg"],
        ["predict", "{p}/a.jpg", "--json", f"{{t}}/{LONG}.json"],
        ["train", "--out", f"{{t}}/{LONG}/run"],
        ["claims", f"{{t}}/{LONG}.json"],
        ["eval", "--checkpoint", f"{{t}}/{LONG}"],
    ],
)
def test_a_name_over_255_bytes_is_one_line(argv, photos, tmp_path, capsys):
    code = main([a.format(p=photos, t=tmp_path) for a in argv])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2 and " bytes, more than the 255" in line and "Errno" not in line and "xx..." in line


def test_a_name_over_255_bytes_in_a_manifest_names_the_line(tmp_path, capsys):
    manifest = _manifest_set(tmp_path / "data", extra_rows=[f"{LONG}.png,30,s9,train"])
    assert main(["train", "--data", str(manifest), "--out", str(tmp_path / "run"), "--quiet", *SMALL]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert f"{manifest}, line 14: the path names" in line and "304 bytes" in line and "fix the path" in line
    assert not (tmp_path / "run").exists()


def _results():
    """A small benchmark result (one ablation) as claims reads it."""
    from test_claims import fake_result

    return fake_result({"similarity_prior=off": 0.5}, noise=0.2)


@pytest.mark.parametrize(
    "damage, field",
    [
        (lambda r: r["methods"]["similarity_prior=off"].update(delta_ci="[0.4, 0.6]"), "delta_ci"),
        (lambda r: r["methods"].update(full=None), "methods['full']"),
        (lambda r: r["methods"]["similarity_prior=off"].update(delta_mae=math.inf), "delta_mae"),
        (lambda r: r["methods"]["similarity_prior=off"].update(delta_ci=[5, -5]), "ends are swapped"),
        (lambda r: r["methods"]["similarity_prior=off"].update(delta_mae=None), "delta_mae"),
        (lambda r: r.update(seeds="3"), "seeds"),
        (lambda r: r.update(ci={"confidence": 95}), "ci.confidence"),
        (lambda r: r["budget"]["cilf"].update(lr=0), "budget.cilf.lr"),
    ],
)
def test_claims_refuses_a_damaged_result_naming_file_and_field(damage, field, tmp_path, capsys):
    result = _results()
    damage(result)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(result))  # json writes inf as Infinity, which json.loads reads back
    assert main(["claims", str(path)]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert str(path) in line and field in line and "python -m cilf bench" in line


@pytest.mark.parametrize(
    "damage, field",
    [
        (lambda rows: rows[0].update(seconds=0), "rows[0].seconds"),
        (lambda rows: rows[1].update(saved_bytes=0), "rows[1].saved_bytes"),
        (lambda rows: rows[1].update(seconds="fast"), "rows[1].seconds"),
        (lambda rows: rows.append(None), "rows[2]"),
    ],
)
def test_claims_refuses_a_damaged_speed_file(damage, field, tmp_path, capsys):
    from test_claims import speed_json

    results, speed = tmp_path / "results.json", tmp_path / "speed.json"
    results.write_text(json.dumps(_results()))
    data = speed_json(0.01, 0.36)
    damage(data["rows"])
    speed.write_text(json.dumps(data))
    assert main(["claims", str(results), "--speed", str(speed)]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert str(speed) in line and field in line and "bench-speed" in line


def test_an_inverted_ci_is_never_read_as_supported():
    from cilf.bench.claims import claims_table

    result = _results()
    result["methods"]["similarity_prior=off"].update(delta_mae=0.0, delta_ci=[5, -5])
    with pytest.raises(ValueError, match="ends are swapped"):
        claims_table(result)


# -- 7. the run folder, a manifest's leaks, a rounded difference -----------------------------------------------------


def test_a_bad_dataset_leaves_no_run_folder_behind(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,age,split\ni0.png,abc,train\n")
    assert main(["train", "--data", str(bad), "--out", str(tmp_path / "run"), "--quiet", *SMALL]) == 2
    assert "line 2: age 'abc' is not a number" in _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()
    empty = tmp_path / "empty"  # a folder the user made stays, as it was
    empty.mkdir()
    assert main(["train", "--data", str(bad), "--out", str(empty), "--quiet", *SMALL]) == 2
    assert empty.is_dir() and not list(empty.iterdir())
    capsys.readouterr()


def test_train_on_a_manifest_prints_its_leaks_with_counts(tmp_path, capsys):
    manifest = _manifest_set(
        tmp_path / "data",
        extra_rows=["i0.png,20,s0,test", "i1.png,45,s1,train"],  # the same image in train and test; two ages
    )
    out = tmp_path / "run"
    argv = ["train", "--data", str(manifest), "--out", str(out), "--quiet", "--epochs", "2", "--stop-after", "1"]
    assert main([*argv, "--batch-size", "4", *SMALL]) == 0
    err = capsys.readouterr().err
    assert f"warning: 1 image(s) are in more than one split ({manifest}): 1 in train+test" in err
    assert "warning: 1 image(s) carry two or more different ages" in err and "ages 21, 45" in err


def test_a_difference_rounded_to_zero_keeps_its_sign():
    from cilf.bench.effects import delta_text, verdict_text
    from cilf.bench.runner import format_results

    tiny = {"delta_mae": -0.0005, "delta_ci": [-0.0009, -0.0001], "verdict": "better"}
    assert delta_text(tiny, "x") == "-0.00 [-0.00, -0.00]" and verdict_text(tiny) == "better (|Δ| < 0.005 y)"
    assert delta_text({"delta_mae": 0.0, "delta_ci": [-0.1, 0.1]}, "x") == "0.00 [-0.10, 0.10]"
    assert delta_text({"delta_mae": 0.23, "delta_ci": [0.05, 0.41]}, "x") == "+0.23 [0.05, 0.41]"
    row = {"mae": 5.0, "mae_std": 0.1, "cs1": 10.0, "cs5": 50.0, "coverage_pct": 100.0}
    result = {
        "source": "test",
        "images": 10,
        "folds": 1,
        "seeds": 1,
        "protocol_description": "one split",
        "methods": {"full": row, "mixer=attention": {**row, **tiny}},
        "feature_cache": {"hit": False, "seconds": 1.0},
        "runs": {"computed": 2, "reused": 0},
        "seconds": 2.0,
        "skipped_files": [],
        "listed_but_missing": 0,
    }
    (line,) = [ln for ln in format_results(result).splitlines() if ln.startswith("FourierFormer -> attention")]
    assert "-0.00 [-0.00, -0.00]  better (|Δ| < 0.005 y)" in line and "+0.00" not in line
