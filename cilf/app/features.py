"""Frozen-encoder features held in memory: encode a dataset once, train heads many times; or the tokens
at the boundary of the frozen part of the image tower, when its last blocks are fine-tuned."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from cilf.data.datasets import RecordDataset, collate_skip
from cilf.model.clip import BoundaryTokens, ImageFeatures


@torch.no_grad()
def extract_features(
    model,
    dataset: RecordDataset,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "encode",
) -> tuple[ImageFeatures, torch.Tensor, list[dict]]:
    """Encode every readable image: ImageFeatures (n x D, n x N x D), ages (n), metas (n).

    Unreadable images are skipped and counted in ``dataset.skips``.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skip)
    pooled, tokens, ages, metas = [], [], [], []
    grid = None
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        if batch is None:
            continue
        images, y, _, meta = batch
        f = model.encode_image(images.to(device))
        pooled.append(f.pooled.float().cpu())
        tokens.append(f.tokens.float().cpu())
        grid = f.grid
        ages.append(y)
        metas.extend(meta)
    if not pooled:
        raise RuntimeError(f"no readable images in {dataset.name}; {dataset.skips.report()}")
    return ImageFeatures(torch.cat(pooled), torch.cat(tokens), grid), torch.cat(ages), metas


@torch.no_grad()
def extract_boundary(
    model,
    dataset: RecordDataset,
    block: int,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "encode",
) -> tuple[torch.Tensor, torch.Tensor, list[dict]]:
    """Tokens entering image block ``block`` for every readable image: (n x (1 + N) x W, ages (n), metas (n)).

    Unreadable images are skipped and counted in ``dataset.skips``.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_skip)
    tokens, ages, metas = [], [], []
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        if batch is None:
            continue
        images, y, _, meta = batch
        tokens.append(model.clip.encode_to_block(images.to(device), block).float().cpu())
        ages.append(y)
        metas.extend(meta)
    if not tokens:
        raise RuntimeError(f"no readable images in {dataset.name}; {dataset.skips.report()}")
    return torch.cat(tokens), torch.cat(ages), metas


@torch.no_grad()
def boundary_features(
    model, boundary: BoundaryTokens, batch_size: int = 256, device: str | torch.device = "cpu"
) -> ImageFeatures:
    """Finish cached boundary tokens (n x (1 + N) x W) through the model's remaining image blocks ->
    ImageFeatures (n x D, n x N x D) on the CPU, float32."""
    pooled, tokens, grid = [], [], None
    for i in range(0, len(boundary), batch_size):
        f = model.clip.encode_from_block(boundary.tokens[i : i + batch_size].to(device).float(), boundary.block)
        pooled.append(f.pooled.float().cpu())
        tokens.append(f.tokens.float().cpu())
        grid = f.grid
    return ImageFeatures(torch.cat(pooled), torch.cat(tokens), grid)
