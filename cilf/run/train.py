"""Training: deterministic by seed, resumable from the last epoch's checkpoint, metrics as JSON.

Layout of ``out``:  ``last/`` (checkpoint + train_state.pt, written every epoch), ``best/``
(lowest validation MAE), ``metrics.json`` (test report), ``history.json`` (per-epoch losses).
"""
from __future__ import annotations

import json
import math
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..model.checkpoint import is_checkpoint, load_model, load_train_state, save_checkpoint
from .batches import Batches, FeatureBatches
from ..model.config import CILFConfig, check_ranges
from ..data.datasets import ManifestDataset, RecordDataset, SynthAge
from .distributed import DistContext, init_distributed, shutdown
from .evaluate import evaluation_report, predict_features
from .features import extract_features
from ..metrics import mae
from ..model.cilf_model import CILF
from ..utils import pick_device, seed_everything


PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    out: str = "runs/cilf"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    seed: int = 0
    device: str = "auto"
    data: str | None = None  # CSV manifest with a split column (train/val/test); None = SynthAge
    n_images: int = 10000  # SynthAge size
    data_seed: int = 0  # SynthAge seed (the data stays fixed when the training seed changes)
    cache_features: bool = True  # encode frozen CLIP features once (ignored when CLIP is trained)
    progress: bool = True
    stop_after_epochs: int | None = None  # end this session early; continue later with resume
    precision: str = "auto"  # fp32, bf16 (autocast; FFTs stay float32), auto = bf16 on CUDA that has it

    def __post_init__(self) -> None:
        check_ranges(self, {"epochs": 1, "batch_size": 2, "warmup_steps": 1, "n_images": 50, "stop_after_epochs": 1,
                            "weight_decay": 0}, ("lr",))
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


def load_splits(tcfg: TrainConfig, transform) -> tuple[dict[str, ManifestDataset], str]:
    """train/val/test datasets and the label saying where the numbers come from."""
    if tcfg.data:
        splits = {s: ManifestDataset(tcfg.data, split=s, transform=transform) for s in ("train", "val", "test")}
        empty = [s for s, d in splits.items() if len(d) == 0]
        if empty:
            raise ValueError(f"{tcfg.data}: no rows in split(s) {empty}; the split column needs train, val and test")
        return splits, f"this run, {Path(tcfg.data).name}"
    splits = {s: SynthAge(split=s, n_images=tcfg.n_images, seed=tcfg.data_seed, transform=transform,
                          progress=tcfg.progress) for s in ("train", "val", "test")}
    return splits, "this run, SynthAge (synthetic)"


class TrainStep(nn.Module):
    """model + losses in one forward, so DistributedDataParallel sees every parameter a step uses."""

    def __init__(self, model: CILF):
        super().__init__()
        self.model = model

    def forward(self, images, features, y) -> dict[str, torch.Tensor]:
        return self.model.losses(self.model(images=images, features=features), y)


def fit_features(cfg: CILFConfig, features, ages: torch.Tensor, epochs: int, seed: int = 0, batch_size: int = 64,
                 lr: float = 2e-3, weight_decay: float = 1e-4, warmup_steps: int = 50,
                 device: str | torch.device = "cpu") -> CILF:
    """Train CILF-CIAE on cached frozen features (n images) for a fixed budget; return the model.

    The same optimiser, schedule and seeding as :func:`train`, without validation or checkpoints:
    what benchmarks and ablations need.
    """
    seed_everything(seed)
    model = CILF(cfg).to(device)
    batches = FeatureBatches(features, ages, batch_size, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = _schedule(opt, warmup_steps, max(1, epochs * len(batches)))
    for epoch in range(epochs):
        train_one_epoch(model, batches, opt, sched, params, seed, epoch)
    return model.eval()


def _schedule(opt, warmup_steps: int, total_steps: int):
    """Linear warm-up, then cosine decay to zero at ``total_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup_steps)
                                             * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))


def train_one_epoch(model: CILF, batches: Batches, opt, sched, params, seed: int, epoch: int, desc: str = "epoch",
                    progress: bool = False, step: nn.Module | None = None,
                    amp_dtype: torch.dtype | None = None) -> tuple[dict[str, float], int]:
    """One pass over ``batches`` (shuffled by seed and epoch); returns summed losses and steps.

    ``step``: the module that maps (images, features, ages) to losses, DDP-wrapped under torchrun
    (default: ``TrainStep(model)``); ``amp_dtype``: autocast dtype (None = float32).
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


def _evaluate_split(model: CILF, batches: Batches, ds: RecordDataset, device, progress: bool):
    if batches is not None and batches.cached:
        feats, ages = batches.features, batches.ages
    else:
        feats, ages, _ = extract_features(model, ds, device=device, progress=progress, desc="encode")
    return predict_features(model, feats, device=device), ages.numpy()


def train(cfg: CILFConfig, tcfg: TrainConfig, resume: bool = False) -> dict:
    """Train CILF-CIAE, keep the best-on-validation checkpoint, evaluate it on test; return the report.

    Under ``torchrun`` every rank trains on its share of each epoch (DistributedDataParallel) and
    rank 0 alone validates, writes checkpoints and logs, and returns the report.
    """
    ctx = init_distributed(tcfg.device)
    try:
        return _train(cfg, tcfg, resume, ctx)
    finally:
        shutdown(ctx)


def _train(cfg: CILFConfig, tcfg: TrainConfig, resume: bool, ctx: DistContext) -> dict:
    out = Path(tcfg.out)
    last, best = out / "last", out / "best"
    if is_checkpoint(last) and not resume:
        raise FileExistsError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    device, main = ctx.device, ctx.is_main
    progress = tcfg.progress and main
    seed_everything(tcfg.seed)
    state = None
    if resume and is_checkpoint(last):
        state = load_train_state(last)
        saved = CILFConfig.load(last / "config.json")
        if saved.to_dict() != cfg.to_dict():
            raise ValueError(f"{last}: the run was started with another model config; resume with the same settings")
        if state.get("tcfg", {}).get("seed") != tcfg.seed:
            raise ValueError(f"{last}: the run was started with seed {state['tcfg']['seed']}, not {tcfg.seed}")
        model = load_model(last, device).train()
    else:
        model = CILF(cfg).to(device)
    if main:
        out.mkdir(parents=True, exist_ok=True)

    with ctx.main_first():  # rank 0 renders SynthAge (once); the others read it
        splits, source = load_splits(replace(tcfg, progress=progress), model.preprocess)
    cached = tcfg.cache_features and not model.clip.image_trainable
    model.eval()
    train_b = Batches(model, splits["train"], tcfg.batch_size, device=device, cached=cached, desc="encode train",
                      ctx=ctx, progress=progress)
    val_b = (Batches(model, splits["val"], tcfg.batch_size, device=device, cached=cached, desc="encode val",
                     progress=progress) if main else None)
    train_mean = float(train_b.ages.mean())

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    total_steps = max(1, tcfg.epochs * len(train_b))
    sched = _schedule(opt, tcfg.warmup_steps, total_steps)
    history, best_val, start = [], float("inf"), 0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history, best_val, start = state["history"], state["best_val"], state["epoch"] + 1
    step = TrainStep(model)
    if ctx.active:
        # the depth-wise conv's weight gradient comes out channels-last (its input is a permuted view): DDP
        # notes that this 576-value bucket copy "may impair performance"; it is negligible here
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        step = nn.parallel.DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None)
    amp = amp_dtype_for(tcfg.precision, device)

    t0 = time.time()
    stop = tcfg.epochs if tcfg.stop_after_epochs is None else min(tcfg.epochs, start + tcfg.stop_after_epochs)
    for epoch in range(start, stop):
        sums, steps = train_one_epoch(model, train_b, opt, sched, params, tcfg.seed, epoch,
                                      desc=f"epoch {epoch + 1}/{tcfg.epochs}", progress=progress, step=step,
                                      amp_dtype=amp)
        if main:
            pred, yv = _evaluate_split(model, val_b, splits["val"], device, progress)
            val_mae = mae(yv, pred["age"])
            row = {"epoch": epoch + 1, **{k: v / max(steps, 1) for k, v in sums.items()}, "val_mae": val_mae,
                   "val_mae_y0": mae(yv, pred["y0"]), "seconds": time.time() - t0}
            history.append(row)
            if progress:
                tqdm.write(f"epoch {epoch + 1:3d}  loss {row.get('total', float('nan')):.3f}  val MAE {val_mae:.2f} "
                           f"(y0 {row['val_mae_y0']:.2f})")
            if val_mae < best_val:
                best_val = val_mae
                save_checkpoint(model, best)
            save_checkpoint(model, last, {"epoch": epoch, "optimizer": opt.state_dict(),
                                          "scheduler": sched.state_dict(), "history": history, "best_val": best_val,
                                          "tcfg": asdict(tcfg)})
            (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
        ctx.barrier()  # the next epoch starts when rank 0 has written this one

    if not main:
        return {"rank": ctx.rank, "report": "written by rank 0", "out": str(out)}
    if stop < tcfg.epochs:
        return {"stopped_after_epoch": stop, "history": history, "checkpoint": str(last)}
    if not is_checkpoint(best):
        raise RuntimeError(f"{out}: no epoch finished, nothing to evaluate (epochs={tcfg.epochs})")
    model = load_model(best, device)
    test_b = Batches(model, splits["test"], tcfg.batch_size, device=device, cached=True, desc="encode test",
                     progress=progress)
    pred, yt = _evaluate_split(model, test_b, splits["test"], device, progress)
    report = evaluation_report(yt, pred, train_mean, source)
    report.update({"split": "test", "checkpoint": str(best), "epochs": tcfg.epochs, "seed": tcfg.seed,
                   "best_val_mae": best_val, "train_seconds": history[-1]["seconds"] if history else 0.0,
                   "processes": ctx.world_size, "precision": "bf16" if amp is not None else "fp32",
                   "skipped_files": {s: d.skips.skipped for s, d in splits.items()},
                   "config": cfg.to_dict(), "train_config": asdict(tcfg)})
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    write_predictions(out / "test_predictions.csv", test_b.metas, yt, pred)
    return report


def write_predictions(path: Path, metas: list[dict], y_true, pred: dict) -> None:
    """One row per image: path, true age and every prediction column."""
    import csv

    cols = list(pred)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "true_age", *cols])
        for i, m in enumerate(metas):
            w.writerow([m.get("path", ""), f"{float(y_true[i]):g}", *[_fmt(pred[c][i]) for c in cols]])


def _fmt(v) -> str:
    return f"{float(v):.4f}" if isinstance(v, (float, np.floating)) else str(v)


def evaluate_checkpoint(checkpoint: str | Path, tcfg: TrainConfig, split: str = "test") -> dict:
    """Evaluate a saved model on one split; the baseline is the train split's mean age."""
    device = pick_device(tcfg.device)
    model = load_model(checkpoint, device)
    splits, source = load_splits(tcfg, model.preprocess)
    feats, ages, _ = extract_features(model, splits[split], device=device, progress=tcfg.progress, desc=f"encode {split}")
    pred = predict_features(model, feats, device=device)
    report = evaluation_report(ages.numpy(), pred, float(splits["train"].ages.mean()), source)
    report.update({"split": split, "checkpoint": str(checkpoint), "skipped_files": {split: splits[split].skips.skipped}})
    return report


