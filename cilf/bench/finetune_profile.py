"""Where a fine-tuning step's time goes: one batch of training images, fine-tuning the image tower's last k
blocks, split into the parts the boundary cache removes (decoding + preprocessing the images, the forward
pass of the L - k frozen blocks) and the parts it keeps (forward + backward of the k trainable blocks,
CILF-CIAE's own layers and the optimiser step). The cache's speed-up per epoch can be at most
(load + frozen + trainable) / trainable: these timings say how far that ceiling is from a target.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from cilf.app.engine import TrainStep
from cilf.app.schedule import param_groups
from cilf.bench.timing import median_time
from cilf.data.datasets import RecordDataset, collate_skip
from cilf.model.cilf_model import CILF
from cilf.model.clip import BoundaryTokens


def _median_s(fn, repeats: int, warmup: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` after ``warmup`` calls: this process's CPU time on a CPU (which other
    processes on a shared machine do not inflate, as the fine-tuning table's epochs), wall time on a GPU."""
    if device.type == "cuda":
        return median_time(fn, repeats, warmup, device=device, min_seconds=0.0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return float(np.median(times))


def finetune_step_profile(
    model: CILF,
    ds: RecordDataset,
    batch_size: int = 64,
    repeats: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
) -> dict:
    """Milliseconds per batch of ``batch_size`` images of ``ds`` for ``model`` (its last
    ``cfg.unfreeze_last_blocks`` = k image blocks trainable), each the median of ``repeats`` calls:

    - ``load_ms``: reading, decoding and preprocessing the images (what a pixel epoch's data loader does);
    - ``frozen_ms``: the L - k frozen blocks (``encode_to_block``, no gradient);
    - ``blocks_ms``: forward + backward of the k trainable blocks alone (``encode_from_block``);
    - ``step_from_cache_ms``: a whole training step from the boundary tokens (k blocks, heads, losses,
      backward, clipping, AdamW);
    - ``step_from_pixels_ms``: the same step from the images (frozen blocks included).

    On a CPU each is this process's CPU time (the fine-tuning table's epochs are too), so with one thread
    it is the time the part would take on an idle machine; on a GPU wall time.

    Shares are of ``pixel_batch_ms`` = load + step from pixels; ``speedup_ceiling`` = pixel_batch_ms /
    step_from_cache_ms, the most a cache can give when reading it costs nothing.
    """

    device = torch.device(device)
    k = model.cfg.unfreeze_last_blocks
    if not model.cfg.freeze_image or k < 1:
        raise ValueError(
            f"the profile needs a model whose last k >= 1 image blocks train on a frozen stem "
            f"(unfreeze_last_blocks={k}, freeze_image={model.cfg.freeze_image})"
        )
    n = min(batch_size, len(ds))
    if n < 2:
        raise ValueError(f"{ds.name} has {len(ds)} images; the profile needs a batch of at least 2")
    block = model.clip.boundary
    load_s = _median_s(lambda: collate_skip([ds[i] for i in range(n)]), repeats, warmup, device)
    images, ages, _, _ = collate_skip([ds[i] for i in range(n)])
    images, ages = images.to(device), ages.to(device)
    with torch.no_grad():
        model.clip.class_text_features()  # frozen prompts: encoded once, as in training

    def frozen():
        with torch.no_grad():
            return model.clip.encode_to_block(images, block)

    frozen_s = _median_s(frozen, repeats, warmup, device)
    tokens = frozen()
    model.train()

    def blocks():
        f = model.clip.encode_from_block(tokens, block)
        (f.pooled.sum() + f.tokens.sum()).backward()
        model.zero_grad(set_to_none=True)

    blocks_s = _median_s(blocks, repeats, warmup, device)
    step = TrainStep(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(model, 1e-6, 0.2), lr=1e-6)  # tiny steps: the weights barely move
    boundary = BoundaryTokens(tokens, block)

    def train_step(imgs, feats):
        losses = step(imgs, feats, ages)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    cache_s = _median_s(lambda: train_step(None, boundary), repeats, warmup, device)
    pixels_s = _median_s(lambda: train_step(images, None), repeats, warmup, device)
    model.eval()
    pixel_batch = load_s + pixels_s
    ms = {
        "load_ms": 1e3 * load_s,
        "frozen_ms": 1e3 * frozen_s,
        "blocks_ms": 1e3 * blocks_s,
        "step_from_cache_ms": 1e3 * cache_s,
        "step_from_pixels_ms": 1e3 * pixels_s,
    }
    heads = max(cache_s - blocks_s, 0.0)
    return {
        "k": k,
        "frozen_blocks": block,
        "image_blocks": model.clip.image_blocks,
        "batch": n,
        **ms,
        "pixel_batch_ms": 1e3 * pixel_batch,
        "share": {
            "load": load_s / pixel_batch,
            "frozen_blocks": frozen_s / pixel_batch,
            "trainable_blocks": blocks_s / pixel_batch,
            "heads_and_optimiser": heads / pixel_batch,
        },
        "speedup_ceiling": pixel_batch / cache_s,
        "repeats": repeats,
    }


def format_step_profile(p: dict, backbone: str) -> str:
    """Two lines: the per-batch split and the ceiling it sets on the cache's speed-up."""
    s = p["share"]
    return (
        f"  profile, {backbone} last-{p['k']} ({p['frozen_blocks']} of {p['image_blocks']} blocks frozen), one batch "
        f"of {p['batch']} from pixels = {p['pixel_batch_ms']:.0f} ms: load+decode {p['load_ms']:.0f} ms "
        f"({100 * s['load']:.0f}%), frozen blocks {p['frozen_ms']:.0f} ms ({100 * s['frozen_blocks']:.0f}%), "
        f"trainable blocks fwd+bwd {p['blocks_ms']:.0f} ms ({100 * s['trainable_blocks']:.0f}%), heads + "
        f"losses + AdamW {p['step_from_cache_ms'] - p['blocks_ms']:.0f} ms "
        f"({100 * s['heads_and_optimiser']:.0f}%)\n"
        f"    -> the cache removes load + frozen blocks only: at most {p['speedup_ceiling']:.1f}x "
        f"(step from the cache {p['step_from_cache_ms']:.0f} ms per batch)"
    )
