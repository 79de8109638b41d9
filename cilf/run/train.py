"""Training: deterministic by seed, resumable from the last epoch's checkpoint, metrics as JSON.

Layout of ``out``: ``run.json`` (marks a cilf run: version, command, start time), ``last/``
(checkpoint + train_state.pt, written whole every epoch), ``prev/`` (the epoch before: resume
falls back to it when ``last/`` is damaged), ``best/`` (lowest validation MAE), ``metrics.json``
(test report), ``history.json`` (per-epoch losses), ``test_predictions.csv``. One process writes a
run folder at a time (``.cilf-lock``, see ``cilf.io.FolderLock``).
"""
from __future__ import annotations

import math
import os
import shlex
import shutil
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..io import FolderLock, atomic_directory, atomic_write, recover_directory, write_json
from ..model.checkpoint import (CheckpointError, is_checkpoint, load_model, load_train_state, moved_weights,
                               save_checkpoint)
from .augment import Augment, needs_pixels
from .batches import Batches, BoundaryBatches, FeatureBatches
from .crossfit import FitSettings, calibrate_correction
from ..model.config import CILFConfig, check_ranges
from ..data.datasets import ManifestDataset, RecordDataset, SynthAge
from .distributed import DistContext, init_distributed, shutdown
from .evaluate import evaluation_report, predict_features
from .features import boundary_features, extract_features
from ..model.clip import BoundaryTokens
from ..metrics import age_report, mae
from ..model.cilf_model import CILF
from ..utils import seed_everything
from .schedule import NonFiniteLoss, check_resume_settings, session_epochs, warmup_cosine


PRECISIONS = ("auto", "fp32", "bf16")
RUN_MARKER = "run.json"
# what a resumed run must keep (its data, split and optimisation); device, progress and stop_after_epochs may change
RESUME_FIXED = ("data", "n_images", "data_seed", "epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "seed",
                "precision", "dataset", "root", "protocol", "fold", "val_frac", "backbone_lr_scale",
                "flip", "shift")


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
    data_seed: int = 0  # SynthAge seed; with dataset: the seed of the validation split carved from train
    dataset: str | None = None  # a dataset layout (cilf.data.open.open_dataset) instead of SynthAge or a manifest
    root: str | None = None  # its folder (None: $CILF_DATASETS/<dataset>)
    protocol: str | None = None  # its protocol (None: the dataset's default)
    fold: int = 0  # which fold of the protocol
    val_frac: float = 0.1  # share of the training subjects carved off for validation (when the fold has no val)
    cache_features: bool = True  # encode the frozen part of CLIP once: its features, or with unfreeze_last_blocks
    # the tokens entering the first trainable block (on disk); ignored when the whole image tower trains
    backbone_lr_scale: float = 0.2  # CLIP weights that train (fine-tuned blocks) use lr x this
    progress: bool = True
    stop_after_epochs: int | None = None  # end this session early; continue later with resume
    precision: str = "auto"  # fp32, bf16 (autocast; FFTs stay float32), auto = bf16 on CUDA that has it
    flip: bool = False  # augment the training images: random horizontal flip (needs training from pixels)
    shift: int = 0  # augment the training images: random shift of up to this many pixels (cilf.run.augment)

    def __post_init__(self) -> None:
        check_ranges(self, {"epochs": 1, "batch_size": 2, "warmup_steps": 1, "n_images": 50, "stop_after_epochs": 1,
                            "weight_decay": 0, "shift": 0}, ("lr", "backbone_lr_scale"))
        if self.dataset is None and (self.root is not None or self.protocol is not None):
            raise ValueError("root and protocol belong to a dataset: pass --dataset NAME with them")
        if self.dataset is not None and self.data is not None:
            raise ValueError("give either --data (a manifest CSV) or --dataset NAME, not both")
        if self.fold < 0 or not 0 < self.val_frac < 1:
            raise ValueError(f"fold must be >= 0 (got {self.fold}) and val_frac in (0, 1) (got {self.val_frac})")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


def load_splits(tcfg: TrainConfig, transform) -> tuple[dict[str, RecordDataset], str, dict]:
    """train/val/test datasets, the label saying where the numbers come from and, for ``tcfg.dataset``,
    what :func:`cilf.run.dataset_splits.open_splits` found (fold, val rule, warnings; else {})."""
    if tcfg.dataset:
        from .dataset_splits import open_splits

        d = open_splits(tcfg.dataset, tcfg.root, tcfg.protocol, tcfg.fold, tcfg.val_frac, tcfg.data_seed, transform,
                        n_images=tcfg.n_images)
        return d.splits, d.label, d.info
    if tcfg.data:
        splits = {s: ManifestDataset(tcfg.data, split=s, transform=transform) for s in ("train", "val", "test")}
        empty = [s for s, d in splits.items() if len(d) == 0]
        if empty:
            raise ValueError(f"{tcfg.data}: no rows in split(s) {empty}; the split column needs train, val and test")
        return splits, f"this run, {Path(tcfg.data).name}", {}
    splits = {s: SynthAge(split=s, n_images=tcfg.n_images, seed=tcfg.data_seed, transform=transform,
                          progress=tcfg.progress) for s in ("train", "val", "test")}
    return splits, "this run, SynthAge (synthetic)", {}


class TrainStep(nn.Module):
    """model + losses in one forward, so DistributedDataParallel sees every parameter a step uses."""

    def __init__(self, model: CILF):
        super().__init__()
        self.model = model

    def forward(self, images, features, y) -> dict[str, torch.Tensor]:
        if isinstance(features, BoundaryTokens):  # cached frozen part: the trainable last blocks run here
            features = self.model.clip.encode_from_block(features.tokens, features.block)
        # a post-hoc fitted correction has no part in the age model's training: not run here
        correct = not self.model.cfg.posthoc_correction
        return self.model.losses(self.model(images=images, features=features, correct=correct), y)


def param_groups(model: CILF, lr: float, backbone_lr_scale: float) -> list[dict]:
    """AdamW groups of the trainable weights: the heads at ``lr``, trainable CLIP weights (fine-tuned blocks)
    at ``lr * backbone_lr_scale``; a group without weights is left out."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in named if not n.startswith("clip.model.")]
    backbone = [p for n, p in named if n.startswith("clip.model.")]
    return [g for g in ({"params": head, "lr": lr}, {"params": backbone, "lr": lr * backbone_lr_scale})
            if g["params"]]


def fit_features(cfg: CILFConfig, features, ages: torch.Tensor, epochs: int, seed: int = 0, batch_size: int = 64,
                 lr: float = 2e-3, weight_decay: float = 1e-4, warmup_steps: int = 50,
                 device: str | torch.device = "cpu", groups=None, backbone_lr_scale: float = 0.2,
                 text_from: CILF | None = None) -> CILF:
    """Train CILF-CIAE on cached frozen features (n images) for a fixed budget; return the model.

    ``features``: ImageFeatures of a frozen tower, or BoundaryTokens (n x (1 + N) x W) entering block
    ``cfg``'s boundary when ``cfg.unfreeze_last_blocks`` > 0 (those blocks then train, at
    ``lr * backbone_lr_scale``). The same optimiser, schedule and seeding as :func:`train`, without
    validation or checkpoints: what benchmarks and ablations need. With the post-hoc correction
    (``cfg.correction_fit="crossfit"``) the error model is then fitted on out-of-fold residuals of these
    images (``groups``: their subjects, for subject-exclusive folds; :func:`cilf.run.crossfit.calibrate_correction`),
    on the features the final model's (fine-tuned) tower gives them. ``text_from``: a model whose encoded
    frozen prompts this one reuses when its text tower and prompts are the same (the cross-fit's fold models).
    """
    seed_everything(seed)
    model = CILF(cfg).to(device)
    if text_from is not None:
        model.clip.adopt_text_cache(text_from.clip)
    if isinstance(features, BoundaryTokens) and features.block != model.clip.boundary:
        raise ValueError(f"boundary tokens enter image block {features.block}, but the model's first trainable "
                         f"block is {model.clip.boundary} (unfreeze_last_blocks={cfg.unfreeze_last_blocks})")
    batches = FeatureBatches(features, ages, batch_size, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(model, lr, backbone_lr_scale), lr=lr, weight_decay=weight_decay)
    sched = warmup_cosine(opt, warmup_steps, max(1, epochs * len(batches)))
    for epoch in range(epochs):
        train_one_epoch(model, batches, opt, sched, params, seed, epoch)
    if cfg.posthoc_correction:  # E learns on the features the final (fine-tuned) tower gives these images
        if isinstance(features, BoundaryTokens):
            features = boundary_features(model.eval(), features, device=device)
        calibrate_correction(model, features, ages, FitSettings(epochs, batch_size, lr, weight_decay, warmup_steps,
                                                                seed, str(device)), groups)
    return model.eval()


def train_one_epoch(model: CILF, batches: Batches, opt, sched, params, seed: int, epoch: int, desc: str = "epoch",
                    progress: bool = False, step: nn.Module | None = None,
                    amp_dtype: torch.dtype | None = None) -> tuple[dict[str, float], int]:
    """One pass over ``batches`` (shuffled by seed and epoch); returns summed losses and steps.

    ``step``: the module that maps (images, features, ages) to losses, DDP-wrapped under torchrun
    (default: ``TrainStep(model)``); ``amp_dtype``: autocast dtype (None = float32). A loss that is
    not finite on any rank raises NonFiniteLoss before the optimiser step (the weights stay finite).
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
        total = float(losses["total"].detach())
        if not ctx.all_agree(math.isfinite(total)):
            raise NonFiniteLoss(f"the training loss became {total} in epoch {epoch + 1}, step {steps + 1}")
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


def _split_features(model: CILF, batches: Batches, ds: RecordDataset, device, progress: bool):
    """(features, ages, metas) of a split: the cached ones, else encoded now by ``model``."""
    if batches is not None and batches.cached:
        feats, ages, metas = batches.features, batches.ages, batches.metas
        if isinstance(feats, BoundaryTokens):  # the model's own last blocks finish the cached tokens
            feats = boundary_features(model.eval(), feats, device=device)
        return feats, ages, metas
    return extract_features(model, ds, device=device, progress=progress, desc="encode")


def _evaluate_split(model: CILF, batches: Batches, ds: RecordDataset, device, progress: bool, correct: bool = True):
    feats, ages, _ = _split_features(model, batches, ds, device, progress)
    return predict_features(model, feats, device=device, correct=correct), ages.numpy()


def train(cfg: CILFConfig, tcfg: TrainConfig, resume: bool = False, force: bool = False) -> dict:
    """Train CILF-CIAE, keep the best-on-validation checkpoint, evaluate it on test; return the report.

    Under ``torchrun`` every rank trains on its share of each epoch (DistributedDataParallel) and
    rank 0 alone validates, writes checkpoints and logs, and returns the report. ``force``: write
    into a folder that holds files cilf did not write (they may be replaced).
    """
    ctx = init_distributed(tcfg.device)
    try:
        return _train(cfg, tcfg, resume, force, ctx)
    finally:
        shutdown(ctx)


def _say(ctx: DistContext):
    """Rank 0 prints notes on the run folder (to stderr, also with --quiet); the other ranks stay silent."""
    return (lambda msg: print(msg, file=sys.stderr, flush=True)) if ctx.is_main else (lambda msg: None)


def check_augment(cfg: CILFConfig, tcfg: TrainConfig) -> None:
    """ValueError when ``tcfg`` asks to augment (flip, shift) a run that trains from cached features or
    cached boundary tokens: augmentation changes the images, so they must be decoded every epoch."""
    if Augment(tcfg.flip, tcfg.shift).active and tcfg.cache_features and cfg.freeze_image:
        raise ValueError(needs_pixels(tcfg.out))


def _train(cfg: CILFConfig, tcfg: TrainConfig, resume: bool, force: bool, ctx: DistContext) -> dict:
    check_augment(cfg, tcfg)
    out = Path(tcfg.out)
    say = _say(ctx)
    lock = _claim_run_folder(out, resume, force, ctx, say)
    try:
        seed_everything(tcfg.seed)
        source, state = _resume_point(out, cfg, tcfg, say) if resume else (None, None)
        model = (load_model(source, ctx.device, clip_weights=moved_weights(source, cfg.pretrained)).train()
                 if source is not None else CILF(cfg).to(ctx.device))
        run = _Session(cfg, tcfg, ctx, out, model, state)
        epochs = session_epochs(run.start, tcfg.epochs, tcfg.stop_after_epochs)
        run.fit(epochs)
        if not ctx.is_main:
            return {"rank": ctx.rank, "report": "written by rank 0", "out": str(out)}
        if epochs.stop < tcfg.epochs:
            return {"stopped_after_epoch": epochs.stop, "history": run.history, "checkpoint": str(out / "last")}
        return run.report()
    finally:
        if lock is not None:
            lock.release()


# ---- the run folder: one writer, never another's files, repaired after an interrupted save ----

def foreign_files(out: Path) -> list[str]:
    """Names in ``out`` when it holds files but nothing says cilf wrote them (no run.json, lock or last/)."""
    if not out.is_dir() or any((out / n).exists() for n in (RUN_MARKER, FolderLock.NAME, "last")):
        return []
    return sorted(p.name for p in out.iterdir())


def _has_run(out: Path) -> bool:
    """A saved epoch (or the remains of one cut between its renames) is in ``out``."""
    return (is_checkpoint(out / "last") or (out / "prev").is_dir()
            or any(out.glob(".last.old-*")) or any(out.glob(".prev.old-*")))


def open_run_folder(out: Path, resume: bool, force: bool, say=print) -> FolderLock:
    """Take ``out`` for this run: refuse others' files (unless ``force``) and a second writer; repair, mark it.

    Returns the held lock. A save cut between its two renames is put back; temporaries of an
    interrupted save are removed; a new run folder gets ``run.json``.
    """
    names = foreign_files(out)
    if names and not force:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise FileExistsError(f"{out} holds files cilf did not write ({shown}); choose another --out, or pass "
                              f"--force to train there anyway (metrics.json, history.json, test_predictions.csv, "
                              f"last/, best/ would be replaced)")
    lock = FolderLock(out, "train").acquire()
    try:
        if _has_run(out) and not resume:
            raise FileExistsError(f"{out} already holds a training run; pass --resume to continue it or choose "
                                  f"another --out")
        for name in ("last", "prev", "best"):
            if recover_directory(out / name) is not None:
                say(f"{out / name}: put back the checkpoint that an interrupted save had moved aside")
        if resume:
            set_aside_damaged_last(out, say)
        for tmp in out.glob(".*.tmp"):  # cilf.io temporaries of a killed save; the lock says no one else writes
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        if not (out / RUN_MARKER).is_file():
            from .. import __version__

            argv = ["python", "-m", "cilf", *sys.argv[1:]] if Path(sys.argv[0]).name == "__main__.py" else sys.argv
            write_json(out / RUN_MARKER, {"cilf_version": __version__, "command": shlex.join(argv),
                                          "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, root=out)
    except BaseException:
        lock.release()
        raise
    return lock


def _claim_run_folder(out: Path, resume: bool, force: bool, ctx: DistContext, say) -> FolderLock | None:
    """Rank 0 opens the run folder; every rank stops if it could not (so no rank waits forever)."""
    lock, err = None, None
    if ctx.is_main:
        try:
            lock = open_run_folder(out, resume, force, say)
        except Exception as e:  # re-raised below, once every rank knows
            err = e
    if not ctx.all_agree(err is None):
        if err is not None:
            raise err
        raise RuntimeError(f"{out}: rank 0 could not open the run folder (its error says why)")
    return lock


def set_aside_damaged_last(out: Path, say=print) -> None:
    """Rank 0, resuming: if last/ fails verification, move it aside (``last.damaged-*``) so prev/ is resumed.

    Raises CheckpointError (one line) when there is no good prev/ to fall back to.
    """
    last, prev = out / "last", out / "prev"
    if not last.exists():
        return
    try:
        load_train_state(last)
        return
    except CheckpointError as e:
        damaged = str(e)
    try:
        epoch = load_train_state(prev)["epoch"] + 1 if prev.exists() else None
    except CheckpointError:
        epoch = None
    if epoch is None:
        raise CheckpointError(f"{damaged} (and {out} has no earlier good checkpoint, prev/, to fall back to: start a "
                              f"new run with another --out)")
    aside = out / f"last.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
    os.rename(last, aside)
    say(f"{damaged}\n-> {last} moved aside to {aside.name}; resuming from the epoch before, {prev} (epoch {epoch})")


def _resume_point(out: Path, cfg: CILFConfig, tcfg: TrainConfig, say) -> tuple[Path | None, dict | None]:
    """The verified checkpoint to resume from and its train state: last/, else prev/; (None, None) if none.

    Refuses (naming the field) when the run was started with another model config or settings.
    """
    d = next((d for d in (out / "last", out / "prev") if d.exists()), None)
    if d is None:
        say(f"{out}: no saved epoch to resume; starting from epoch 1")
        return None, None
    state = load_train_state(d)
    saved = CILFConfig.load(d / "config.json")
    if moved_weights(d, cfg.pretrained):  # the CLIP weights file was moved: same content (SHA-256), new path
        saved = saved.replace(pretrained=cfg.pretrained)
    if saved.to_dict() != cfg.to_dict():
        raise ValueError(f"{d}: the run was started with another model config; resume with the same settings")
    check_resume_settings(d, state.get("tcfg", {}), asdict(tcfg), RESUME_FIXED, same={"data": _same_path, "root": _same_path})
    return d, state


def _same_path(a: str | None, b: str | None) -> bool:
    return a == b or (a is not None and b is not None and Path(a).resolve() == Path(b).resolve())


# ---- one session of training ----

class _Session:
    """The data, optimiser and bookkeeping of one training session (rank 0 validates and writes)."""

    def __init__(self, cfg: CILFConfig, tcfg: TrainConfig, ctx: DistContext, out: Path, model: CILF,
                 state: dict | None):
        self.cfg, self.tcfg, self.ctx, self.out, self.model = cfg, tcfg, ctx, out, model
        self.device, self.main = ctx.device, ctx.is_main
        self.progress = tcfg.progress and self.main
        self._load_data()
        model.clip.warm_text_cache(self.progress)  # the prompts' features, once, before the first step
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(param_groups(model, tcfg.lr, tcfg.backbone_lr_scale), lr=tcfg.lr,
                                     weight_decay=tcfg.weight_decay)
        self.sched = warmup_cosine(self.opt, tcfg.warmup_steps, max(1, tcfg.epochs * len(self.train_b)))
        self.history, self.best_val, self.start = [], float("inf"), 0
        if state is not None:
            self._restore(state)
        self.step = self._step_module()
        self.amp = amp_dtype_for(tcfg.precision, self.device)

    def _load_data(self) -> None:
        tcfg, ctx, model = self.tcfg, self.ctx, self.model
        with ctx.main_first():  # rank 0 renders SynthAge (once); the others read it
            self.splits, self.source, self.data_info = load_splits(replace(tcfg, progress=self.progress),
                                                                   model.preprocess)
        if self.main and self.data_info:
            from .dataset_splits import print_data_notes

            print_data_notes(self.source, self.data_info)
        clip = model.clip
        cached = tcfg.cache_features and not clip.image_trainable
        boundary = tcfg.cache_features and clip.image_trainable and 0 < clip.boundary  # last blocks fine-tuned
        augment = Augment(tcfg.flip, tcfg.shift)
        model.eval()
        if boundary:  # the frozen part's tokens from the on-disk cache; the last blocks run every step
            self.train_b = BoundaryBatches(model, self.splits["train"], tcfg.batch_size, device=self.device,
                                           desc="encode train", ctx=ctx, progress=self.progress)
            self.val_b = BoundaryBatches(model, self.splits["val"], tcfg.batch_size, device=self.device,
                                         desc="encode val", progress=self.progress) if self.main else None
        else:
            self.train_b = Batches(model, self.splits["train"], tcfg.batch_size, device=self.device, cached=cached,
                                   desc="encode train", ctx=ctx, progress=self.progress, augment=augment)
            self.val_b = Batches(model, self.splits["val"], tcfg.batch_size, device=self.device, cached=cached,
                                 desc="encode val", progress=self.progress) if self.main else None
        self.train_mean = float(self.train_b.ages.mean())

    def split_sizes(self) -> dict[str, int]:
        return {s: len(d) for s, d in self.splits.items()}

    def _restore(self, state: dict) -> None:
        saved = state.get("splits")
        if saved is not None and saved != self.split_sizes():
            raise ValueError(f"{self.out}: the run was started on splits of sizes {saved}, the data now "
                             f"gives {self.split_sizes()}; resume on the same data, or start a new run with another "
                             f"--out")
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.history, self.best_val, self.start = state["history"], state["best_val"], state["epoch"] + 1

    def _step_module(self) -> nn.Module:
        step = TrainStep(self.model)
        if self.ctx.active:
            # the depth-wise conv's weight gradient comes out channels-last (its input is a permuted view): DDP
            # notes that this 576-value bucket copy "may impair performance"; it is negligible here
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            ids = [self.device.index] if self.device.type == "cuda" else None
            # a post-hoc fitted error model takes no part in these steps: DDP must expect its unused weights
            step = nn.parallel.DistributedDataParallel(step, device_ids=ids,
                                                       find_unused_parameters=self.model.cfg.posthoc_correction)
        return step

    def fit(self, epochs: range) -> None:
        """Train ``epochs``; rank 0 validates and saves each one. Stops at a non-finite loss, nothing saved."""
        # seconds count over every session of the run: a resumed run goes on from the last saved epoch's time
        t0 = time.time() - (self.history[-1]["seconds"] if self.history else 0.0)
        for epoch in epochs:
            try:
                sums, steps = train_one_epoch(self.model, self.train_b, self.opt, self.sched, self.params,
                                              self.tcfg.seed, epoch, desc=f"epoch {epoch + 1}/{self.tcfg.epochs}",
                                              progress=self.progress, step=self.step, amp_dtype=self.amp)
                if not all(bool(torch.isfinite(p).all()) for p in self.params):
                    raise NonFiniteLoss(f"the weights became non-finite in epoch {epoch + 1}")
            except NonFiniteLoss as e:
                kept = (f"{self.out / 'last'} keeps epoch {self.history[-1]['epoch']}, the last good one"
                        if self.history else "no epoch had been saved")
                raise NonFiniteLoss(f"{self.out}: {e}; training stopped ({kept}); start a new run (another --out) "
                                    f"with a lower --lr") from None
            if self.main:
                self._end_epoch(epoch, sums, steps, time.time() - t0)
            self.ctx.barrier()  # the next epoch starts when rank 0 has written this one

    def _end_epoch(self, epoch: int, sums: dict, steps: int, seconds: float) -> None:
        """Validate, log and save the epoch: best/ if it improved, the previous last/ as prev/, then last/.

        With the post-hoc correction E is not fitted yet: validation scores y0, the estimate being trained."""
        pred, yv = _evaluate_split(self.model, self.val_b, self.splits["val"], self.device, self.progress,
                                   correct=not self.cfg.posthoc_correction)
        val_mae = mae(yv, pred["age"])
        row = {"epoch": epoch + 1, **{k: v / max(steps, 1) for k, v in sums.items()}, "val_mae": val_mae,
               "val_mae_y0": mae(yv, pred["y0"]), "seconds": seconds}
        self.history.append(row)
        if self.progress:
            tqdm.write(f"epoch {epoch + 1:3d}  loss {row.get('total', float('nan')):.3f}  val MAE {val_mae:.2f} "
                       f"(y0 {row['val_mae_y0']:.2f})")
        if val_mae < self.best_val:
            self.best_val = val_mae
            save_checkpoint(self.model, self.out / "best")
        last = self.out / "last"
        if is_checkpoint(last):
            keep_copy(last, self.out / "prev")
        save_checkpoint(self.model, last, {"epoch": epoch, "optimizer": self.opt.state_dict(),
                                           "scheduler": self.sched.state_dict(), "history": self.history,
                                           "best_val": self.best_val, "tcfg": asdict(self.tcfg),
                                           "splits": self.split_sizes()})
        write_json(self.out / "history.json", self.history, root=self.out)

    def report(self) -> dict:
        """Evaluate best/ on test; write metrics.json and test_predictions.csv; return the report."""
        tcfg, out, best = self.tcfg, self.out, self.out / "best"
        if not is_checkpoint(best):
            raise RuntimeError(f"{out}: no epoch finished, nothing to evaluate (epochs={tcfg.epochs})")
        model = load_model(best, self.device, clip_weights=moved_weights(best, self.cfg.pretrained))
        calibration = self._calibrate(model) if model.cfg.posthoc_correction else None
        test_b = Batches(model, self.splits["test"], tcfg.batch_size, device=self.device, cached=True,
                         desc="encode test", progress=self.progress)
        pred, yt = _evaluate_split(model, test_b, self.splits["test"], self.device, self.progress)
        report = evaluation_report(yt, pred, self.train_mean, self.source, clip_tuned=model.clip.tuned)
        if self.data_info:
            add_dataset_metrics(report, pred, yt, test_b.metas, self.data_info)
        if calibration is not None:
            report["correction"]["fit"] = calibration
        report.update({"split": "test", "checkpoint": str(best), "epochs": tcfg.epochs, "seed": tcfg.seed,
                       "best_val_mae": self.best_val,
                       "train_seconds": self.history[-1]["seconds"] if self.history else 0.0,
                       "processes": self.ctx.world_size, "precision": "bf16" if self.amp is not None else "fp32",
                       "skipped_files": {s: d.skips.skipped for s, d in self.splits.items()},
                       "config": self.cfg.to_dict(), "clip_weights": model.clip.weights.to_dict(),
                       "train_config": asdict(tcfg)})
        write_json(out / "metrics.json", report, root=out)
        write_predictions(out / "test_predictions.csv", test_b.metas, yt, pred, root=out)
        return report

    def _calibrate(self, model: CILF) -> dict:
        """Fit best/'s error model on out-of-fold residuals of the TRAINING split (once; best/ is saved with it).

        Returns what was done (``cilf.run.crossfit.calibrate_correction``), or what best/ says it holds."""
        best = self.out / "best"
        if bool(model.corrector.calibrated):
            return {"method": "crossfit", "note": f"{best} already held the fitted error model"}
        tcfg = self.tcfg
        feats, ages, metas = _split_features(model, self.train_b, self.splits["train"], self.device, self.progress)
        subject = {r["path"]: r.get("subject", "") for r in self.splits["train"].rows}
        groups = [subject.get(m.get("path"), "") for m in metas]
        settings = FitSettings(tcfg.epochs, tcfg.batch_size, tcfg.lr, tcfg.weight_decay, tcfg.warmup_steps, tcfg.seed,
                               str(self.device))
        if self.progress:
            tqdm.write(f"fitting the error model on out-of-fold residuals ({model.cfg.crossfit_folds} folds of the "
                       f"training split)")
        info = calibrate_correction(model, feats, ages, settings, groups)
        save_checkpoint(model, best)
        return info


def add_dataset_metrics(report: dict, pred: dict, y_true, metas: list[dict], info: dict) -> dict:
    """Add to an :func:`evaluation_report` the dataset's own metrics (Adience exact/1-off group accuracy,
    APPA-REAL epsilon-error) of the model and of the train-mean baseline, the baseline's CS@1/CS@5, and
    ``info`` as ``report["dataset"]``. ``y_true``, ``metas``: (m) ages and rows of the images ``pred`` scores."""
    from .dataset_splits import dataset_metrics

    base = np.full(len(metas), report["baseline_train_mean"]["prediction"])
    b = age_report(np.asarray(y_true, dtype=np.float64), base)
    report["model"].update(dataset_metrics(pred["age"], metas))
    report["baseline_train_mean"].update({"cs1": b["cs1"], "cs5": b["cs5"], **dataset_metrics(base, metas)})
    report["dataset"] = info
    return report


def keep_copy(src: Path, dest: Path) -> Path:
    """Replace folder ``dest`` whole by a copy of ``src`` (hard links: cilf never rewrites a file in place)."""
    with atomic_directory(dest) as tmp:
        for f in src.iterdir():
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
    return dest


def write_predictions(path: Path, metas: list[dict], y_true, pred: dict, root: Path | None = None) -> Path:
    """One row per image: path, true age and every prediction column (written whole; ``root``: its folder)."""
    import csv

    cols = list(pred)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "true_age", *cols])
            for i, m in enumerate(metas):
                w.writerow([m.get("path", ""), f"{float(y_true[i]):g}", *[_fmt(pred[c][i]) for c in cols]])

    return atomic_write(path, write, root)


def _fmt(v) -> str:
    return f"{float(v):.4f}" if isinstance(v, (float, np.floating)) else str(v)
