import os
import subprocess

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be fetched: a missing weight must fail at once

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """A small SynthAge set shared by the tests (1,200 images, seed 0)."""
    from cilf.data.synthage import SynthAgeSpec, generate

    return generate(SynthAgeSpec(n_images=1200, seed=0), tmp_path_factory.mktemp("synthage"), progress=False)


@pytest.fixture(scope="session")
def small_cfg():
    from cilf import CILFConfig

    return CILFConfig(pretrained=None, width=32, depth=1, ensemble_size=3, error_hidden=32)


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
