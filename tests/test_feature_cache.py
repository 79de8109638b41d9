"""The feature cache: hits, stale entries and corrupt files."""
import pytest
import torch

import layouts


@pytest.fixture(scope="module")
def encoder():
    from cilf.model.cilf_model import CILF
    from cilf.model.config import default_config

    torch.manual_seed(0)
    return CILF(default_config()).eval()


def test_feature_cache_hits_detects_stale_and_corrupt(encoder, tmp_path):
    from cilf.data import open_dataset
    from cilf.run.feature_cache import cached_features

    root = layouts.agedb(tmp_path / "agedb")
    ds = open_dataset("agedb", root, transform=encoder.preprocess)
    cold = cached_features(encoder, ds, tmp_path / "cache", progress=False)
    assert not cold.hit and len(cold.rows) == len(ds) - 1 and len(cold.skipped) == 1  # the zero-byte file
    warm = cached_features(encoder, ds, tmp_path / "cache", progress=False)
    assert warm.hit and warm.skipped == cold.skipped
    assert torch.equal(warm.features.tokens, cold.features.tokens)  # cold run also reads back from disk
    with torch.no_grad():  # and they are the encoder's own features (stored as float16)
        direct = encoder.encode_image(torch.stack([ds[r][0] for r in cold.rows[:3]]))
    torch.testing.assert_close(cold.features.pooled[:3], direct.pooled, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(cold.features.tokens[:3], direct.tokens, atol=2e-3, rtol=2e-3)
    # corrupt entry: detected, rebuilt with the same numbers
    data = bytearray(cold.path.read_bytes())
    data[-10] ^= 0xFF
    cold.path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt"):
        again = cached_features(encoder, ds, tmp_path / "cache", progress=False)
    assert not again.hit and torch.equal(again.features.pooled, cold.features.pooled)
    # stale: an image changes on disk -> another key, encoded afresh
    layouts.write_image(tmp_path / "agedb" / "AgeDB" / "0_Person0_18_m.jpg", 80, 12345)
    ds2 = open_dataset("agedb", root, transform=encoder.preprocess)
    changed = cached_features(encoder, ds2, tmp_path / "cache", progress=False)
    assert not changed.hit and changed.path != cold.path
    row = next(i for i, r in enumerate(changed.rows) if ds2.rows[r]["path"].endswith("0_Person0_18_m.jpg"))
    assert not torch.equal(changed.features.pooled[row], cold.features.pooled[row])
