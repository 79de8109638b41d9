"""Peer age estimators trained on frozen features."""

import numpy as np
import pytest
import torch


@pytest.mark.parametrize(
    "peer", ["regression", "classification", "dex", "coral", "mean_variance", "mean_residue", "drf", "linear_probe"]
)
def test_each_peer_learns_age_from_features(peer):
    from cilf.bench.peers import PeerConfig, fit_peer

    g = torch.Generator().manual_seed(0)
    y = torch.rand(600, generator=g) * 70 + 10
    w = torch.randn(16, generator=g)
    x = y[:, None] / 40 * w[None] + 0.05 * torch.randn(600, 16, generator=g)
    pred = fit_peer(peer, x[:500], y[:500], x_test=x[500:], cfg=PeerConfig(epochs=40))
    err = np.abs(pred - y[500:].numpy()).mean()
    baseline = np.abs(y[500:].numpy() - float(y[:500].mean())).mean()
    assert err < 0.35 * baseline, (peer, err, baseline)


@pytest.fixture
def tiny_resnet_peer():
    """The pixel ResNet-18 at 32 px, registered like any peer (removed afterwards)."""
    from cilf.bench.peer_resnet import ResNetPeerConfig, resnet_peer
    from cilf.bench.peers import PEERS, register_peer

    register_peer("resnet18_32px", "ResNet-18 on 32 px pixels")(resnet_peer(ResNetPeerConfig(size=32)))
    yield PEERS["resnet18_32px"]
    PEERS.pop("resnet18_32px")


def test_the_pixel_resnet_trains_through_the_registry_and_is_deterministic(synth_root, tiny_resnet_peer, tmp_path):
    """40 SynthAge images (30 train, 10 test) plus one unreadable test file, 1 epoch at 32 px."""
    from cilf.bench.peers import PEERS, PeerConfig, PeerInputs
    from cilf.data.open import open_dataset

    assert PEERS["resnet18"].title == "ResNet-18 on pixels (no CLIP)" and PEERS["resnet18"].key["size"] == 64
    rows = open_dataset("synthage", synth_root).rows[:40]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    test_paths = [r["path"] for r in rows[30:]] + [str(bad)]

    def run(seed):
        inp = PeerInputs(
            torch.zeros(30, 1),
            torch.tensor([float(r["age"]) for r in rows[:30]]),
            torch.zeros(11, 1),
            seed=seed,
            cfg=PeerConfig(epochs=1, batch_size=8, lr=2e-3),
            test_paths=test_paths,
            train_rows=rows[:30],
        )
        return tiny_resnet_peer.fit_and_predict(inp)

    pred, extras = run(0)
    assert pred.shape == (11,) and np.isfinite(pred[:10]).all() and np.isnan(pred[10])  # counted, not raised
    assert ((pred[:10] >= 0) & (pred[:10] <= 100)).all()
    assert extras["resnet18"] == {"size": 32, "unreadable_train": 0, "unreadable_test": 1}
    assert np.array_equal(run(0)[0], pred, equal_nan=True)  # same seed, same ages
    assert not np.allclose(run(1)[0][:10], pred[:10])
