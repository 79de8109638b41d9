"""Prediction: faces detected and aligned in real photos (one row per face), the fallbacks, the CLI's
table / JSON / CSV and exit codes, a trained checkpoint or zero-shot CLIP, bad files reported, ``cilf eval``."""

import io
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from cilf.app.predict import SMALL_SIDE, face_crops, load_predictor, predict, predict_paths
from cilf.cli import main
from cilf.data import load_image
from cilf.persist.checkpoint import load_model

SAMPLE = Path(matplotlib.get_data_path()) / "sample_data"
DLIB_BOX = (180, 139, 367, 326)  # dlib's face box on grace_hopper.jpg (512 x 600), checked by eye: her face


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with a real portrait, a two-face photo, a photo with no face and a 25-px face crop."""
    root = tmp_path_factory.mktemp("photos")
    grace = load_image(SAMPLE / "grace_hopper.jpg")
    grace.save(root / "portrait.jpg", quality=95)
    two = Image.new("RGB", (2 * grace.width, grace.height))
    two.paste(grace, (0, 0))
    two.paste(ImageOps.mirror(grace), (grace.width, 0))
    two.save(root / "two_faces.jpg", quality=95)
    Image.open(SAMPLE / "Minduka_Present_Blue_Pack.png").save(root / "no_face.png")
    grace.crop(DLIB_BOX).resize((25, 25), Image.Resampling.LANCZOS).save(root / "tiny.png")
    return root


@pytest.fixture(scope="module")
def zs():
    """predict() with the bundled micro-CLIP zero-shot, loaded once (predict(images) alone loads it per call)."""
    model = load_predictor(None)[0]
    return lambda images, **kw: predict(images, model, zero_shot=True, **kw)


def test_a_real_portrait_gives_one_face_with_a_plausible_box(photos, zs):
    (row,) = zs([photos / "portrait.jpg"])
    assert row.status == "ok" and row.detector == "dlib" and row.face == 0 and row.score > 0
    x0, y0, x1, y1 = row.box
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 600
    assert 0.25 < (x1 - x0) / 512 < 0.6 and 0.3 < (x0 + x1) / 2 / 512 < 0.7 and 0.2 < (y0 + y1) / 2 / 600 < 0.5
    assert np.abs(np.array(row.box) - DLIB_BOX).max() <= 10  # covers the face region
    assert row.mode == "zero-shot" and 0 <= row.age <= 100
    arr = np.asarray(load_image(photos / "portrait.jpg"))  # PIL images and arrays give the same row
    for other in (zs(Image.fromarray(arr)), zs([arr])):
        assert other[0].box == row.box and other[0].age == pytest.approx(row.age, abs=1e-4)
        assert other[0].file == "<image 0>"


def test_two_faces_give_two_rows_with_disjoint_boxes(photos, zs):
    rows = zs([photos / "two_faces.jpg"])
    assert [r.face for r in rows] == [0, 1] and all(r.status == "ok" for r in rows)
    a, b = (r.box for r in rows)
    assert a[2] <= 512 <= b[0]  # one face in each half, left to right


def test_photos_without_a_face_are_reported_not_estimated(photos, zs):
    smooth = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).resize(
        (256, 256), Image.Resampling.BICUBIC
    )
    rows = zs([photos / "no_face.png", smooth])
    assert [(r.status, r.age, r.reason) for r in rows] == [("no_face", None, "no face found")] * 2


def test_a_small_crop_with_no_face_found_is_taken_whole(photos, zs):
    (row,) = zs([photos / "tiny.png"])
    assert min(Image.open(photos / "tiny.png").size) < SMALL_SIDE
    assert row.status == "ok" and row.detector == "whole_image" and row.box == (0, 0, 25, 25) and row.score is None
    (aligned,) = zs([photos / "tiny.png"], detect=False)  # as --aligned does it
    assert aligned.detector == "aligned" and aligned.age == pytest.approx(row.age, abs=1e-5)


def test_predict_crops_exactly_what_cilf_align_writes(photos, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "portrait.jpg").write_bytes((photos / "portrait.jpg").read_bytes())
    assert main(["align", str(src), str(tmp_path / "dst"), "--quiet"]) == 0
    written = (tmp_path / "dst" / "portrait.jpg").read_bytes()
    ((fields, crop),) = face_crops(load_image(photos / "portrait.jpg"))
    assert fields["detector"] == "dlib" and crop.size == (224, 224)
    buf = io.BytesIO()
    crop.save(buf, format="JPEG", quality=95)  # as align_folder saves it
    assert buf.getvalue() == written


def test_cli_on_a_folder_of_photos_and_a_missing_path(photos, tmp_path, capsys):
    missing = tmp_path / "gone.jpg"
    code = main(
        [
            "predict",
            str(photos),
            str(missing),
            "--quiet",
            "--json",
            str(tmp_path / "p.json"),
            "--csv",
            str(tmp_path / "p.csv"),
        ]
    )
    cap = capsys.readouterr()
    assert code == 2  # only because of the missing path
    lines = {ln.split()[0] + " " + ln.split()[1]: ln for ln in cap.out.splitlines()[1:] if "written to" not in ln}
    assert set(lines) == {
        f"{photos / 'portrait.jpg'} 0",
        f"{photos / 'two_faces.jpg'} 0",
        f"{photos / 'two_faces.jpg'} 1",
        f"{photos / 'tiny.png'} 0",
        f"{photos / 'no_face.png'} -",
        f"{missing} -",
    }
    assert (
        "180,139,367,326" in lines[f"{photos / 'portrait.jpg'} 0"]
        and "whole_image" in lines[f"{photos / 'tiny.png'} 0"]
    )
    assert lines[f"{photos / 'no_face.png'} -"].endswith("no face found")
    assert lines[f"{missing} -"].endswith("not found (no such file or folder)")
    assert f"no face found in: {photos / 'no_face.png'}" in cap.err and f"# not found: {missing}" in cap.err
    rows = json.loads((tmp_path / "p.json").read_text())
    assert (
        len(rows) == 6
        and sum(r["status"] == "ok" for r in rows) == 4
        and "NaN" not in (tmp_path / "p.json").read_text()
    )
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 7
    assert main(["predict", str(photos), "--quiet"]) == 0  # no missing path: a photo without a face is no error
    assert main(["predict", str(photos / "no_face.png"), "--aligned", "--quiet"]) == 0
    assert "aligned" in capsys.readouterr().out


def test_synthage_faces_are_taken_whole_and_estimated_as_before(synth_root, zs):
    """112-px SynthAge faces are below SMALL_SIDE: no detection, the same ages as --aligned."""
    paths = sorted((synth_root / "images").glob("*.jpg"))[:12]
    rows = zs(paths)
    assert len({r.file for r in rows}) == 12 and all(r.status == "ok" for r in rows)
    assert {r.detector for r in rows} == {"whole_image"} and all(r.box == (0, 0, 112, 112) for r in rows)
    assert [r.age for r in rows] == pytest.approx([r.age for r in zs(paths, detect=False)], abs=1e-4)


@pytest.mark.slow
def test_predict_reports_bad_files_and_predicts_good_ones(trained, bad_files, capsys, tmp_path):
    out, _ = trained
    files = bad_files
    code = main(
        [
            "predict",
            *map(str, files.values()),
            "--checkpoint",
            str(out / "best"),
            "--quiet",
            "--json",
            str(tmp_path / "rows.json"),
        ]
    )
    cap = capsys.readouterr()
    assert code == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert {r["file"] for r in rows if r["status"] == "ok"} == {
        str(files[k]) for k in ("good", "cmyk", "png16", "rgba")
    }
    assert all(r["steps"] is not None for r in rows if r["status"] == "ok")
    for key, reason in (("empty", "empty file"), ("truncated", "truncated"), ("text", "not an image")):
        assert f"{files[key]} (" in cap.err and reason in cap.err
    assert main(["predict", str(files["empty"]), "--checkpoint", str(out / "best"), "--quiet"]) == 2


@pytest.mark.slow
def test_zero_shot_predict_works_out_of_the_box(data_env, bad_files, capsys, tmp_path):
    files = bad_files
    code = main(["predict", str(files["good"]), str(files["rgba"]), "--json", str(tmp_path / "r.json"), "--quiet"])
    cap = capsys.readouterr()
    rows = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and len(rows) == 2 and all(r["mode"] == "zero-shot" and 0 <= r["age"] <= 100 for r in rows)
    model, zero_shot = load_predictor(None)  # the same ages from the default CLIP's prompts, computed here
    assert zero_shot
    with torch.no_grad():
        images = torch.stack([model.preprocess(load_image(files[k])) for k in ("good", "rgba")])
        want = model.clip.zero_shot_ages(model.encode_image(images).pooled)
    assert [r["file"] for r in rows] == [str(files["good"]), str(files["rgba"])]
    assert [r["age"] for r in rows] == pytest.approx(want.tolist(), abs=1e-4)
    assert "zero-shot" in cap.err


@pytest.mark.slow
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
    code = main(
        ["eval", "--checkpoint", str(out / "best"), "--n-images", "1200", "--quiet", "--json", str(tmp_path / "m.json")]
    )
    assert code == 0
    assert json.loads((tmp_path / "m.json").read_text())["model"]["mae"] == pytest.approx(
        report["model"]["mae"], abs=1e-4
    )
    assert "beats the train-mean baseline" in capsys.readouterr().out


def test_predict_on_a_folder_without_images_says_so(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a face")
    assert main(["predict", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"no usable image in {tmp_path}" in err and "1 unsupported extension .txt" in err
    assert err.count("\n") == 1  # one line, before any model is loaded


def test_help_states_the_small_image_rule(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"below {SMALL_SIDE} px" in text and "whole_image" in text and "--no-detect" in text
