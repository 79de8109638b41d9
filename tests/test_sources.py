"""Dataset layouts, published protocols and malformed annotations (``open_dataset`` over every source)."""

import hashlib

import layouts
import pytest

from cilf.cli import main
from cilf.data import SOURCES, AnnotationError, DatasetNotFound, get_source, open_dataset
from cilf.data.protocols import published, read_table


def tree_hash(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(layouts.BUILDERS))
def test_every_layout_opens_with_every_protocol(trees, name):
    root = trees[name]
    before = tree_hash(root)
    ds = open_dataset(name, root)
    assert len(ds) > 10
    assert all(0 <= r["age"] <= 120 for r in ds.rows)
    # the stray file with a wrong name is listed, with the reason, not silently dropped
    if name not in ("adience", "appa-real", "imdb-wiki"):
        assert any(
            "not_a_valid_name" in p and ("does not match" in why or "not listed" in why) for p, why in ds.scan.skipped
        )
    for protocol in ds.protocols:
        for fold in ds.folds(protocol):
            assert set(fold.train).isdisjoint(fold.test)
            assert fold.train and fold.test
            subjects = {str(ds.rows[i]["subject"]) for i in fold.train} - {""}
            if protocol in ("C", "80-20", "5-fold", "lopo", "celebrity-disjoint") and name != "utkface":
                assert subjects.isdisjoint({str(ds.rows[i]["subject"]) for i in fold.test} - {""}), protocol
    assert tree_hash(root) == before  # reading never changes the user's data


def test_morph_protocols_follow_the_published_lists(trees):
    ds = open_dataset("morph2", trees["morph2"], protocol="B2")
    (fold,) = ds.folds()
    s2 = {r["filename"].upper() for _, r in read_table(published("morph", "order-learning", "SettingB_fold1.txt"), " ")}
    names = lambda idx: {ds.rows[i]["path"].split("/")[-1].upper() for i in idx}  # noqa: E731
    assert names(fold.train) <= s2 and names(fold.test).isdisjoint(s2)
    assert fold.missing > 20000  # the lists name 21,000 images; the fixture holds a few
    c = ds.folds("C")
    assert len(c) == 5
    assert len(ds.folds("A")) == 5
    row = next(r for r in ds.rows if r["path"].endswith("122148_04M45.JPG"))
    assert row["age"] == 45 and row["subject"] == "122148" and row["gender"] == "M"


def test_morph_release_csv_gives_the_labels_and_counts_missing_photos(tmp_path):
    root = layouts.morph(tmp_path / "morph", per_subset=4)
    photos = sorted(p.relative_to(root).as_posix() for p in (root / "Album2").glob("*_*.JPG") if p.stat().st_size)
    header = "id_num,picture_num,dob,doa,race,gender,facial_hair,age,age_diff,glasses,photo\n"
    lines = [
        f"{p.split('/')[-1].split('_')[0]},{i},1/1/1960,1/1/2000,W,M,0,{20 + i},0,0,{p}\n" for i, p in enumerate(photos)
    ]
    (root / "morph_2008_nonCommercial.csv").write_text(
        header + "".join(lines) + "7,1,x,y,B,F,0,33,0,0,Album2/gone.JPG\n"
    )
    ds = open_dataset("morph2", root, protocol="80-20")
    assert len(ds) == len(photos) and [r["age"] for r in ds.rows] == [20.0 + i for i in range(len(photos))]
    assert ds.rows[0]["race"] == "W" and ds.rows[0]["subject"] == photos[0].split("/")[1].split("_")[0]
    assert any("gone.JPG" in f and "not on disk" in why for f, why in ds.scan.skipped)
    assert any("morph_2008_nonCommercial.csv" in n for n in ds.scan.notes)
    assert ds.folds("B2")[0].train  # the published lists still match by file name
    (root / "morph_2008_nonCommercial.csv").write_text(header + lines[0].replace(",20,", ",old,"))
    with pytest.raises(AnnotationError, match="morph_2008_nonCommercial.csv, line 2"):
        open_dataset("morph2", root)


def test_fgnet_lopo_has_one_fold_per_subject(trees):
    ds = open_dataset("fgnet", trees["fgnet"])
    folds = ds.folds("lopo")
    assert len(folds) == len({r["subject"] for r in ds.rows})
    for f in folds:
        assert len({ds.rows[i]["subject"] for i in f.test}) == 1


def test_split_selection_and_protocol_errors(trees):
    test = open_dataset("adience", trees["adience"], protocol="5-fold", split="test", fold=2)
    assert len(test) == 8 and {r["fold"] for r in test.rows} == {2}
    assert {r["adience_group"] for r in test.rows} <= set(range(8))
    with pytest.raises(ValueError, match="no protocol 'Z'"):
        open_dataset("adience", trees["adience"], protocol="Z")
    with pytest.raises(ValueError, match="unknown dataset"):
        get_source("mnist")
    assert get_source("MORPH").name == "morph2"


def test_malformed_rows_name_file_and_line(tmp_path):
    layouts.adience(tmp_path / "a", malformed=True)
    with pytest.raises(AnnotationError, match=r"fold_2_data.txt, line \d+: age '\(abc'"):
        open_dataset("adience", tmp_path / "a")
    layouts.appa_real(tmp_path / "b", malformed=True)
    with pytest.raises(AnnotationError, match=r"gt_avg_valid.csv, line 14: age 'abc' is not a number"):
        open_dataset("appa-real", tmp_path / "b")
    root = layouts.faces(tmp_path / "c")
    (root / "ages.csv").write_text("subject,age\n001,30\n002\n")
    with pytest.raises(AnnotationError, match=r"ages.csv, line 3: 1 fields"):
        open_dataset("faces", root)


def test_annotation_files_are_used(trees):
    cacd = open_dataset("cacd", trees["cacd"])
    assert any("celebrity2000.mat" in n for n in cacd.scan.notes)
    imdb = open_dataset("imdb-wiki", trees["imdb-wiki"])
    reasons = [why for _, why in imdb.scan.skipped]
    assert any("face_score" in r for r in reasons) and any("second face" in r for r in reasons)
    row = imdb.rows[0]
    assert row["age"] == 2010 - int(row["path"].split("_")[-2][:4])
    appa = open_dataset("appa-real", trees["appa-real"])
    assert {"apparent_mean", "apparent_std"} <= set(appa.rows[0]) and appa.rows[0]["path"].endswith("_face.jpg")
    faces = open_dataset("faces", layouts.faces(trees["faces"].parent / "faces-noages", with_ages=False))
    assert any("midpoint" in n for n in faces.scan.notes)


def test_missing_dataset_says_where_and_how(tmp_path, capsys):
    with pytest.raises(DatasetNotFound, match="MORPH-II not found at .*How to get it"):
        open_dataset("morph2", tmp_path / "nothing")
    assert main(["data", "check", str(tmp_path / "nothing"), "--dataset", "fgnet", "--quiet"]) == 3
    assert "not found" in capsys.readouterr().err


def test_every_source_documents_itself():
    for s in SOURCES.values():
        assert s.title and s.layout and s.get and s.protocols
        assert s.default_protocol in s.protocols
