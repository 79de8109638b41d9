"""Seeded augmentation of training images, for runs that train from pixels (the image tower fine-tuned with
``freeze_image=false``, or ``--no-cache``): a random horizontal flip and a random shift of up to ``shift``
pixels (the image padded by repeating its edge pixels, then cropped back to its size at a random offset).

Only the training split is augmented; validation, test, the cross-fitted error model and every cache see
the images as they are. A run with neither option draws nothing extra, so its shuffles and numbers are
those of a run made before augmentation existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """``flip``: mirror each image left-right with probability 1/2; ``shift``: move each image by an
    integer offset drawn uniformly from [-shift, shift] pixels on each axis (0 = no shift)."""

    flip: bool = False
    shift: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"shift must be a whole number of pixels >= 0, got {self.shift!r}")

    @property
    def active(self) -> bool:
        return self.flip or self.shift > 0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """images (B, C, H, W) -> augmented (B, C, H, W), same dtype and device; the draws come from
        ``generator`` (a CPU generator), so a seed gives the same images on any device."""
        if images.ndim != 4:
            raise ValueError(f"augmentation needs a batch of images (B, C, H, W), got shape {tuple(images.shape)}")
        b, _, h, w = images.shape
        if self.shift >= min(h, w):
            raise ValueError(f"shift={self.shift} pixels is not smaller than the {h}x{w} images")
        if self.flip:
            mirror = (torch.rand(b, generator=generator) < 0.5).to(images.device)
            images = torch.where(mirror.view(-1, 1, 1, 1), images.flip(-1), images)
        if self.shift > 0:
            s = self.shift
            dy, dx = (torch.randint(0, 2 * s + 1, (2, b), generator=generator)).tolist()
            padded = F.pad(images, (s, s, s, s), mode="replicate")
            images = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx))])
        return images


def needs_pixels(where: str) -> str:
    """The one refusal for augmenting a run that trains from cached features or boundary tokens."""
    return (
        f"{where}: augmentation (--flip/--shift) changes the training images, so they must be decoded every "
        f"epoch, not read from a cache: train the whole image tower (--set freeze_image=false) or pass --no-cache"
    )


def epoch_generator(shuffle: torch.Generator, rank: int = 0) -> torch.Generator:
    """The augmentation draws of one epoch on one rank: derived from the seed of the epoch's shuffle
    generator (not from its state, so augmenting does not change the shuffle) and the rank."""
    return torch.Generator().manual_seed((shuffle.initial_seed() * 2 + 1 + 1_000_003 * rank) % 2**63)
