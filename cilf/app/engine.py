"""The training engine: one optimisation step over the model and its losses, one epoch, and a whole fit on
cached features for a fixed budget (what benchmarks, ablations and cross-fitting's fold models use)."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch import nn
from tqdm import tqdm

from cilf.app.batches import Batches, FeatureBatches
from cilf.app.params import Budget
from cilf.app.schedule import NonFiniteLoss, build_optimizer
from cilf.model.cilf_model import CILF
from cilf.model.clip import BoundaryTokens
from cilf.model.config import CILFConfig
from cilf.persist.factory import create_model
from cilf.utils import seed_everything


class TrainStep(nn.Module):
    """model + losses in one forward, so DistributedDataParallel sees every parameter a step uses."""

    def __init__(self, model: CILF):
        super().__init__()
        self.model = model

    def forward(self, images, features, y) -> dict[str, torch.Tensor]:
        if isinstance(features, BoundaryTokens):  # cached frozen part: the trainable last blocks run here
            features = self.model.clip.encode_from_block(features.tokens, features.block)
        # a post-hoc fitted correction has no part in the age model's training: not run here
        correct = not self.model.cfg.posthoc_correction
        return self.model.losses(self.model(images=images, features=features, correct=correct), y)


def fit_age_model(
    cfg: CILFConfig,
    features,
    ages: torch.Tensor,
    budget: Budget,
    *,
    backbone_lr_scale: float = 0.2,
    text_from: CILF | None = None,
) -> CILF:
    """Train CILF-CIAE's age model on cached features of n images for ``budget`` (no validation, no checkpoints,
    no post-hoc error model: :func:`cilf.app.crossfit.fit_features` adds that); return it in eval mode.

    ``features``: ImageFeatures of a frozen tower, or BoundaryTokens (n x (1 + N) x W) entering block
    ``cfg``'s boundary when ``cfg.unfreeze_last_blocks`` > 0 (those blocks then train, at
    ``lr * backbone_lr_scale``). The same optimiser, schedule and seeding as :func:`cilf.app.train.train`.
    ``text_from``: a model whose encoded frozen prompts this one reuses (same text tower and prompts).
    """
    seed_everything(budget.seed)
    model = create_model(cfg).to(budget.device)
    if text_from is not None:
        model.clip.adopt_text_cache(text_from.clip)
    if isinstance(features, BoundaryTokens) and features.block != model.clip.boundary:
        raise ValueError(
            f"boundary tokens enter image block {features.block}, but the model's first trainable "
            f"block is {model.clip.boundary} (unfreeze_last_blocks={cfg.unfreeze_last_blocks})"
        )
    batches = FeatureBatches(features, ages, budget.batch_size, device=budget.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = build_optimizer(
        model,
        lr=budget.lr,
        weight_decay=budget.weight_decay,
        warmup_steps=budget.warmup_steps,
        total_steps=budget.epochs * len(batches),
        backbone_lr_scale=backbone_lr_scale,
    )
    for epoch in range(budget.epochs):
        train_one_epoch(model, batches, opt, sched, params, budget.seed, epoch)
    return model.eval()


def train_one_epoch(
    model: CILF,
    batches: Batches,
    opt,
    sched,
    params,
    seed: int,
    epoch: int,
    desc: str = "epoch",
    progress: bool = False,
    step: nn.Module | None = None,
    amp_dtype: torch.dtype | None = None,
) -> tuple[dict[str, float], int]:
    """One pass over ``batches`` (shuffled by seed and epoch); returns summed losses and steps.

    ``step``: the module that maps (images, features, ages) to losses, DDP-wrapped under torchrun
    (default: ``TrainStep(model)``); ``amp_dtype``: autocast dtype (None = float32). A loss that is
    not finite on any rank raises NonFiniteLoss before the optimiser step (the weights stay finite).
    """
    model.train()
    step = step if step is not None else TrainStep(model)
    ctx = batches.ctx
    gen = torch.Generator().manual_seed(seed * 100003 + epoch)  # the same shuffle on every rank
    torch.manual_seed(seed * 100019 + epoch + 1_000_003 * ctx.rank)  # candidate noise in the error model
    sums: dict[str, float] = {}
    steps = 0
    device_type = torch.device(batches.device).type
    bar = tqdm(batches.epoch(gen), total=len(batches), desc=desc, disable=not progress or not ctx.is_main, leave=False)
    for feats, images, y in bar:
        # only an image batch can be unusable (every image unreadable): then all ranks skip the step together
        if not batches.cached and not ctx.all_agree(y is not None):
            continue
        with torch.autocast(device_type, dtype=amp_dtype) if amp_dtype is not None else nullcontext():
            losses = step(images, feats, y)
        total = float(losses["total"].detach())
        if not ctx.all_agree(math.isfinite(total)):
            raise NonFiniteLoss(f"the training loss became {total} in epoch {epoch + 1}, step {steps + 1}")
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        if sched is not None:
            sched.step()
        steps += 1
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        bar.set_postfix(loss=f"{sums['total'] / steps:.3f}")
    return ctx.mean(sums), steps


def amp_dtype_for(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a precision setting on a device (None: plain float32)."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None
