"""The ``resnet18`` peer: a ResNet-18 trained end to end on the pixels, no CLIP anywhere.

It answers "what do the CLIP features buy?": the same images, folds, seeds and training budget (epochs,
batch, learning rate; AdamW with a cosine schedule like the feature peers, no early stopping), but the
network sees only the resized images. ``torchvision.models.resnet18(weights=None)``: random
initialisation, nothing downloaded.

Output and loss: DEX-style, a softmax over the integer ages (age_min..age_max) trained with cross-entropy,
the expected age at test. Chosen over an L1 regression because it is the head of the ``dex`` peer on the
CLIP features, so the two rows differ in the representation only, and because cross-entropy trains more
steadily from a random start than L1 on a target spanning a century (L1's gradient has the same size
for every error, so the early steps are large jumps of the one output).

Input: each image read with :func:`cilf.data.images.load_image`, centre-cropped to a square and resized
to ``size`` px (64 by default: on a 2-core CPU 112 px costs about three times as much), standardised by
the training images' channel means; augmentation: a seeded horizontal flip. Unreadable files are
counted: a training image is left out, a test image gets no prediction (NaN, i.e. less coverage).
Deterministic for a seed on the CPU (and on CUDA with cuDNN's deterministic kernels, used here).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torchvision.models import resnet18

from cilf.bench.peer_registry import PeerConfig, PeerInputs, peer_optimizer
from cilf.data.images import BadImageError, load_image
from cilf.model.heads import age_index

NAME = "resnet18"
TITLE = "ResNet-18 on pixels (no CLIP)"
VERSION = 1  # bump when the method changes: saved benchmark runs are then computed again


@dataclass(frozen=True)
class ResNetPeerConfig:
    """What the pixel peer depends on besides the shared budget (:class:`PeerConfig`)."""

    size: int = 64  # input side in pixels (centre square crop, bilinear resize)
    flip: bool = True  # random horizontal flip while training
    predict_batch: int = 256

    def __post_init__(self) -> None:
        if self.size < 16 or self.predict_batch < 1:
            raise ValueError(f"ResNetPeerConfig: size must be >= 16 px and predict_batch >= 1, got {self}")


def available() -> str | None:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return "torchvision is not installed (pip install torchvision)"
    return None


def load_pixels(paths: list, size: int) -> tuple[torch.Tensor, np.ndarray, list[tuple[str, str]]]:
    """Images as uint8 (n x 3 x size x size), a mask (n) of the readable ones (unreadable: zeros), the skips."""
    out = torch.zeros(len(paths), 3, size, size, dtype=torch.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    skipped = []
    for i, p in enumerate(paths):
        try:
            img = ImageOps.fit(load_image(p), (size, size), Image.BILINEAR)
        except (BadImageError, OSError, ValueError) as e:
            skipped.append((str(p), getattr(e, "reason", str(e))))
            continue
        out[i] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        ok[i] = True
    return out, ok, skipped


def _device(inp: PeerInputs) -> torch.device:
    return next(inp.encoder.parameters()).device if inp.encoder is not None else torch.device("cpu")


def fit_predict(inp: PeerInputs, rcfg: ResNetPeerConfig = ResNetPeerConfig()) -> tuple[np.ndarray, dict]:
    """Train on ``inp.train_rows`` paths with ages ``inp.y_train`` (n), predict ``inp.test_paths``: ages (m),
    NaN for unreadable test images; extras: input size and the counts of unreadable images."""

    cfg: PeerConfig = inp.cfg
    if len(inp.train_rows) != len(inp.y_train):
        raise ValueError(
            f"the resnet18 peer reads the training images from PeerInputs.train_rows: got "
            f"{len(inp.train_rows)} rows for {len(inp.y_train)} ages; give one row (with 'path') per age"
        )
    x_tr, ok_tr, skip_tr = load_pixels([r["path"] for r in inp.train_rows], rcfg.size)
    x_te, ok_te, skip_te = load_pixels(list(inp.test_paths), rcfg.size)
    extras = {NAME: {"size": rcfg.size, "unreadable_train": len(skip_tr), "unreadable_test": len(skip_te)}}
    pred = np.full(len(inp.test_paths), np.nan)
    if ok_tr.sum() < 2 or not ok_te.any():
        return pred, extras  # nothing to learn from or to predict: no predictions (coverage 0)
    x_tr, y = x_tr[torch.from_numpy(ok_tr)], inp.y_train.float()[torch.from_numpy(ok_tr)]
    ages = torch.arange(cfg.age_min, cfg.age_max + 1, dtype=torch.float32)
    target = age_index(y, cfg.age_min, len(ages))
    mean = x_tr.float().mean((0, 2, 3)).view(1, 3, 1, 1)
    std = x_tr.float().std((0, 2, 3)).view(1, 3, 1, 1) + 1e-3
    device = _device(inp)

    def batch(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - mean) / std).to(device)

    torch.manual_seed(inp.seed)
    gen = torch.Generator().manual_seed(inp.seed)
    net = resnet18(weights=None, num_classes=len(ages)).to(device)
    n = len(x_tr)
    steps = cfg.epochs * math.ceil(n / cfg.batch_size)
    opt, sched = peer_optimizer(net, cfg, steps)
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        net.train()
        for _ in range(cfg.epochs):
            perm = torch.randperm(n, generator=gen)
            flips = torch.rand(n, generator=gen) < 0.5
            for i in range(0, n, cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                if len(idx) < 2:  # batch norm needs two images: a lone leftover image sits this epoch out
                    continue
                xb = x_tr[idx]
                if rcfg.flip:
                    xb = torch.where(flips[idx].view(-1, 1, 1, 1), xb.flip(-1), xb)
                loss = F.cross_entropy(net(batch(xb)), target[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        net.eval()
        keep = np.flatnonzero(ok_te)
        with torch.no_grad():
            for i in range(0, len(keep), rcfg.predict_batch):
                j = keep[i : i + rcfg.predict_batch]
                p = net(batch(x_te[torch.from_numpy(j)])).float().softmax(-1).cpu()
                pred[j] = (p @ ages).double().numpy()
    return pred, extras


def resnet_peer(rcfg: ResNetPeerConfig = ResNetPeerConfig()):
    """``fit_and_predict(PeerInputs)`` of the pixel ResNet-18 with input settings ``rcfg`` (for register_peer)."""

    def fit_and_predict(inp: PeerInputs) -> tuple[np.ndarray, dict]:
        return fit_predict(inp, rcfg)

    return fit_and_predict


def run_key() -> dict:
    """What a saved run of this peer depends on besides the data: the method's version and input settings."""
    return {NAME: VERSION, **asdict(ResNetPeerConfig())}
