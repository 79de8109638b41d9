"""FourierFormer (docs/method.md, section 3): a Transformer whose attention is a Fourier prior module.

Each block on a B x H x W x C grid:
    x = x + mixer(LN(x))        spatial interaction
    x = x + ChannelMLP(LN(x))   channel evolution
The Fourier mixer (FPE) is GFNet's global filter (rfft2 -> learnable complex filter -> irfft2,
O(N log N)) plus a depth-wise 3x3 convolution branch. ``attention`` (explicit softmax(QK^T)V,
O(N^2) memory, as CLIP's layers form it in training), ``sdpa`` (PyTorch's fused kernel) and
``none`` (no token mixing) share the interface for ablations and the complexity comparison.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GlobalFilter(nn.Module):
    """x (B x H x W x C) -> irfft2(rfft2(x) * K), K a learnable complex C x H x (W//2+1) filter.

    The FFT runs in float32 whatever the input dtype. When the grid differs from the one the
    filter was built for, the filter is bilinearly interpolated in the frequency domain.
    """

    def __init__(self, dim: int, grid: tuple[int, int], init_std: float = 0.02):
        super().__init__()
        h, w = grid
        self.grid = (h, w)
        weight = torch.zeros(dim, h, w // 2 + 1, 2)
        weight[..., 0] = 1.0  # start near the identity filter
        weight += torch.randn_like(weight) * init_std
        self.weight = nn.Parameter(weight)

    def filter_for(self, h: int, w: int) -> torch.Tensor:
        """The complex filter (C x h x w//2+1) for grid (h, w)."""
        weight = self.weight
        if (h, w // 2 + 1) != tuple(weight.shape[1:3]):
            c = weight.shape[0]
            planes = weight.permute(0, 3, 1, 2).reshape(1, c * 2, *weight.shape[1:3])
            planes = F.interpolate(planes, size=(h, w // 2 + 1), mode="bilinear", align_corners=True)
            weight = planes.reshape(c, 2, h, w // 2 + 1).permute(0, 2, 3, 1)
        return torch.view_as_complex(weight.float().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1], x.shape[2]
        spec = torch.fft.rfft2(x.float().permute(0, 3, 1, 2), dim=(-2, -1), norm="ortho")  # B x C x H x W//2+1
        spec = spec * self.filter_for(h, w)  # the global filter: one complex weight per channel and frequency
        return torch.fft.irfft2(spec, s=(h, w), dim=(-2, -1), norm="ortho").permute(0, 2, 3, 1).to(x.dtype)


class FourierMixer(nn.Module):
    """FPE: global filter (spatial interaction) + depth-wise 3x3 conv branch. B x H x W x C in/out."""

    def __init__(self, dim: int, grid: tuple[int, int] = (8, 8), dwconv: bool = True, **_):
        super().__init__()
        self.filter = GlobalFilter(dim, grid)
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim) if dwconv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.filter(x)
        if self.dwconv is not None:
            out = out + self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return out


class AttentionMixer(nn.Module):
    """Multi-head self-attention over the H*W tokens, forming softmax(QK^T / sqrt(d)) V explicitly."""

    fused = False

    def __init__(self, dim: int, heads: int = 4, **_):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        q, k, v = (
            self.qkv(x.reshape(b, h * w, c)).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        )
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
            out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class SDPAMixer(AttentionMixer):
    """The same attention through PyTorch's fused ``scaled_dot_product_attention``."""

    fused = True


MIXERS: dict[str, type[nn.Module] | None] = {
    "fourier": FourierMixer,
    "attention": AttentionMixer,
    "sdpa": SDPAMixer,
    "none": None,
}
# the one place for their names in tables and figures
MIXER_LABELS = {
    "fourier": "FourierFormer (FFT)",
    "attention": "attention, softmax(QK^T)V",
    "sdpa": "attention, fused SDPA",
    "none": "MLP only (no token mixing)",
}


class ChannelMLP(nn.Module):
    def __init__(self, dim: int, ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class FourierFormerBlock(nn.Module):
    """x (B x H x W x C) -> x + mixer(LN x), then + ChannelMLP(LN x)."""

    def __init__(
        self,
        dim: int,
        mixer: str = "fourier",
        grid: tuple[int, int] = (8, 8),
        *,
        mlp_ratio: float = 4.0,
        heads: int = 4,
        dwconv: bool = True,
    ):
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {sorted(MIXERS)}, got {mixer!r}")
        cls = MIXERS[mixer]
        self.norm1 = nn.LayerNorm(dim) if cls is not None else None
        self.mixer = cls(dim, grid=grid, heads=heads, dwconv=dwconv) if cls is not None else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ChannelMLP(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mixer is not None:
            x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class FourierFormer(nn.Module):
    """A stack of ``depth`` blocks. Input and output: B x H x W x C (C = ``dim``)."""

    def __init__(
        self,
        dim: int,
        *,
        depth: int = 2,
        mixer: str = "fourier",
        grid: tuple[int, int] = (8, 8),
        mlp_ratio: float = 4.0,
        heads: int = 4,
        dwconv: bool = True,
    ):
        super().__init__()
        self.mixer = mixer
        self.blocks = nn.ModuleList(
            FourierFormerBlock(dim, mixer, grid, mlp_ratio=mlp_ratio, heads=heads, dwconv=dwconv) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"FourierFormer expects B x H x W x C, got shape {tuple(x.shape)}")
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)
