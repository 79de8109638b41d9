import pytest
import torch

from cilf import metrics
from cilf.model.correction import ErrorEnsemble, inverse_correct
from cilf.model.losses import age_loss, contrastive_loss, gaussian_label_distribution


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


def test_contrastive_loss_is_lowest_for_aligned_pairs():
    torch.manual_seed(0)
    img = torch.randn(16, 32)
    y = torch.arange(16.0) * 5  # ages far apart: each sample's only positive is itself
    scale = torch.tensor(2.0)
    aligned = contrastive_loss(img, img.clone(), y, scale)
    shuffled = contrastive_loss(img, img[torch.randperm(16)], y, scale)
    noisy = contrastive_loss(img, img + 0.5 * torch.randn_like(img), y, scale)
    assert aligned < noisy < shuffled


def test_contrastive_soft_positives_within_delta():
    img = torch.eye(4)
    y = torch.tensor([30.0, 31.0, 60.0, 61.0])
    # swapping texts within the +-2 year groups costs little; across groups a lot
    within = contrastive_loss(img, img[[1, 0, 3, 2]], y, torch.tensor(3.0), delta=2)
    across = contrastive_loss(img, img[[2, 3, 0, 1]], y, torch.tensor(3.0), delta=2)
    assert within < across


def test_label_distribution_and_age_loss():
    ages = torch.arange(0, 101.0)
    q = gaussian_label_distribution(torch.tensor([30.0, 70.5]), ages, 2.0)
    torch.testing.assert_close(q.sum(1), torch.ones(2))
    assert q[0].argmax().item() == 30
    logits_right = torch.log(q[:1] + 1e-9)
    logits_wrong = torch.roll(logits_right, 20, dims=1)
    y = torch.tensor([30.0])
    assert age_loss(logits_right, y, y, ages) < age_loss(logits_wrong, y + 20, y, ages)


def test_metrics_against_hand_computed_values():
    t = [20, 30, 40, 50]
    p = [21, 35, 40, 61]  # abs errors 1, 5, 0, 11
    assert metrics.mae(t, p) == pytest.approx(17 / 4)
    assert metrics.cumulative_score(t, p, 0) == pytest.approx(25.0)
    assert metrics.cumulative_score(t, p, 1) == pytest.approx(50.0)
    assert metrics.cumulative_score(t, p, 5) == pytest.approx(75.0)
    curve = metrics.cs_curve(t, p)
    assert list(curve) == list(range(11)) and curve[10] == pytest.approx(75.0)
    assert metrics.group_accuracy([0, 3, 5, 7], [0, 4, 2, 7]) == (50.0, 75.0)
    assert metrics.age_group(1) == 0 and metrics.age_group(35) == 4 and metrics.age_group(90) == 7
    import math

    assert metrics.epsilon_error([10, 20], [10, 22], [1, 2]) == pytest.approx((1 - math.exp(-0.5)) / 2)
    assert metrics.mean_std([1.0, 2.0, 3.0]) == (2.0, pytest.approx(1.0))
    with pytest.raises(ValueError):
        metrics.mae([1, 2], [1])
