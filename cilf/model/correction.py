"""Correcting inverse age estimation (docs/method.md, section 7).

An ensemble of M small MLPs E_m(h, x) predicts the signed error x - y of a candidate age x from
the fused features h. The evaluation E_P accepts the first estimate y0 when the ensemble mean
|e(y0)| <= eps; otherwise the inverse step ``x_{t+1} = x_t - eta * e(x_t)`` runs until
|e(x_t)| <= eps or T_max steps. The loop is plain tensor code, so the unrolled steps stay
differentiable (used by the ``correction_fit="joint"`` option, whose corrected age receives its own L1
loss). By default E is fitted after the age model on out-of-fold residuals (``cilf.app.crossfit``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cilf.model.config import CILFConfig

ErrorFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(kw_only=True)
class CorrectionResult:
    """Per image: y0 and x* (B), steps taken (B, long), accepted by E_P at once (B, bool),
    ensemble spread at x* (B), final predicted error (B), the predicted error and spread at y0
    (what E_P judged, B each) and the trajectory (T+1 x B)."""

    y0: torch.Tensor
    x: torch.Tensor
    steps: torch.Tensor
    accepted: torch.Tensor
    spread: torch.Tensor
    error: torch.Tensor
    error0: torch.Tensor
    spread0: torch.Tensor
    trajectory: torch.Tensor


def inverse_correct(
    y0: torch.Tensor, error_fn: ErrorFn, eps: float = 0.5, eta: float = 1.0, max_steps: int = 10
) -> CorrectionResult:
    """Iterate x <- x - eta * e(x) per sample until |e(x)| <= eps or ``max_steps``.

    ``error_fn(x)`` maps candidates (B) to (mean error (B), ensemble spread (B)).
    """
    x = y0
    err, spread = error_fn(x)
    error0, spread0 = err, spread
    accepted = err.abs() <= eps
    active = ~accepted
    steps = torch.zeros_like(y0, dtype=torch.long)
    trajectory = [x]
    for _ in range(max_steps):
        if not bool(active.any()):
            break
        x = torch.where(active, x - eta * err, x)
        steps = steps + active.long()
        new_err, new_spread = error_fn(x)
        err = torch.where(active, new_err, err)
        spread = torch.where(active, new_spread, spread)
        active = active & (err.abs() > eps)
        trajectory.append(x)
    return CorrectionResult(
        y0=y0,
        x=x,
        steps=steps,
        accepted=accepted,
        spread=spread,
        error=err,
        error0=error0,
        spread0=spread0,
        trajectory=torch.stack(trajectory),
    )


class ErrorEnsemble(nn.Module):
    """M MLPs: (h (B x D), y0 (B), x (B)) -> predicted signed errors in years (B x M).

    The members are evaluated together with batched matrix products (one ``baddbmm`` per layer), so
    the correction loop costs a few kernels per step whatever M is. ``candidate_range`` is R
    (CILFConfig.candidate_range): the outputs are scaled by R years, and ``fit_loss`` draws its
    training candidates within +-R of the true age. The buffer ``calibrated`` is set once E has been
    fitted after training on out-of-fold residuals (``cilf.app.crossfit``); checkpoints keep it. The buffer
    ``applied`` is cleared when the held-out gate (``CorrectionFit.correction_gate``) found that correcting did not
    lower the error: E_P still judges y0 (its report stays), but no step is taken.
    """

    def __init__(
        self,
        in_dim: int,
        *,
        members: int = 5,
        hidden: int = 128,
        age_range: tuple[float, float] = (0.0, 100.0),
        candidate_range: float = 10.0,
    ):
        super().__init__()
        self.center = (age_range[0] + age_range[1]) / 2
        self.half = (age_range[1] - age_range[0]) / 2
        self.candidate_range = candidate_range
        self.members = members
        self.register_buffer("calibrated", torch.tensor(False))
        self.register_buffer("applied", torch.tensor(True))  # False: the held-out gate found no gain (x* = y0)
        dims = [in_dim + 2, hidden, hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            bound = fan_in**-0.5  # nn.Linear's default range, drawn independently per member
            self.weights.append(nn.Parameter(torch.empty(members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, h: torch.Tensor, y0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z = torch.cat(
            [
                F.normalize(h, dim=-1),
                ((y0 - self.center) / self.half).unsqueeze(1),
                ((x - self.center) / self.half).unsqueeze(1),
            ],
            dim=1,
        )
        z = z.unsqueeze(0).expand(self.members, -1, -1)  # M x B x F
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.baddbmm(b, z, w)
            if i < last:
                z = F.gelu(z)
        return z.squeeze(-1).t() * self.candidate_range  # B x M

    def error_fn(self, h: torch.Tensor, y0: torch.Tensor) -> ErrorFn:
        """Bind features: the returned function maps x (B) to (mean error, spread) over members."""

        def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            e = self(h, y0, x)
            spread = e.std(dim=1) if e.shape[1] > 1 else torch.zeros_like(x)
            return e.mean(dim=1), spread

        return fn

    def fit_loss(self, h: torch.Tensor, y0: torch.Tensor, y: torch.Tensor, candidate_range: float) -> torch.Tensor:
        """Explicit error signal: candidates y + U(-R, R) (R = ``candidate_range``) and y0, targets x - y;
        smooth-L1 per member. h (B x D), y0 and y (B) -> scalar."""
        u = (torch.rand_like(y) * 2 - 1) * candidate_range
        x = torch.cat([y + u, y0])
        target = torch.cat([u, y0 - y])
        e = self(torch.cat([h, h]), torch.cat([y0, y0]), x)
        return F.smooth_l1_loss(e, target.unsqueeze(1).expand_as(e))


def correct_estimates(
    corrector: ErrorEnsemble, fused: torch.Tensor, y0: torch.Tensor, cfg: CILFConfig, *, applied: bool = True
) -> CorrectionResult:
    """The correction rule, in one place: E_P on features f (B x D) from y0 (B), the inverse correction loop
    (``cfg.eps``, ``cfg.eta``, ``cfg.max_steps``; none when not ``applied``: E_P judges, nothing moves), and
    x* clamped to the age range."""
    fn = corrector.error_fn(fused, y0.detach())
    result = inverse_correct(y0, fn, cfg.eps, cfg.eta, cfg.max_steps if applied else 0)
    result.x = result.x.clamp(cfg.age_min, cfg.age_max)
    return result
