"""Context-aware prompting and image-text fusion (docs/method.md, section 4).

Visual tokens P and the K score maps M are each projected to width C and summed into a
B x H x W x C grid, which the FourierFormer turns into context features F. Then
    c_{b,k}  = sum_n softmax_n(M_{b,n,k} / tau) F_{b,n}        (B x K x C, O(N K C))
    T'_{b,k} = T_k + gamma * Linear(c_{b,k})                    (context-prompted text)
    f_b      = v_b + Linear(mean_n F_{b,n})                     (fused image embedding)
The image-side Linear starts at zero, so at initialisation f = v and the model begins from CLIP. With
``image_fusion=False``, f = v throughout: context prompting is then the only path from F to the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cilf.model.config import CILFConfig
from cilf.model.fourier import FourierFormer


@dataclass
class FusionOutput:
    context: torch.Tensor  # F: B x H x W x C
    text: torch.Tensor  # T': B x K x D
    fused: torch.Tensor  # f: B x D


class ContextFusion(nn.Module):
    def __init__(self, cfg: CILFConfig, embed_dim: int, grid: tuple[int, int]):
        super().__init__()
        c, k = cfg.width, cfg.num_classes
        self.tau = cfg.tau
        self.token_proj = nn.Linear(embed_dim, c)
        self.map_proj = nn.Linear(k, c)
        self.former = FourierFormer(
            c, depth=cfg.depth, mixer=cfg.mixer, grid=grid, mlp_ratio=cfg.mlp_ratio, heads=cfg.heads, dwconv=cfg.dwconv
        )
        self.context_prompting = cfg.context_prompting
        if cfg.context_prompting:
            self.ctx_proj = nn.Linear(c, embed_dim)
            self.gamma = nn.Parameter(torch.tensor(float(cfg.gamma_init)))
        self.img_proj = nn.Linear(c, embed_dim) if cfg.image_fusion else None
        if self.img_proj is not None:
            nn.init.zeros_(self.img_proj.weight)
            nn.init.zeros_(self.img_proj.bias)

    def input_grid(self, tokens: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """P (B x N x D) and M (B x K x H x W) -> FourierFormer input B x H x W x C."""
        b, _, h, w = maps.shape
        return (self.token_proj(tokens) + self.map_proj(maps.flatten(2).transpose(1, 2))).reshape(b, h, w, -1)

    def forward(
        self, pooled: torch.Tensor, tokens: torch.Tensor, maps: torch.Tensor, text: torch.Tensor
    ) -> FusionOutput:
        """v (B x D), P (B x N x D), M (B x K x H x W), T (K x D) -> FusionOutput."""
        b, k, h, w = maps.shape
        maps_flat = maps.flatten(2)  # B x K x N
        context = self.former(self.input_grid(tokens, maps))  # B x H x W x C
        ctx_flat = context.reshape(b, h * w, -1)
        if self.context_prompting:
            weights = torch.softmax(maps_flat / self.tau, dim=-1)  # B x K x N
            per_class = weights @ ctx_flat  # B x K x C
            text_b = text.unsqueeze(0) + self.gamma * self.ctx_proj(per_class)
        else:
            text_b = text.unsqueeze(0).expand(b, -1, -1)
        fused = pooled + self.img_proj(ctx_flat.mean(dim=1)) if self.img_proj is not None else pooled
        return FusionOutput(context, text_b, fused)
