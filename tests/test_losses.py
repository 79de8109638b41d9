"""Losses: contrastive image-text loss with soft positives, label distribution and the age loss."""

import torch

from cilf.model.losses import age_loss, contrastive_loss, gaussian_label_distribution


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
