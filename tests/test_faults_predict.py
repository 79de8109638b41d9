"""Faults of ``predict`` (second battery): a row without an age called "ok", walks that hid what they passed over,
memory that grew with the number of inputs, a huge image that crashed, a newline in a file name that added a
row to the table. Zero-shot (no checkpoint) and ``--aligned`` wherever detection is not the point."""

import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

import cilf.app.predict as pred
from cilf.app.predict import iter_predict, load_predictor, predict
from cilf.cli import main

SAMPLE = Path(matplotlib.get_data_path()) / "sample_data"
DLIB_BOX = (180, 139, 367, 326)  # dlib's box on grace_hopper.jpg (tests/test_predict.py)


@pytest.fixture(scope="module")
def zs_model():
    return load_predictor(None)[0]


def _tiny(folder: Path, n: int, size: int = 32, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    paths = []
    for i in range(n):
        p = folder / f"f{i:05d}{suffix}"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text())


# -- 3. no false success -------------------------------------------------------------------------------------------


def test_a_row_without_an_age_is_never_ok(tmp_path, monkeypatch, capsys):
    (img,) = _tiny(tmp_path / "in", 1)
    monkeypatch.setattr(pred, "_estimate", lambda *a, **k: [])  # no estimate comes back (as batch-size -5 did)
    out = tmp_path / "rows.json"
    assert main(["predict", str(img), "--aligned", "--quiet", "--json", str(out)]) == 2  # nothing estimated
    (row,) = _rows(out)
    assert row["status"] == "not_estimated" and row["age"] is None
    err = capsys.readouterr().err
    assert "# 0 face(s) estimated in 0 of 1 image(s); 1 not estimated" in err


def test_predict_refuses_a_batch_size_below_one_before_any_work(zs_model, tmp_path):
    (img,) = _tiny(tmp_path, 1)
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be an integer of at least 1"):
            predict([img], zs_model, zero_shot=True, detect=False, batch_size=bad)


# -- 4. walks: everything passed over is counted, named and in the JSON ---------------------------------------------


def test_walk_counts_and_names_what_it_passes_over(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "photos"
    (a,) = _tiny(folder, 1)
    (folder / "IMG_0001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (folder / "notes.txt").write_text("not a face")
    locked = folder / "locked"
    locked.mkdir()
    _tiny(locked, 2)  # not counted: the folder cannot be listed
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)  # root reads any folder: deny this one as a user would be
    out = tmp_path / "rows.json"
    argv = ["predict", str(folder), str(a), str(a), "--aligned", "--quiet", "--json", str(out)]
    assert main(argv) == 0
    cap = capsys.readouterr()
    rows = _rows(out)
    by = {}
    for r in rows:
        by.setdefault(r["status"], []).append(r)
    assert [r["file"] for r in by["ok"]] == [str(a)]  # the same file three times: one image ...
    assert len(by["duplicate"]) == 2 and all(f"the same file as {a}" in r["reason"] for r in by["duplicate"])
    assert {Path(r["file"]).name: r["reason"].split(" (")[0] for r in by["passed_over"]} == {
        "IMG_0001.heic": "unsupported extension .heic",
        "notes.txt": "unsupported extension .txt",
    }
    assert [(r["file"], r["reason"].split(" (")[0]) for r in by["unreadable"]] == [(str(locked), "unreadable folder")]
    first = cap.err.splitlines()[-4:]
    assert "# 1 face(s) estimated in 1 of 2 image(s); 1 unreadable; 2 duplicate(s); 2 passed over" in cap.err, first
    assert f"# unreadable: {locked} (unreadable folder (permission denied" in cap.err
    assert "# passed over (1 unsupported extension .heic, 1 unsupported extension .txt)" in cap.err
    assert "notes.txt" not in cap.out  # other file types are left to the summary, not the table
    assert (tmp_path / "rows.json").is_file()


def test_nothing_usable_is_exit_code_2_with_one_line(tmp_path, capsys):
    (tmp_path / "a.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "b.txt").write_text("x")
    assert main(["predict", str(tmp_path), str(tmp_path / "gone.jpg"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: no usable image in")
    assert "1 not found" in err and "1 unsupported extension .heic" in err and "1 unsupported extension .txt" in err


def test_a_missing_path_beside_good_images_is_still_exit_code_2(tmp_path, capsys):
    (img,) = _tiny(tmp_path / "in", 1)
    assert main(["predict", str(img), str(tmp_path / "gone.jpg"), "--aligned", "--quiet"]) == 2
    assert f"# not found: {tmp_path / 'gone.jpg'}" in capsys.readouterr().err


# -- 5. bounded memory, huge images -----------------------------------------------------------------------------------


def test_predict_streams_no_more_than_one_image_and_one_batch_alive(zs_model, tmp_path, monkeypatch):
    paths = _tiny(tmp_path / "in", 40)
    live = {"images": 0, "crops": 0}
    peak = dict(live)

    def track(obj, kind):
        live[kind] += 1
        peak[kind] = max(peak[kind], live[kind])
        weakref.finalize(obj, lambda: live.__setitem__(kind, live[kind] - 1))
        return obj

    real_read, real_pre = pred.read_image, zs_model.preprocess
    monkeypatch.setattr(pred, "read_image", lambda p: track(real_read(p), "images"))
    monkeypatch.setattr(type(zs_model), "preprocess", property(lambda self: lambda img: track(real_pre(img), "crops")))
    seen = 0
    for row in iter_predict([tmp_path / "in"], zs_model, zero_shot=True, detect=False, batch_size=4):
        assert row.status == "ok" and row.age is not None
        seen += 1
    assert seen == len(paths)
    assert peak == {"images": 1, "crops": 4}  # one decoded photo at a time, and one batch of crops
    assert live == {"images": 0, "crops": 0}


RSS_SCRIPT = """
import resource, sys
from cilf.cli import main
code = main(["predict", sys.argv[1], "--aligned", "--quiet", "--batch-size", "32", "--json", sys.argv[2]])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    peaks = {}
    for n in (50, 500):
        _tiny(tmp_path / str(n), n, size=64)
        r = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, str(tmp_path / str(n)), str(tmp_path / f"{n}.json")],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            check=True,
        )
        peaks[n] = int(r.stdout.split()[-1]) / 1024  # MiB
        assert len(_rows(tmp_path / f"{n}.json")) == n
    # before: every image and its 3 x 112 x 112 crop were kept, about 0.16 MB per image (+80 MB here; 1.30 GB on
    # 100 images, 1.51 GB on 1,000, 2.47 GB on 5,000); now the rows alone grow
    assert peaks[500] - peaks[50] < 40 and peaks[500] < peaks[50] * 1.1, peaks


def test_a_12000_px_png_is_one_row_not_a_crash(tmp_path, capsys):
    huge = tmp_path / "huge.png"
    Image.new("1", (12000, 12000)).save(huge)  # 144 MP; a few kB on disk
    (good,) = _tiny(tmp_path / "in", 1)
    out = tmp_path / "rows.json"
    assert main(["predict", str(huge), str(good), "--quiet", "--json", str(out)]) == 0
    rows = {Path(r["file"]).name: r for r in _rows(out)}
    assert rows["huge.png"]["status"] == "too_large" and rows["huge.png"]["age"] is None
    assert "12000 x 12000 px (144 MP) is above the 89.5 MP cilf decodes" in rows["huge.png"]["reason"]
    assert rows[good.name]["status"] == "ok"
    assert "# too large, not decoded: " in capsys.readouterr().err
    assert main(["predict", str(huge), "--quiet", "--aligned"]) == 2  # nothing could be read


def test_a_photo_over_the_pixel_budget_is_detected_reduced_with_its_box_in_the_original(
    zs_model, tmp_path, monkeypatch
):
    from cilf.data import load_image

    photo = tmp_path / "portrait.jpg"
    load_image(SAMPLE / "grace_hopper.jpg").save(photo, quality=95)  # 512 x 600
    monkeypatch.setattr(pred, "DETECT_PIXELS", 100_000)  # as a 60 MP photo against 16 MP: reduced 2x
    (row,) = predict([photo], zs_model, zero_shot=True)
    assert row.status == "ok" and row.detector == "dlib"
    assert "detected on the photo reduced 2x" in row.reason
    x0, y0, x1, y1 = row.box  # in the original photo's pixels: the face dlib finds at full size
    bx0, by0, bx1, by1 = DLIB_BOX
    inter = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
    union = (x1 - x0) * (y1 - y0) + (bx1 - bx0) * (by1 - by0) - inter
    assert inter / union > 0.7 and 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 600


# -- 7. a newline in a file name ------------------------------------------------------------------------------------


def test_control_characters_in_names_do_not_add_rows_to_the_table(tmp_path, capsys):
    folder = tmp_path / "in"
    (img,) = _tiny(folder, 1)
    odd = folder / "fake\nrow\x1b[31m.png"
    img.rename(odd)
    out = tmp_path / "rows.json"
    assert main(["predict", str(folder), "--aligned", "--quiet", "--json", str(out)]) == 0
    cap = capsys.readouterr()
    table = [ln for ln in cap.out.splitlines() if "written to" not in ln]
    assert len(table) == 2 and "fake\\nrow\\x1b[31m.png" in table[1]  # header + one row, the name escaped
    assert "\x1b" not in cap.out and "\x1b" not in cap.err
    assert _rows(out)[0]["file"] == str(odd)  # the JSON keeps the real name
