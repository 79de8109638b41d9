import os

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
