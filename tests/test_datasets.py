"""Manifest datasets: malformed rows name file and line; unreadable images are counted and dropped."""

import csv

import pytest

from cilf.data import ManifestDataset, ManifestError, collate_skip


def _write(path, rows, header=("path", "age", "subject", "split")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_manifest_errors_name_file_and_line(tmp_path):
    m = tmp_path / "m.csv"
    _write(m, [("a.jpg", "30", "1", "train"), ("b.jpg", "thirty", "2", "train")])
    with pytest.raises(ManifestError, match=r"m.csv, line 3: age 'thirty'"):
        ManifestDataset(m)
    _write(m, [("a.jpg", "300", "1", "train")])
    with pytest.raises(ManifestError, match=r"line 2: age 300 outside"):
        ManifestDataset(m)
    _write(m, [("a.jpg", "30")], header=("file", "age"))
    with pytest.raises(ManifestError, match="path and age"):
        ManifestDataset(m)
    m.write_text("path,age\na.jpg,30,extra\n")
    with pytest.raises(ManifestError, match="line 2: wrong number of fields"):
        ManifestDataset(m)
    with pytest.raises(FileNotFoundError):
        ManifestDataset(tmp_path / "missing.csv")


def test_dataset_counts_unreadable_files_and_collate_drops_them(tmp_path, bad_files):
    f = bad_files
    before = {p: p.read_bytes() for p in f.values()}
    rows = [(p.name, "30", str(i), "train") for i, p in enumerate(f.values())]
    _write(tmp_path / "m.csv", rows)
    ds = ManifestDataset(tmp_path / "m.csv", split="train")
    batch = collate_skip([ds[i] for i in range(len(ds))])
    assert len(batch[1]) == 4 and len(ds.skips) == 3
    assert "skipped 3 file(s)" in ds.skips.report()
    assert before == {p: p.read_bytes() for p in f.values()}  # nothing written back
