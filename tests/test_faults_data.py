"""Faults in the data a user points cilf at: a missing fold file, an unreadable folder, files of other
types, a path given twice, one image in two splits or with two ages, a subject on both sides of a
subject-exclusive protocol, and an interrupted ``align``. Each is found, counted and named; none is
silently dropped or turned into a different experiment."""

from __future__ import annotations

import csv
import json
import os

import layouts
import pytest
from PIL import Image

from cilf.cli import main
from cilf.data import DatasetNotFound, NoImagesFound, open_dataset, walk_images
from cilf.data.protocols import AnnotationError, Fold, find_fold


def _img(path, value=128, size=24):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (value, value, value)).save(path)
    return path


# -- 1. protocols by name, never by position ------------------------------------------------------------


def test_a_missing_adience_fold_file_is_an_error_naming_it_not_a_shifted_fold(tmp_path, capsys):
    root = layouts.adience(tmp_path / "adience", per_fold=4)
    (root / "fold_1_data.txt").unlink()
    with pytest.raises(
        DatasetNotFound,
        match=r"fold_1_data\.txt not found: Adience fold 1 needs it.*download the "
        r"five fold files",
    ):
        open_dataset("adience", root)
    from cilf.data.splits import open_splits

    with pytest.raises(DatasetNotFound, match=r"fold_1_data\.txt"):  # what train --dataset adience --fold 1 opens
        open_splits("adience", root, fold=1)
    assert main(["data", "check", str(root), "--dataset", "adience", "--quiet"]) == 3
    assert "fold_1_data.txt not found" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--dataset",
                "adience",
                "--root",
                str(root),
                "--fold",
                "1",
                "--out",
                str(tmp_path / "run"),
                "--quiet",
                "--epochs",
                "1",
            ]
        )
        == 3
    )  # before: trained on fold 2, reported as fold 1
    err = capsys.readouterr().err
    assert "fold_1_data.txt not found: Adience fold 1 needs it" in err and "Traceback" not in err


def test_adience_folds_are_found_by_their_number(tmp_path):
    root = layouts.adience(tmp_path / "adience", per_fold=4)
    ds = open_dataset("adience", root)
    assert [f.name for f in ds.folds()] == [f"fold{k}" for k in range(5)]
    for k in range(5):
        f = ds.fold(k)
        assert f.name == f"fold{k}" and {ds.rows[i]["fold"] for i in f.test} == {k}
    assert {r["fold"] for r in ds.split("test", fold=3).rows} == {3}
    # a fold file whose images are all missing is named, not dropped
    for p in (root / "faces").glob("user2x*"):
        for f in p.iterdir():
            f.unlink()
    with pytest.raises(ValueError, match=r"Adience fold 2: none of the images .*fold_2_data\.txt"):
        open_dataset("adience", root).folds()


def test_appa_real_needs_each_split_list_by_name(tmp_path):
    root = layouts.appa_real(tmp_path / "appa", per_split=4)
    (root / "gt_avg_valid.csv").unlink()
    with pytest.raises(DatasetNotFound, match=r"gt_avg_valid\.csv not found: the valid split"):
        open_dataset("appa-real", root)


def test_morph_settings_c_and_d_need_folds_0_to_4(tmp_path, monkeypatch):
    import cilf.data.sources.morph as morph
    from cilf.data.protocols import published

    root = layouts.morph(tmp_path / "morph", per_subset=4)
    lines = published("morph", "order-learning", "SettingC.txt").read_text().splitlines()
    short = tmp_path / "SettingC.txt"
    short.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split("\t")[2] != "3"]) + "\n")
    monkeypatch.setattr(morph, "published", lambda *parts: short if parts[-1] == "SettingC.txt" else published(*parts))
    with pytest.raises(AnnotationError, match=r"folds 0-4, this list has folds \['0', '1', '2', '4'\]"):
        open_dataset("morph2", root, protocol="C").folds()


def test_a_missing_published_list_is_named():
    from cilf.data.protocols import published

    with pytest.raises(FileNotFoundError, match=r"SettingE\.txt not found: the published split list .* reinstall"):
        published("morph", "order-learning", "SettingE.txt")


def test_find_fold_by_name_or_number():
    folds = [Fold(f"fold{k}", [9], [k]) for k in (0, 2, 3)]  # fold1 absent: never the second in the list
    assert find_fold(folds, 2).name == "fold2" and find_fold(folds, "fold3").name == "fold3"
    with pytest.raises(ValueError, match=r"has 3 fold\(s\) \(fold0, fold2, fold3\); no fold 1"):
        find_fold(folds, 1)
    subjects = [Fold("subject 001", [1], [0]), Fold("subject 002", [0], [1])]  # FG-NET: one per subject
    assert find_fold(subjects, 1).name == "subject 002"
    with pytest.raises(ValueError, match="2 fold"):
        find_fold(subjects, 2)


def test_a_manifest_split_is_looked_up_by_name(tmp_path):
    for i in range(4):
        _img(tmp_path / f"{i}.png", 40 * i)
    (tmp_path / "manifest.csv").write_text(
        "path,age,subject,split\n" + "".join(f"{i}.png,{20 + i},s{i},train\n" for i in range(4))
    )
    with pytest.raises(ValueError, match="no row has split = test"):
        open_dataset("manifest", tmp_path, protocol="official").folds()


# -- 2. every walk accounts for what it skipped ---------------------------------------------------------


def _deny(monkeypatch, folder):
    """os.scandir raises PermissionError for ``folder`` (tests run as root, where chmod does not stop a read)."""
    real = os.scandir

    def scandir(path="."):
        if os.path.realpath(path) == os.path.realpath(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_walk_counts_an_unreadable_folder_other_types_and_duplicates(tmp_path, monkeypatch):
    a = _img(tmp_path / "a.jpg")
    _img(tmp_path / "sub" / "b.png")
    _img(tmp_path / "locked" / "c.jpg")
    (tmp_path / "photo.heic").write_bytes(b"\0" * 10)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    _deny(monkeypatch, tmp_path / "locked")
    walk = walk_images([tmp_path, a, a, a])
    assert [p.name for p in walk.files] == ["a.jpg", "b.png"]
    c = walk.counts()
    assert c["unreadable folder"] == 1 and c["unsupported extension .heic"] == 1
    assert c["unsupported extension .txt"] == 1 and c["hidden file"] == 1
    assert c["duplicate"] == 3 and walk.duplicates == 3  # a.jpg by the walk, then given three times
    why = dict(walk.skipped)
    assert why[str(tmp_path / "locked")].startswith("unreadable folder (permission denied")
    one = walk_images([a, a, a])
    assert len(one.files) == 1 and one.duplicates == 2  # the same path three times: one image, two duplicates


def test_walk_counts_an_unreadable_file_and_says_when_nothing_is_usable(tmp_path, monkeypatch):
    _img(tmp_path / "a.jpg")
    (tmp_path / "b.heic").write_bytes(b"x")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(p).endswith("a.jpg") else real(p, mode, **k))
    walk = walk_images(tmp_path)
    assert walk.files == [] and walk.counts() == {"unreadable file": 1, "unsupported extension .heic": 1}
    with pytest.raises(
        NoImagesFound,
        match=r"no usable image in .*1 unreadable file, 1 unsupported extension "
        r"\.heic",
    ):
        walk.require()


def test_an_unreadable_folder_really_chmodded(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder; the monkeypatched tests cover this")
    _img(tmp_path / "ok" / "a.jpg")
    locked = tmp_path / "locked"
    _img(locked / "b.jpg")
    locked.chmod(0)
    try:
        walk = walk_images(tmp_path)
    finally:
        locked.chmod(0o755)
    assert [p.name for p in walk.files] == ["a.jpg"] and walk.counts()["unreadable folder"] == 1


def test_dataset_scans_and_data_check_list_an_unreadable_folder(tmp_path, monkeypatch, capsys):
    root = layouts.agedb(tmp_path / "agedb", people=4, per_person=3)
    _img(root / "AgeDB" / "more" / "99_Extra_40_m.jpg")
    (root / "AgeDB" / "IMG_0001.heic").write_bytes(b"x")
    _deny(monkeypatch, root / "AgeDB" / "more")
    ds = open_dataset("agedb", root)
    why = dict(ds.scan.skipped)
    assert why[str(root / "AgeDB" / "more")].startswith("unreadable folder")
    assert why[str(root / "AgeDB" / "IMG_0001.heic")].startswith("unsupported extension .heic")
    out = tmp_path / "check.json"
    assert main(["data", "check", str(root), "--dataset", "agedb", "--quiet", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["skip_reasons"]["unreadable folder"] == 1 and rep["skip_reasons"]["unsupported extension .heic"] == 1
    assert "1 unreadable folder" in capsys.readouterr().out


def test_a_layout_with_nothing_usable_says_what_it_passed_over(tmp_path, monkeypatch):
    root = tmp_path / "fgnet"
    _img(root / "images" / "001A02.JPG")
    _deny(monkeypatch, root / "images")
    with pytest.raises(NoImagesFound, match=r"no usable image found \(1 passed over: 1 unreadable folder"):
        open_dataset("fgnet", root)


# -- 3. leakage and label conflicts ------------------------------------------------------------------------


def test_leakage_report_counts_each_leak_once():
    from cilf.data import leakage_report

    train = [
        {"path": "/d/a.jpg", "age": 30, "subject": "p"},
        {"path": "/d/b.jpg", "age": 40, "subject": "q"},
        {"path": "/d/b.jpg", "age": 40, "subject": "q"},
    ]
    test = [{"path": "/d/./a.jpg", "age": 31, "subject": "p"}, {"path": "/d/c.jpg", "age": 50, "subject": "q"}]
    rep = leakage_report({"train": train, "test": test}, subject_exclusive=True)
    assert rep["images_in_several_splits"] == 1 and rep["split_pairs"] == {"train+test": 1}
    assert rep["repeated_rows"] == 1 and rep["age_conflicts"] == 1  # a.jpg: 30 in train, 31 in test
    assert rep["subjects_in_several_splits"] == 2 and rep["subject_leak"] == 2
    assert leakage_report({"train": train, "test": test}, subject_exclusive=False)["subject_leak"] == 0
    assert rep["images"] == 3 and json.dumps(rep)


def _leaky_manifest(tmp_path):
    rows = []
    for i in range(6):
        _img(tmp_path / "img" / f"{i}.png", 30 * i)
        rows.append((f"img/{i}.png", 20 + i, f"s{i}", "train" if i < 4 else "test"))
    rows += [
        ("img/0.png", 20, "s0", "test"),
        ("img/1.png", 20, "s1", "test"),  # test rows that are train rows
        ("img/2.png", 45, "s2", "train"),
    ]  # the same image again, another age
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "age", "subject", "split"])
        w.writerows(rows)
    return tmp_path / "manifest.csv"


def test_data_check_counts_images_in_two_splits_and_two_ages(tmp_path, capsys):
    m = _leaky_manifest(tmp_path)
    out = tmp_path / "check.json"
    assert (
        main(
            ["data", "check", str(m), "--dataset", "manifest", "--protocol", "official", "--quiet", "--json", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert "warning: 2 image(s) are in more than one split" in text
    assert "warning: 3 image(s) are listed by more than one row (3 extra row(s))" in text
    assert "warning: 2 image(s) carry two or more different ages" in text  # 1.png: 21/20, 2.png: 22/45
    assert "in different folders" not in text  # the same path twice is not two folders
    assert rep["folds"][0]["images_in_several_splits"] == 2
    assert rep["distinct_images"] == 6 and rep["listed_rows"] == 9 and rep["images"] == 6
    assert "images: 6 readable ones used by protocol official (6 found in 9 rows)" in text


def test_a_manifest_dataset_keeps_its_leaks_for_the_caller(tmp_path):
    from cilf.data import ManifestDataset

    ds = ManifestDataset(_leaky_manifest(tmp_path), split="train")
    assert len(ds) == 5  # the split asked for; the leaks are counted over the whole manifest
    leak = ds.leakage
    assert (leak["images_in_several_splits"], leak["age_conflicts"], leak["repeated_rows"]) == (2, 2, 1)
    text = "\n".join(ds.warnings())
    assert "2 image(s) are in more than one split" in text and "manifest.csv" in text


def test_a_subject_in_train_and_test_of_a_subject_exclusive_protocol_is_a_leak(tmp_path, capsys):
    root = layouts.adience(tmp_path / "adience", per_fold=4)
    fold1 = root / "fold_1_data.txt"
    layouts.write_image(root / "faces" / "user0x0" / "coarse_tilt_aligned_face.77.77.jpg", 30, 77)
    fold1.write_text(
        fold1.read_text()
        + "\t".join(["user0x0", "77.jpg", "77", "(25, 32)", "f", "0", "0", "1", "1", "0", "0", "0"])
        + "\n"
    )  # user0x0 is in fold 0 too
    out = tmp_path / "check.json"
    assert main(["data", "check", str(root), "--dataset", "adience", "--quiet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    rep = json.loads(out.read_text())
    assert "1 subjects appear in both train and test although protocol 5-fold fold0 is subject-exclusive" in text
    assert rep["subject_exclusive"] is True and rep["folds"][0]["shared_subjects"] == 1


# -- 6. align: an interrupted run keeps its report lines, a re-run adds no duplicate -------------------------


class _FakeAligner:
    """Stands in for the detectors (fast): grey level < 60 has no face, > 200 is found by the fallback."""

    def __init__(self, size=224, detector="auto", upsample=1):
        self.size, self.names = size, ["dlib", "opencv"]

    def align(self, img):
        v = img.getpixel((0, 0))[0]
        if v < 60:
            return None
        return img.resize((self.size, self.size)), ("opencv" if v > 200 else "dlib")


def _report(dst):
    with open(dst / "align_report.csv", newline="") as f:
        return list(csv.reader(f))


def test_an_interrupted_align_keeps_its_report_and_a_rerun_lists_each_image_once(tmp_path, monkeypatch):
    import cilf.data.align as al

    monkeypatch.setattr(al, "FaceAligner", _FakeAligner)
    src, dst = tmp_path / "raw", tmp_path / "aligned"
    for i, v in enumerate([220, 30, 128, 40, 128, 230]):  # fallback, no face, ok, no face, ok, fallback
        _img(src / f"p{i}.png", v)
    (src / "notes.txt").write_text("x")
    real, calls = _FakeAligner.align, []

    def dies_on_the_fifth(self, img):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, img)

    monkeypatch.setattr(_FakeAligner, "align", dies_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        al.align_folder(src, dst, size=32, progress=False)
    first = _report(dst)
    assert first[0] == ["file", "problem"]
    assert dict(first[1:]) == {
        "notes.txt": "passed over: unsupported extension .txt (not an image type cilf reads)",
        "p0.png": "dlib found no face; aligned by the opencv fallback",
        "p1.png": "no face found",
        "p3.png": "no face found",
    }
    monkeypatch.setattr(_FakeAligner, "align", real)
    rep = al.align_folder(src, dst, size=32, progress=False)
    assert rep["counts"]["already_done"] == 2 and rep["counts"]["aligned"] == 2 and rep["counts"]["no_face"] == 2
    lines = _report(dst)[1:]
    files = [f for f, _ in lines]
    assert sorted(files) == sorted(set(files)) == ["notes.txt", "p0.png", "p1.png", "p3.png", "p5.png"]
    assert dict(lines)["p0.png"] == "dlib found no face; aligned by the opencv fallback"  # the first session's line
    al.align_folder(src, dst, size=32, progress=False)
    assert _report(dst)[1:] == lines  # a third run changes nothing


def test_align_lists_an_unreadable_sub_folder_and_refuses_an_empty_source(tmp_path, monkeypatch, capsys):
    import cilf.data.align as al

    monkeypatch.setattr(al, "FaceAligner", _FakeAligner)
    src, dst = tmp_path / "raw", tmp_path / "aligned"
    _img(src / "p.png")
    _img(src / "locked" / "q.png")
    _deny(monkeypatch, src / "locked")
    assert main(["align", str(src), str(dst), "--size", "32", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "aligned 1 (1 by dlib, 0 by opencv)" in out and "passed over 1" in out
    assert "locked: passed over: unreadable folder (permission denied" in out
    assert dict(_report(dst)[1:])["locked"].startswith("passed over: unreadable folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.heic").write_bytes(b"x")
    assert main(["align", str(tmp_path / "empty"), str(tmp_path / "out2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no usable image in" in err and "1 unsupported extension .heic" in err and "Traceback" not in err
