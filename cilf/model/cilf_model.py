"""The CILF-CIAE model: CLIP encoders -> pixel-text similarity -> FourierFormer fusion and
context prompting -> age head -> correcting inverse age estimation (docs/method.md, sections 1-8)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cilf.model.clip import CLIPAdapter, ImageFeatures
from cilf.model.config import CILFConfig
from cilf.model.correction import CorrectionResult, ErrorEnsemble, correct_estimates
from cilf.model.fusion import ContextFusion
from cilf.model.heads import AgeHead, age_index
from cilf.model.losses import age_loss, contrastive_loss
from cilf.model.similarity import dense_score_maps, global_log_scores


@dataclass(kw_only=True)
class CILFOutput:
    """Everything one forward pass produces (B images, K classes, H x W grid, D joint dim)."""

    scores: torch.Tensor  # S: B x K global pixel-text similarity scores
    maps: torch.Tensor  # M: B x K x H x W dense score maps (cosines)
    logits: torch.Tensor  # B x K age-head logits
    probs: torch.Tensor  # B x K
    y0: torch.Tensor  # B first estimate
    age: torch.Tensor  # B final estimate (x* with correction, else y0)
    fused: torch.Tensor  # f: B x D
    text: torch.Tensor  # T': B x K x D
    correction: CorrectionResult | None


def error_ensemble(cfg: CILFConfig, dim: int) -> ErrorEnsemble:
    """A new (unfitted) error model E of ``cfg`` over fused features of width ``dim``."""
    return ErrorEnsemble(
        dim,
        members=cfg.ensemble_size,
        hidden=cfg.error_hidden,
        age_range=(cfg.age_min, cfg.age_max),
        candidate_range=cfg.candidate_range,
    )


class CILF(nn.Module):
    """The whole model around its CLIP towers (``clip``: a :class:`CLIPAdapter` built for ``cfg``; build both
    with :func:`cilf.create_model`, which loads the CLIP weights)."""

    def __init__(self, cfg: CILFConfig, clip: CLIPAdapter):
        super().__init__()
        self.cfg = cfg
        self.clip = clip
        dim = self.clip.embed_dim
        self.register_buffer("ages", torch.tensor(cfg.ages, dtype=torch.float32), persistent=False)
        self.fusion = ContextFusion(cfg, dim, self.clip.grid)
        self.head = AgeHead(cfg.head_tau, cfg.similarity_prior, cfg.head_gain_rate)
        self.contrastive_scale = (
            nn.Parameter(torch.tensor(math.log(1.0 / cfg.contrastive_tau))) if cfg.contrastive else None
        )
        self.corrector = error_ensemble(cfg, dim) if cfg.correction else None

    @property
    def preprocess(self):
        """The CLIP eval transform: PIL image -> 3 x S x S tensor."""
        return self.clip.preprocess

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        return self.clip.encode_image(images)

    def forward(
        self, images: torch.Tensor | None = None, features: ImageFeatures | None = None, correct: bool = True
    ) -> CILFOutput:
        """images (B x 3 x S x S) or precomputed ``features`` -> CILFOutput (``correct``: run the correction)."""
        if features is None:
            if images is None:
                raise ValueError("pass images or features")
            features = self.encode_image(images)
        text = self.clip.class_text_features()  # K x D
        log_scores = global_log_scores(features.pooled, text, self.cfg.tau)
        scores = log_scores.exp()
        maps = dense_score_maps(features.tokens, text, features.grid)
        fusion = self.fusion(features.pooled, features.tokens, maps, text)
        prior = self.similarity_prior(log_scores) if self.cfg.similarity_prior else None
        logits, probs, y0 = self.head(fusion.fused, fusion.text, self.ages, prior)
        correction = None
        age = y0
        if self.corrector is not None and correct:
            correction = self.correct(fusion.fused, y0)
            age = correction.x
        return CILFOutput(
            scores=scores,
            maps=maps,
            logits=logits,
            probs=probs,
            y0=y0,
            age=age,
            fused=fusion.fused,
            text=fusion.text,
            correction=correction,
        )

    def similarity_prior(self, log_scores: torch.Tensor) -> torch.Tensor:
        """log S (B x K) -> prior logits tau * s * log S (B x K), s = CLIP's logit scale: their softmax is
        zero-shot CLIP's softmax(s cos(v, T)) (docs/method.md, section 5)."""
        return log_scores * (self.cfg.tau * self.clip.model.logit_scale.exp().detach())

    def correct(self, fused: torch.Tensor, y0: torch.Tensor) -> CorrectionResult:
        """Run E_P and the inverse correction from y0 (B) with features f (B x D)."""
        return correct_estimates(self.corrector, fused, y0, self.cfg, applied=bool(self.corrector.applied))

    def losses(self, out: CILFOutput, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Total loss L = L_age + l_con L_con (+ l_err L_err + l_corr L_corr with ``correction_fit="joint"``)
        and its parts. By default E is fitted after training (``cilf.app.crossfit``), so the age model's loss
        is the same with and without the correction."""
        cfg = self.cfg
        y = y.to(out.y0.dtype)
        parts = {"age": age_loss(out.logits, out.y0, y, self.ages, cfg.label_sigma, cfg.l1_weight)}
        total = parts["age"]
        if self.contrastive_scale is not None and y.shape[0] > 1:
            idx = age_index(y, cfg.age_min, cfg.num_classes)
            text_y = out.text[torch.arange(y.shape[0], device=y.device), idx]
            parts["con"] = contrastive_loss(out.fused, text_y, y, self.contrastive_scale, cfg.contrastive_delta)
            total = total + cfg.w_con * parts["con"]
        if self.corrector is not None and not cfg.posthoc_correction:
            parts["err"] = self.corrector.fit_loss(out.fused.detach(), out.y0.detach(), y, cfg.candidate_range)
            total = total + cfg.w_err * parts["err"]
            if out.correction is not None:
                parts["corr"] = (out.correction.x - y).abs().mean()
                total = total + cfg.w_corr * parts["corr"]
        parts["total"] = total
        return parts

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights a checkpoint must hold: everything except frozen CLIP weights that can be
        reloaded from their source (bundled file, local path, tag). Random-init CLIP is saved."""
        keep_clip = self.cfg.pretrained is None
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        return {
            k: v.detach().clone()
            for k, v in self.state_dict().items()
            if not k.startswith("clip.model.") or keep_clip or k in trainable
        }
