"""Frozen-encoder features held in memory: encode a dataset once, train heads many times."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..model.clip import ImageFeatures
from ..data.datasets import RecordDataset, collate_skip


@torch.no_grad()
def extract_features(model, dataset: RecordDataset, batch_size: int = 128, device: str | torch.device = "cpu",
                     progress: bool = True, desc: str = "encode") -> tuple[ImageFeatures, torch.Tensor, list[dict]]:
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
