"""The feature cache: hits, stale entries and corrupt files."""

import layouts
import pytest
import torch

from cilf.persist.factory import create_model


@pytest.fixture(scope="module")
def encoder():
    from cilf.model.config import default_config

    torch.manual_seed(0)
    return create_model(default_config()).eval()


def test_feature_cache_hits_detects_stale_and_corrupt(encoder, tmp_path):
    from cilf.app.feature_cache import cached_features
    from cilf.data import open_dataset

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


def test_boundary_cache_is_keyed_by_k_and_the_frozen_weights_only(tmp_path):
    """A boundary entry holds the tokens entering block L - k: another k is another entry; changing a
    trainable block's weights keeps the key, changing a frozen one gives a new key."""
    from cilf.app.feature_cache import boundary_key, cached_boundary, encoder_key
    from cilf.data import open_dataset
    from cilf.model.config import default_config

    torch.manual_seed(0)
    k1, k2 = (create_model(default_config().replace(unfreeze_last_blocks=k)).eval() for k in (1, 2))
    root = layouts.agedb(tmp_path / "agedb")
    ds = open_dataset("agedb", root, transform=k1.preprocess)
    one = cached_boundary(k1, ds, tmp_path / "cache", progress=False)
    two = cached_boundary(k2, ds, tmp_path / "cache", progress=False)
    assert not one.hit and not two.hit and one.path.parent != two.path.parent
    assert (one.features.block, two.features.block) == (3, 2) and one.rows == two.rows
    assert len(one.rows) == len(ds) - 1 and len(one.skipped) == 1  # the zero-byte file, counted
    warm = cached_boundary(k1, ds, tmp_path / "cache", progress=False)
    assert warm.hit and torch.equal(warm.features.tokens, one.features.tokens)
    with torch.no_grad():  # the tokens entering block 3, stored as float16; finished, they are encode_image's
        x = torch.stack([ds[r][0] for r in one.rows[:3]])
        torch.testing.assert_close(one.features.tokens[:3].float(), k1.clip.encode_to_block(x), atol=5e-3, rtol=2e-3)
        finished = k1.clip.encode_from_block(one.features.tokens[:3].float(), 3)
        torch.testing.assert_close(finished.pooled, k1.encode_image(x).pooled, atol=5e-3, rtol=5e-3)
    key1, full_key = boundary_key(k1), encoder_key(k1)
    with torch.no_grad():  # training the last block (and ln_post/proj) does not touch the frozen part
        k1.clip.model.visual.transformer.resblocks[3].mlp.c_fc.weight.add_(1.0)
        k1.clip.model.visual.ln_post.weight.add_(1.0)
    assert boundary_key(k1) == key1 and encoder_key(k1) != full_key
    with torch.no_grad():
        k1.clip.model.visual.transformer.resblocks[2].mlp.c_fc.weight.add_(1.0)
    assert boundary_key(k1) != key1
    assert boundary_key(k2) != key1
    assert boundary_key(k1, 2) == boundary_key(k2)  # at boundary 2 the changed block 2 is not part of the key
