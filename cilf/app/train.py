"""Training: deterministic by seed, resumable from the last epoch's checkpoint, metrics as JSON.

``train(cfg, tcfg)`` takes the run folder (:mod:`cilf.app.runfolder`), loads the splits (:mod:`cilf.app.splits`),
runs the epochs with the engine (:mod:`cilf.app.engine`), keeps the best-on-validation checkpoint and evaluates
it on test (:mod:`cilf.app.evaluate`), fitting the post-hoc error model first (:mod:`cilf.app.crossfit`).
"""

from __future__ import annotations

import csv
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cilf.app.augment import Augment, needs_pixels
from cilf.app.batches import Batches, BoundaryBatches
from cilf.app.crossfit import calibrate_correction
from cilf.app.distributed import DistContext, init_distributed, shutdown
from cilf.app.engine import TrainStep, amp_dtype_for, train_one_epoch
from cilf.app.evaluate import add_dataset_metrics, evaluation_report
from cilf.app.features import boundary_features, extract_features
from cilf.app.infer import predict_features
from cilf.app.params import RESUME_FIXED, Budget, TrainConfig, correction_fit_of, saved_train_config
from cilf.app.runfolder import claim_run_folder, discard_unused_run_folder, is_fresh, keep_copy
from cilf.app.schedule import NonFiniteLoss, build_optimizer, check_resume_settings, session_epochs
from cilf.app.splits import data_warnings, load_splits
from cilf.data.datasets import RecordDataset
from cilf.data.splits import print_data_notes
from cilf.io import atomic_write, write_json
from cilf.metrics import mae
from cilf.model.cilf_model import CILF
from cilf.model.clip import BoundaryTokens
from cilf.model.config import CILFConfig
from cilf.persist.checkpoint import is_checkpoint, load_model, load_train_state, moved_weights, save_checkpoint
from cilf.persist.factory import create_model
from cilf.utils import seed_everything


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
    """One run in ``tcfg.out``. A folder that was new or empty and saved no epoch (the data could not be
    opened, the first epoch failed or was interrupted) is left as it was: what this run put there is removed."""
    check_augment(cfg, tcfg)
    out = Path(tcfg.out)
    say = _say(ctx)
    fresh, existed = ctx.is_main and is_fresh(out), out.exists()
    lock = claim_run_folder(out, resume, force, ctx, say)
    try:
        seed_everything(tcfg.seed)
        source, state = _resume_point(out, cfg, tcfg, say) if resume else (None, None)
        model = (
            load_model(source, ctx.device, clip_weights=moved_weights(source, cfg.pretrained)).train()
            if source is not None
            else create_model(cfg).to(ctx.device)
        )
        run = _Session(cfg, tcfg, ctx, out, model, state)
        epochs = session_epochs(run.start, tcfg.epochs, tcfg.stop_after_epochs)
        run.fit(epochs)
        if not ctx.is_main:
            return {"rank": ctx.rank, "report": "written by rank 0", "out": str(out)}
        if epochs.stop < tcfg.epochs:
            return {"stopped_after_epoch": epochs.stop, "history": run.history, "checkpoint": str(out / "last")}
        return run.report()
    except BaseException:
        if lock is not None:
            lock.release()
            lock = None
        if fresh:
            discard_unused_run_folder(out, remove_folder=not existed)
        raise
    finally:
        if lock is not None:
            lock.release()


def _resume_point(out: Path, cfg: CILFConfig, tcfg: TrainConfig, say) -> tuple[Path | None, dict | None]:
    """The verified checkpoint to resume from and its train state: last/, else prev/; (None, None) if none.

    Refuses (naming the field) when the run was started with another model config or settings.
    """
    d = next((d for d in (out / "last", out / "prev") if d.exists()), None)
    if d is None:
        say(f"{out}: no saved epoch to resume; starting from epoch 1")
        return None, None
    state = load_train_state(d)
    settings = saved_train_config(state.get("tcfg", {}), source=f"{d}: saved run settings: ")
    saved, moved = CILFConfig.load_saved(d / "config.json")
    # a run started before the correction-fit settings became training options kept them in its model config
    settings = {**saved_train_config(moved, source=f"{d}/config.json: "), **settings}
    if moved_weights(d, cfg.pretrained):  # the CLIP weights file was moved: same content (SHA-256), new path
        saved = saved.replace(pretrained=cfg.pretrained)
    if saved.to_dict() != cfg.to_dict():
        raise ValueError(f"{d}: the run was started with another model config; resume with the same settings")
    check_resume_settings(d, settings, asdict(tcfg), RESUME_FIXED, same={"data": _same_path, "root": _same_path})
    return d, state


def _same_path(a: str | None, b: str | None) -> bool:
    return a == b or (a is not None and b is not None and Path(a).resolve() == Path(b).resolve())


# ---- one session of training ----


class _Session:
    """The data, optimiser and bookkeeping of one training session (rank 0 validates and writes)."""

    def __init__(
        self, cfg: CILFConfig, tcfg: TrainConfig, ctx: DistContext, out: Path, model: CILF, state: dict | None
    ):
        self.cfg, self.tcfg, self.ctx, self.out, self.model = cfg, tcfg, ctx, out, model
        self.device, self.main = ctx.device, ctx.is_main
        self.progress = tcfg.progress and self.main
        self._load_data()
        model.clip.warm_text_cache(self.progress)  # the prompts' features, once, before the first step
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt, self.sched = build_optimizer(
            model,
            lr=tcfg.lr,
            weight_decay=tcfg.weight_decay,
            warmup_steps=tcfg.warmup_steps,
            total_steps=tcfg.epochs * len(self.train_b),
            backbone_lr_scale=tcfg.backbone_lr_scale,
        )
        self.history, self.best_val, self.start = [], float("inf"), 0
        if state is not None:
            self._restore(state)
        self.step = self._step_module()
        self.amp = amp_dtype_for(tcfg.precision, self.device)

    def _load_data(self) -> None:
        tcfg, ctx, model = self.tcfg, self.ctx, self.model
        with ctx.main_first():  # rank 0 renders SynthAge (once); the others read it
            self.splits, self.source, self.data_info = load_splits(
                replace(tcfg, progress=self.progress), model.preprocess
            )
        if self.main and self.data_info:
            print_data_notes(self.source, self.data_info)
        self.data_warnings = [] if tcfg.dataset else data_warnings(self.splits)  # --dataset: in data_info
        if self.main:
            for w in self.data_warnings:  # a manifest's leaks (an image in two splits, two ages), with counts
                print(f"warning: {w}", file=sys.stderr, flush=True)
        clip = model.clip
        cached = tcfg.cache_features and not clip.image_trainable
        boundary = tcfg.cache_features and clip.image_trainable and 0 < clip.boundary  # last blocks fine-tuned
        augment = Augment(tcfg.flip, tcfg.shift)
        model.eval()
        if boundary:  # the frozen part's tokens from the on-disk cache; the last blocks run every step
            self.train_b = BoundaryBatches(
                model,
                self.splits["train"],
                tcfg.batch_size,
                device=self.device,
                desc="encode train",
                ctx=ctx,
                progress=self.progress,
            )
            self.val_b = (
                BoundaryBatches(
                    model,
                    self.splits["val"],
                    tcfg.batch_size,
                    device=self.device,
                    desc="encode val",
                    progress=self.progress,
                )
                if self.main
                else None
            )
        else:
            self.train_b = Batches(
                model,
                self.splits["train"],
                tcfg.batch_size,
                device=self.device,
                cached=cached,
                desc="encode train",
                ctx=ctx,
                progress=self.progress,
                augment=augment,
            )
            self.val_b = (
                Batches(
                    model,
                    self.splits["val"],
                    tcfg.batch_size,
                    device=self.device,
                    cached=cached,
                    desc="encode val",
                    progress=self.progress,
                )
                if self.main
                else None
            )
        self.train_mean = float(self.train_b.ages.mean())

    def split_sizes(self) -> dict[str, int]:
        return {s: len(d) for s, d in self.splits.items()}

    def _restore(self, state: dict) -> None:
        saved = state.get("splits")
        if saved is not None and saved != self.split_sizes():
            raise ValueError(
                f"{self.out}: the run was started on splits of sizes {saved}, the data now "
                f"gives {self.split_sizes()}; resume on the same data, or start a new run with another "
                f"--out"
            )
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
            step = nn.parallel.DistributedDataParallel(
                step, device_ids=ids, find_unused_parameters=self.model.cfg.posthoc_correction
            )
        return step

    def fit(self, epochs: range) -> None:
        """Train ``epochs``; rank 0 validates and saves each one. Stops at a non-finite loss, nothing saved."""
        # seconds count over every session of the run: a resumed run goes on from the last saved epoch's time
        t0 = time.time() - (self.history[-1]["seconds"] if self.history else 0.0)
        for epoch in epochs:
            try:
                sums, steps = train_one_epoch(
                    self.model,
                    self.train_b,
                    self.opt,
                    self.sched,
                    self.params,
                    self.tcfg.seed,
                    epoch,
                    desc=f"epoch {epoch + 1}/{self.tcfg.epochs}",
                    progress=self.progress,
                    step=self.step,
                    amp_dtype=self.amp,
                )
                if not all(bool(torch.isfinite(p).all()) for p in self.params):
                    raise NonFiniteLoss(f"the weights became non-finite in epoch {epoch + 1}")
            except NonFiniteLoss as e:
                kept = (
                    f"{self.out / 'last'} keeps epoch {self.history[-1]['epoch']}, the last good one"
                    if self.history
                    else "no epoch had been saved"
                )
                raise NonFiniteLoss(
                    f"{self.out}: {e}; training stopped ({kept}); start a new run (another --out) with a lower --lr"
                ) from None
            if self.main:
                self._end_epoch(epoch, sums, steps, time.time() - t0)
            self.ctx.barrier()  # the next epoch starts when rank 0 has written this one

    def _end_epoch(self, epoch: int, sums: dict, steps: int, seconds: float) -> None:
        """Validate, log and save the epoch: best/ if it improved, the previous last/ as prev/, then last/.

        With the post-hoc correction E is not fitted yet: validation scores y0, the estimate being trained."""
        pred, yv = _evaluate_split(
            self.model,
            self.val_b,
            self.splits["val"],
            self.device,
            self.progress,
            correct=not self.cfg.posthoc_correction,
        )
        val_mae = mae(yv, pred["age"])
        row = {
            "epoch": epoch + 1,
            **{k: v / max(steps, 1) for k, v in sums.items()},
            "val_mae": val_mae,
            "val_mae_y0": mae(yv, pred["y0"]),
            "seconds": seconds,
        }
        self.history.append(row)
        if self.progress:
            tqdm.write(
                f"epoch {epoch + 1:3d}  loss {row.get('total', float('nan')):.3f}  val MAE {val_mae:.2f} "
                f"(y0 {row['val_mae_y0']:.2f})"
            )
        if val_mae < self.best_val:
            self.best_val = val_mae
            save_checkpoint(self.model, self.out / "best")
        last = self.out / "last"
        if is_checkpoint(last):
            keep_copy(last, self.out / "prev")
        save_checkpoint(
            self.model,
            last,
            {
                "epoch": epoch,
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "history": self.history,
                "best_val": self.best_val,
                "tcfg": asdict(self.tcfg),
                "splits": self.split_sizes(),
            },
        )
        write_json(self.out / "history.json", self.history, root=self.out)

    def report(self) -> dict:
        """Evaluate best/ on test; write metrics.json and test_predictions.csv; return the report."""
        tcfg, out, best = self.tcfg, self.out, self.out / "best"
        if not is_checkpoint(best):
            raise RuntimeError(f"{out}: no epoch finished, nothing to evaluate (epochs={tcfg.epochs})")
        model = load_model(best, self.device, clip_weights=moved_weights(best, self.cfg.pretrained))
        calibration = self._calibrate(model) if model.cfg.posthoc_correction else None
        test_b = Batches(
            model,
            self.splits["test"],
            tcfg.batch_size,
            device=self.device,
            cached=True,
            desc="encode test",
            progress=self.progress,
        )
        pred, yt = _evaluate_split(model, test_b, self.splits["test"], self.device, self.progress)
        report = evaluation_report(yt, pred, self.train_mean, self.source, clip_tuned=model.clip.tuned)
        if self.data_info:
            add_dataset_metrics(report, pred, yt, test_b.metas, self.data_info)
        if calibration is not None:
            report["correction"]["fit"] = calibration
        report.update(
            {
                "split": "test",
                "checkpoint": str(best),
                "epochs": tcfg.epochs,
                "seed": tcfg.seed,
                "best_val_mae": self.best_val,
                "train_seconds": self.history[-1]["seconds"] if self.history else 0.0,
                "processes": self.ctx.world_size,
                "precision": "bf16" if self.amp is not None else "fp32",
                "skipped_files": {s: d.skips.skipped for s, d in self.splits.items()},
                "data_warnings": self.data_warnings,
                "config": self.cfg.to_dict(),
                "clip_weights": model.clip.weights.to_dict(),
                "train_config": asdict(tcfg),
            }
        )
        write_json(out / "metrics.json", report, root=out)
        write_predictions(out / "test_predictions.csv", test_b.metas, yt, pred, root=out)
        return report

    def _calibrate(self, model: CILF) -> dict:
        """Fit best/'s error model on out-of-fold residuals of the TRAINING split (once; best/ is saved with it).

        Returns what was done (``cilf.app.crossfit.calibrate_correction``), or what best/ says it holds."""
        best = self.out / "best"
        if bool(model.corrector.calibrated):
            return {"method": "crossfit", "note": f"{best} already held the fitted error model"}
        tcfg = self.tcfg
        feats, ages, metas = _split_features(model, self.train_b, self.splits["train"], self.device, self.progress)
        subject = {r["path"]: r.get("subject", "") for r in self.splits["train"].rows}
        groups = [subject.get(m.get("path"), "") for m in metas]
        settings = Budget(
            tcfg.epochs, tcfg.batch_size, tcfg.lr, tcfg.weight_decay, tcfg.warmup_steps, tcfg.seed, str(self.device)
        )
        if self.progress:
            tqdm.write(
                f"fitting the error model on out-of-fold residuals ({tcfg.crossfit_folds} folds of the training split)"
            )
        info = calibrate_correction(model, feats, ages, settings, groups, correction_fit_of(tcfg))
        save_checkpoint(model, best)
        return info


def write_predictions(path: Path, metas: list[dict], y_true, pred: dict, root: Path | None = None) -> Path:
    """One row per image: path, true age and every prediction column (written whole; ``root``: its folder)."""
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
