"""The CLIP retrieval report."""

import pytest
import torch

from cilf.app.clip_report import recall_at_k


def test_recall_at_k_hand_computed():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.0], [0.1, 0.2, 0.3]])
    # row 0: match ranked 1st; row 1: 2nd; row 2: 1st
    assert recall_at_k(sim, ks=(1, 2)) == {"R@1": pytest.approx(200 / 3), "R@2": pytest.approx(100.0)}
