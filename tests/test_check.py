"""``python -m cilf data check``: what a dataset root holds, with every file passed over and why."""

import json

import layouts

from cilf.cli import main


def test_data_check_cli_lists_skips(trees, tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["data", "check", str(trees["utkface"]), "--dataset", "utkface", "--quiet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "age histogram" in text and "protocol coral" in text
    rep = json.loads(out.read_text())
    why = dict(rep["skipped"])
    assert any("does not match" in w for w in why.values())  # the known mis-named UTKFace file
    assert any("empty file" in w for w in why.values())  # the zero-byte image
    assert rep["unreadable"] == 1


def _check(root, protocol, tmp_path, capsys):
    out = tmp_path / f"check-{protocol}.json"
    assert (
        main(["data", "check", str(root), "--dataset", "morph2", "--protocol", protocol, "--quiet", "--json", str(out)])
        == 0
    )
    return capsys.readouterr().out, json.loads(out.read_text())


def _listed_b(root):
    """Names on disk that setting B's lists name (every one is used by B2: S2 trains, S1 + S3 test)."""
    from cilf.data.protocols import published, read_table

    names = {
        r["filename"].upper()
        for j in range(3)
        for _, r in read_table(published("morph", "order-learning", f"SettingB_fold{j}.txt"), " ")
    }
    return [p for p in root.rglob("*.JPG") if p.name.upper() in names]


def test_data_check_counts_subjects_in_both_train_and_test(tmp_path, capsys):
    root = layouts.morph(tmp_path / "morph")
    layouts.morph_shared(root)
    n = layouts.morph_b2_shared(root)
    assert n >= 5
    text, rep = _check(root, "B2", tmp_path, capsys)
    assert f"warning: {n} subjects appear in both train and test" in text
    assert rep["folds"][0]["shared_subjects"] == n
    text, rep = _check(root, "80-20", tmp_path, capsys)  # ours: subject-exclusive
    assert "subjects appear in both" not in text and rep["folds"][0]["shared_subjects"] == 0


def test_data_check_counts_images_no_list_names_and_leaves_them_out_of_the_used_count(tmp_path, capsys):
    root = layouts.morph(tmp_path / "morph")
    for k in range(3):  # valid MORPH names that no published list names
        layouts.write_image(root / "Extra" / f"90000{k}_01M30.JPG", 30, k)
    listed = _listed_b(root)
    text, rep = _check(root, "B2", tmp_path, capsys)
    # the three extras and the zero-byte 999999_00M30.JPG of the tree
    assert "warning: 4 image(s) on disk are named by no list of protocol B2 and are not used" in text
    assert rep["split_warnings"]["unlisted"] == 4
    assert rep["images"] == len(listed) and f"images: {len(listed)} readable ones used by protocol B2" in text
    text, rep = _check(root, "80-20", tmp_path, capsys)  # ours: every image found is used
    assert "named by no list" not in text and rep["images"] == rep["listed_rows"] - rep["unreadable"]


def test_data_check_counts_duplicate_file_names(tmp_path, capsys):
    import shutil

    root = layouts.morph(tmp_path / "morph")
    _, before = _check(root, "B2", tmp_path, capsys)
    listed = sorted(_listed_b(root))
    for p in listed[:2]:  # the same names again in another folder
        (root / "Copies").mkdir(exist_ok=True)
        shutil.copy(p, root / "Copies" / p.name.lower())
    text, rep = _check(root, "B2", tmp_path, capsys)
    assert "warning: 4 files share 2 file name(s) in different folders" in text
    assert "2 of these files are not used by protocol B2" in text  # a list names each once: one copy is used
    w = rep["split_warnings"]
    assert (w["duplicate_names"], w["duplicate_files"], w["duplicates_unused"]) == (2, 4, 2)
    assert rep["images"] == before["images"] and rep["listed_rows"] == before["listed_rows"] + 2
