"""Prediction: a trained checkpoint or zero-shot CLIP on files and folders, bad files reported, and ``cilf eval``."""
import json

import pytest
import torch

from cilf.cli import main
from cilf.data import load_image
from cilf.model.checkpoint import load_model
from cilf.run.predict import load_predictor, predict_paths

pytestmark = pytest.mark.slow


def test_predict_reports_bad_files_and_predicts_good_ones(trained, bad_files, capsys):
    out, _ = trained
    files = bad_files
    code = main(["predict", *map(str, files.values()), "--checkpoint", str(out / "best"), "--quiet"])
    cap = capsys.readouterr()
    assert code == 0
    predicted = {line.split("\t")[0] for line in cap.out.strip().splitlines()}
    assert predicted == {str(files[k]) for k in ("good", "cmyk", "png16", "rgba")}
    assert "skipped 3 file(s)" in cap.err
    for key, reason in (("empty", "empty file"), ("truncated", "truncated"), ("text", "not an image")):
        assert f"{files[key]}: " in cap.err and reason in cap.err
    assert main(["predict", str(files["empty"]), "--checkpoint", str(out / "best"), "--quiet"]) == 1


def test_zero_shot_predict_works_out_of_the_box(data_env, bad_files, capsys):
    files = bad_files
    code = main(["predict", str(files["good"]), str(files["rgba"]), "--json", "--quiet"])
    cap = capsys.readouterr()
    rows = [json.loads(line) for line in cap.out.splitlines()]
    assert code == 0 and len(rows) == 2 and all(r["mode"] == "zero-shot" and 0 <= r["age"] <= 100 for r in rows)
    model, zero_shot = load_predictor(None)  # the same ages from the default CLIP's prompts, computed here
    assert zero_shot
    with torch.no_grad():
        images = torch.stack([model.preprocess(load_image(files[k])) for k in ("good", "rgba")])
        want = model.clip.zero_shot_ages(model.encode_image(images).pooled)
    assert [r["path"] for r in rows] == [str(files["good"]), str(files["rgba"])]
    assert [r["age"] for r in rows] == pytest.approx(want.tolist(), abs=1e-4)
    assert "zero-shot" in cap.err


def test_predict_paths_with_model_and_cli_eval(trained, tmp_path, capsys, data_env):
    out, report = trained
    model = load_model(out / "best")
    results, skips = predict_paths(model, [data_env / "images"], batch_size=256)
    assert len(results) == 1200 and len(skips) == 0
    assert {"y0", "steps", "accepted", "spread"} <= set(results[0])
    by_path = {r["path"]: r for r in results}
    some = sorted(by_path)[:3]  # each path gets its own image's estimate, as the model gives it directly
    with torch.no_grad():
        direct = model(torch.stack([model.preprocess(load_image(p)) for p in some]))
    assert [by_path[p]["age"] for p in some] == pytest.approx(direct.age.tolist(), abs=1e-3)
    assert [by_path[p]["y0"] for p in some] == pytest.approx(direct.y0.tolist(), abs=1e-3)
    code = main(["eval", "--checkpoint", str(out / "best"), "--n-images", "1200", "--quiet",
                 "--json", str(tmp_path / "m.json")])
    assert code == 0
    assert json.loads((tmp_path / "m.json").read_text())["model"]["mae"] == pytest.approx(report["model"]["mae"], abs=1e-4)
    assert "beats the train-mean baseline" in capsys.readouterr().out


def test_predict_on_a_folder_without_images_says_so(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a face")
    assert main(["predict", str(tmp_path), "--quiet"]) == 1
    assert f"no image files in {tmp_path}" in capsys.readouterr().err
