"""Peer age estimators trained on frozen features."""
import numpy as np
import pytest
import torch


@pytest.mark.parametrize("peer", ["regression", "classification", "dex", "coral", "mean_variance", "mean_residue",
                                  "drf", "linear_probe"])
def test_each_peer_learns_age_from_features(peer):
    from cilf.run.peers import PeerConfig, fit_peer

    g = torch.Generator().manual_seed(0)
    y = torch.rand(600, generator=g) * 70 + 10
    w = torch.randn(16, generator=g)
    x = y[:, None] / 40 * w[None] + 0.05 * torch.randn(600, 16, generator=g)
    pred = fit_peer(peer, x[:500], y[:500], x_test=x[500:], cfg=PeerConfig(epochs=40))
    err = np.abs(pred - y[500:].numpy()).mean()
    baseline = np.abs(y[500:].numpy() - float(y[:500].mean())).mean()
    assert err < 0.35 * baseline, (peer, err, baseline)
