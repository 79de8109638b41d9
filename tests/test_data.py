import csv
import io

import numpy as np
import pytest
from PIL import Image

from cilf.data import BadImageError, ManifestDataset, ManifestError, SynthAge, collate_skip, load_image
from cilf.data.synthage import SynthAgeSpec, plan, render_row


def test_synthage_is_deterministic_and_subject_exclusive(synth_root):
    spec = SynthAgeSpec(n_images=1200, seed=0)
    rows = plan(spec)
    a, _ = render_row(spec, rows[7])
    b, _ = render_row(spec, rows[7])
    assert np.array_equal(np.asarray(a), np.asarray(b))
    c, _ = render_row(SynthAgeSpec(n_images=1200, seed=1), plan(SynthAgeSpec(n_images=1200, seed=1))[7])
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    splits = {s: ManifestDataset(synth_root / "manifest.csv", split=s) for s in ("train", "val", "test")}
    subjects = {s: {r["subject"] for r in d.rows} for s, d in splits.items()}
    assert not (subjects["train"] & subjects["test"]) and not (subjects["train"] & subjects["val"])
    assert sum(len(d) for d in splits.values()) == 1200
    per_subject = {}
    for r in splits["train"].rows:
        per_subject.setdefault(r["subject"], set()).add(r["age"])
    assert np.mean([len(v) > 1 for v in per_subject.values()]) > 0.8  # longitudinal


def test_synthage_items_and_captions(synth_root):
    ds = SynthAge(split="test", n_images=1200, seed=0, root=synth_root, progress=False)
    img, age, subject, meta = ds[0]
    assert img.size == (112, 112) and img.mode == "RGB"
    assert f"{int(age)}-year-old" in meta["caption"] and meta["caption"].startswith("a photo of a ")
    ages = ds.ages.numpy()
    assert ages.min() >= 1 and ages.max() <= 90 and ages.std() > 15


def test_synthage_regeneration_is_idempotent_and_never_overwrites(synth_root):
    before = (synth_root / "manifest.csv").stat().st_mtime_ns
    SynthAge(split="train", n_images=1200, seed=0, root=synth_root, progress=False)
    assert (synth_root / "manifest.csv").stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match="another spec"):
        SynthAge(split="train", n_images=1300, seed=0, root=synth_root, progress=False)


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


def _bad_files(d):
    """The six awkward inputs of the issue, plus one good face."""
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    files = {}
    files["good"] = d / "good.jpg"
    rgb.save(files["good"])
    files["empty"] = d / "empty.jpg"
    files["empty"].write_bytes(b"")
    buf = io.BytesIO()
    rgb.save(buf, "JPEG")
    files["truncated"] = d / "truncated.jpg"
    files["truncated"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    files["text"] = d / "notes.jpg"
    files["text"].write_text("this is not an image\n")
    files["cmyk"] = d / "cmyk.jpg"
    rgb.convert("CMYK").save(files["cmyk"], "JPEG")
    files["png16"] = d / "deep.png"
    Image.fromarray((np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)).save(files["png16"])
    files["rgba"] = d / "alpha.png"
    rgb.convert("RGBA").save(files["rgba"])
    return files


def test_load_image_converts_or_refuses_with_reason(tmp_path):
    f = _bad_files(tmp_path)
    for key in ("good", "cmyk", "png16", "rgba"):
        img = load_image(f[key])
        assert img.mode == "RGB" and img.size == (64, 64)
    arr = np.asarray(load_image(f["png16"]))
    assert arr.min() == 0 and arr.max() == 255  # 16-bit rescaled, not clipped
    reasons = {"empty": "empty file", "truncated": "truncated", "text": "not an image"}
    for key, reason in reasons.items():
        with pytest.raises(BadImageError, match=reason):
            load_image(f[key])
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    with pytest.raises(BadImageError, match="too small"):
        load_image(tmp_path / "tiny.png")


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (20, 40)


def test_dataset_counts_unreadable_files_and_collate_drops_them(tmp_path):
    f = _bad_files(tmp_path)
    before = {p: p.read_bytes() for p in f.values()}
    rows = [(p.name, "30", str(i), "train") for i, p in enumerate(f.values())]
    _write(tmp_path / "m.csv", rows)
    ds = ManifestDataset(tmp_path / "m.csv", split="train")
    batch = collate_skip([ds[i] for i in range(len(ds))])
    assert len(batch[1]) == 4 and len(ds.skips) == 3
    assert "skipped 3 file(s)" in ds.skips.report()
    assert before == {p: p.read_bytes() for p in f.values()}  # nothing written back
