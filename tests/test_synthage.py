"""SynthAge: deterministic, subject-exclusive splits, captions, idempotent generation."""

import numpy as np
import pytest

from cilf.data import ManifestDataset, SynthAge
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


def test_the_manifest_records_each_images_latent_variables(synth_root):
    from cilf.data.synthage import FIELDS, LATENT_FIELDS, growth_strain

    header = (synth_root / "manifest.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == FIELDS and set(LATENT_FIELDS) <= set(header)
    rows = ManifestDataset(synth_root / "manifest.csv").rows
    spec = SynthAgeSpec(n_images=1200, seed=0)
    for row, planned in list(zip(rows, plan(spec)))[::150]:
        _, meta = render_row(spec, planned)  # what the renderer drew is what the manifest says
        assert {k: str(meta[k]) for k in LATENT_FIELDS} == {k: row[k] for k in LATENT_FIELDS}
        assert float(row["growth_k"]) == round(growth_strain(row["age"]), 3)
    assert {r["long_hair"] for r in rows} == {"True", "False"} and len({r["yaw"] for r in rows}) > 100


def _old_format(root):
    """Rewrite ``root``'s manifest as an older cilf wrote it (no latent columns), with matching checksums."""
    import csv
    import hashlib
    import io
    import json

    from cilf.data.synthage import _OLD_FIELDS

    with (root / "manifest.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=_OLD_FIELDS, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    (root / "manifest.csv").write_bytes(buf.getvalue().encode())
    sums = json.loads((root / "checksums.json").read_text())
    sums["manifest"] = hashlib.sha256(buf.getvalue().encode()).hexdigest()
    (root / "checksums.json").write_text(json.dumps(sums, sort_keys=True) + "\n")


def test_an_older_manifest_gains_the_latent_columns_without_a_render(tmp_path, monkeypatch, capsys):
    from cilf.data import synthage

    spec = SynthAgeSpec(n_images=60, seed=3)
    root = synthage.generate(spec, tmp_path / "s", progress=False)
    fresh = (root / "manifest.csv").read_bytes()
    images = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (root / "images").iterdir()}
    _old_format(root)
    assert synthage._manifest_outdated(root)

    def no_render(args):
        raise AssertionError("an image was rendered")

    monkeypatch.setattr(synthage, "_render_to_file", no_render)
    synthage.generate(spec, root, progress=True)
    assert (root / "manifest.csv").read_bytes() == fresh  # exactly what a fresh set holds
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (root / "images").iterdir()} == images
    assert "added the latent columns (growth_k, yaw, long_hair), images kept" in capsys.readouterr().err
    assert synthage.damaged(root, spec) == (False, []) and not synthage._manifest_outdated(root)


def test_an_older_manifest_that_does_not_match_the_renderer_is_written_again(tmp_path, capsys):
    from cilf.data import synthage

    spec = SynthAgeSpec(n_images=20, seed=4)
    root = synthage.generate(spec, tmp_path / "s", progress=False)
    fresh = (root / "manifest.csv").read_bytes()
    _old_format(root)
    text = (root / "manifest.csv").read_text(encoding="utf-8").replace(",False,", ",True,", 1)
    (root / "manifest.csv").write_bytes(text.encode())
    import hashlib
    import json

    sums = json.loads((root / "checksums.json").read_text())
    sums["manifest"] = hashlib.sha256(text.encode()).hexdigest()
    (root / "checksums.json").write_text(json.dumps(sums))
    synthage.generate(spec, root, progress=False)
    assert (root / "manifest.csv").read_bytes() == fresh
    assert "does not match this renderer" in capsys.readouterr().err


def test_a_read_only_older_set_is_read_as_it_is(tmp_path, monkeypatch):
    from cilf.data import synthage

    spec = SynthAgeSpec(n_images=10, seed=5)
    root = synthage.generate(spec, tmp_path / "s", progress=False)
    _old_format(root)
    old = (root / "manifest.csv").read_bytes()
    monkeypatch.setattr(synthage.os, "access", lambda path, mode: False)  # as for a folder we may not write
    assert synthage.generate(spec, root, progress=False) == root
    assert (root / "manifest.csv").read_bytes() == old
    monkeypatch.undo()
    synthage.generate(spec, root, progress=False)
    assert not synthage._manifest_outdated(root)
