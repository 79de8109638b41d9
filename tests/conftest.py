"""Fixtures shared by several test files: a small SynthAge set, a small model config, awkward image
files, the official dataset layouts and one small trained run (train, checkpoint and predict use it)."""

import io
import os
import subprocess

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be fetched: a missing weight must fail at once

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A small SynthAge set shared by the tests (1,200 images, seed 0)."""
    from cilf.data.synthage import SynthAgeSpec, generate

    return generate(SynthAgeSpec(n_images=1200, seed=0), tmp_path_factory.mktemp("synthage"), progress=False)


@pytest.fixture(scope="session")
def small_cfg():
    from cilf import CILFConfig

    # similarity_prior off: with a random-init CLIP the zero-shot prior is noise that training must first unlearn
    return CILFConfig(pretrained=None, width=32, depth=1, ensemble_size=3, error_hidden=32, similarity_prior=False)


# 3 cross-fitting folds instead of the default 5 wherever the tests fit the correction: the same code path, with 3
# fold models of 2/3 of the training split instead of 5 of 4/5 (measured: a 10-epoch train() spends 25 of its 44 s
# on the 5 fold models)
SMALL_FOLDS = 3


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs where mounting is permitted (root on Linux), else skip (patched tests cover it)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    except OSError:  # no mount command
        r = None
    if r is None or r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here; the disk-full path is covered by a patched writer")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.fixture(scope="module")
def model(small_cfg):
    """A random-init CILF with ``small_cfg`` (seed 0)."""
    torch.manual_seed(0)
    import cilf

    return cilf.create_model(small_cfg)


# -- awkward image files ------------------------------------------------------------------------
@pytest.fixture
def bad_files(tmp_path):
    """The six awkward inputs of the issue, plus one good face: {key: path} under tmp_path."""
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    files = {}
    files["good"] = tmp_path / "good.jpg"
    rgb.save(files["good"])
    files["empty"] = tmp_path / "empty.jpg"
    files["empty"].write_bytes(b"")
    buf = io.BytesIO()
    rgb.save(buf, "JPEG")
    files["truncated"] = tmp_path / "truncated.jpg"
    files["truncated"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    files["text"] = tmp_path / "notes.jpg"
    files["text"].write_text("this is not an image\n")
    files["cmyk"] = tmp_path / "cmyk.jpg"
    rgb.convert("CMYK").save(files["cmyk"], "JPEG")
    files["png16"] = tmp_path / "deep.png"
    Image.fromarray((np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)).save(files["png16"])
    files["rgba"] = tmp_path / "alpha.png"
    rgb.convert("RGBA").save(files["rgba"])
    return files


# -- official dataset layouts -------------------------------------------------------------------
@pytest.fixture(scope="session")
def trees(tmp_path_factory):
    """Every official layout of ``tests/layouts.py``, built once: {name: root}."""
    import layouts

    base = tmp_path_factory.mktemp("layouts")
    return {name: build(base / name) for name, build in layouts.BUILDERS.items()}


# -- one small trained run ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def synth_data(synth_root):
    """synth_root, reachable as SynthAge(n_images=1200, seed=0) when CILF_DATA is its parent."""
    from cilf.data.synthage import SynthAgeSpec

    link = synth_root.parent / f"synthage-{SynthAgeSpec(n_images=1200, seed=0).key()}"
    if not link.exists():
        link.symlink_to(synth_root)
    return synth_root


@pytest.fixture
def data_env(synth_data, monkeypatch):
    """For one test: CILF_DATA points at the shared SynthAge set; returns its root."""
    monkeypatch.setenv("CILF_DATA", str(synth_data.parent))
    return synth_data


@pytest.fixture(scope="session")
def train_cfg():
    """TrainConfig factory for the shared SynthAge set: train_cfg(out, **changes)."""
    from cilf.app.params import TrainConfig

    def make(out, **kw):
        return TrainConfig(
            out=str(out),
            epochs=kw.pop("epochs", 25),
            n_images=1200,
            batch_size=64,
            warmup_steps=10,
            progress=False,
            crossfit_folds=kw.pop("crossfit_folds", SMALL_FOLDS),
            **kw,
        )

    return make


@pytest.fixture(scope="session")
def trained(synth_data, small_cfg, train_cfg, tmp_path_factory):
    """One 25-epoch run of ``small_cfg`` on the shared SynthAge set: (run folder, report)."""
    from cilf.app.train import train

    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CILF_DATA", str(synth_data.parent))
        return out, train(small_cfg, train_cfg(out))
