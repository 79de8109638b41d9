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
