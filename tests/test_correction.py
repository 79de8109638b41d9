"""Correcting inverse age estimation: the iteration and the error ensemble."""

import pytest
import torch

from cilf.model.correction import ErrorEnsemble, inverse_correct


def _known(target, gain=1.0):
    return lambda x: (gain * (x - target), torch.zeros_like(x))


def test_exact_error_corrects_in_one_step():
    r = inverse_correct(torch.tensor([40.0, 20.0]), _known(torch.tensor([30.0, 25.0])), eps=0.5, eta=1.0)
    torch.testing.assert_close(r.x, torch.tensor([30.0, 25.0]))
    assert r.steps.tolist() == [1, 1] and r.accepted.tolist() == [False, False]


def test_geometric_convergence_stops_at_eps():
    # e(x) = 0.5 (x - 30): from 46 the error is 8, 4, 2, 1, 0.5 -> 4 steps, stop at |e| <= 0.5
    r = inverse_correct(torch.tensor([46.0]), _known(torch.tensor([30.0]), 0.5), eps=0.5, eta=1.0, max_steps=10)
    assert r.steps.item() == 4
    assert abs(r.error.item()) <= 0.5 and abs(r.x.item() - 31.0) < 1e-5
    assert r.trajectory[:, 0].tolist() == [46.0, 38.0, 34.0, 32.0, 31.0]


def test_accepted_estimates_do_not_move_and_cap_applies():
    r = inverse_correct(torch.tensor([30.2, 50.0]), _known(torch.tensor([30.0, 30.0]), 1.0), eps=0.5)
    assert r.accepted.tolist() == [True, False]
    assert r.x[0].item() == pytest.approx(30.2) and r.steps[0].item() == 0
    never = inverse_correct(torch.tensor([10.0]), lambda x: (torch.ones_like(x), torch.zeros_like(x)), max_steps=7)
    assert never.steps.item() == 7 and never.x.item() == pytest.approx(3.0)


def test_unrolled_correction_is_differentiable():
    y0 = torch.tensor([40.0], requires_grad=True)
    ens = ErrorEnsemble(8, members=3, hidden=16)
    h = torch.randn(1, 8, requires_grad=True)
    r = inverse_correct(y0, ens.error_fn(h, y0.detach()), eps=1e-6, max_steps=3)
    r.x.sum().backward()
    assert h.grad is not None and y0.grad is not None
    assert ens(h, y0, y0).shape == (1, 3)


def test_error_ensemble_learns_a_known_offset():
    torch.manual_seed(0)
    ens = ErrorEnsemble(4, members=2, hidden=32)
    opt = torch.optim.Adam(ens.parameters(), 1e-2)
    h = torch.randn(256, 4)
    y = 20 + 40 * torch.rand(256)
    y0 = y + 5  # a biased first estimate
    for _ in range(300):
        opt.zero_grad()
        ens.fit_loss(h, y0, y, candidate_range=10).backward()
        opt.step()
    r = inverse_correct(y0, ens.error_fn(h, y0), eps=0.5, max_steps=10)
    assert (r.x - y).abs().mean() < 0.5 * (y0 - y).abs().mean()
