"""The training application's parameters: the optimisation budget every trainer shares, and one run's settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cilf.options import check_options, option
from cilf.typecheck import coerce_fields

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"


@dataclass
class Budget:
    """The optimisation budget every trainer shares (training, cross-fitting's fold models, benchmarks, curves,
    pretraining): epochs, images per step, AdamW's peak lr and weight decay, warm-up steps, seed, device."""

    epochs: int = option(30, "training epochs", low=1)
    batch_size: int = option(64, "images per step", low=2)
    lr: float = option(2e-3, "AdamW peak learning rate (linear warm-up, cosine decay)", positive=True)
    weight_decay: float = option(1e-4, "AdamW weight decay", low=0)
    warmup_steps: int = option(50, "steps of linear learning-rate warm-up", low=1)
    seed: int = option(0, "seed of weights, shuffles and noise", low=0)
    device: str = option("auto", DEVICE_HELP)


ERROR_FEATURES = ("final", "out_of_fold")


@dataclass
class CorrectionFit:
    """How the post-hoc correction (``CILFConfig.correction_fit="crossfit"``, docs/method.md section 7) is fitted
    after the age model: K cross-fitting folds of the training split, the error model's epochs and AdamW lr, and
    the held-out gate."""

    crossfit_folds: int = option(5, "K folds of the training split for the out-of-fold first estimates", low=2)
    error_epochs: int = option(30, "epochs of the post-hoc fit of the error model E", low=1)
    error_lr: float = option(1e-3, "AdamW learning rate of that fit", positive=True)
    correction_gate: bool = option(
        True,
        "the held-out gate: correct only where that did not raise the MAE on a held-out cross-fitting fold "
        "(else x* = y0)",
    )
    error_features: str = option(
        "final",
        "the fused features E learns from: final (the final model's, one feature space, in-sample) or out_of_fold "
        "(each from the fold model that did not train on the image: K feature spaces)",
        choices=ERROR_FEATURES,
    )

    def __post_init__(self) -> None:
        check_options(self)


def correction_fit_of(settings: Any) -> CorrectionFit:
    """The :class:`CorrectionFit` fields of any settings object that holds them (TrainConfig, BenchConfig, ...)."""
    return CorrectionFit(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(CorrectionFit)})


PRECISIONS = ("auto", "fp32", "bf16")


def stop_after_option():
    """The ``stop_after_epochs`` field every resumable run has (``--stop-after N``)."""
    return option(
        None,
        "stop after N epochs of this session (continue later with --resume)",
        low=1,
        metavar="N",
        flag="--stop-after",
    )


RUN_MARKER = "run.json"
# what a resumed run must keep (its data, split and optimisation); device, progress and stop_after_epochs may change
RESUME_FIXED = (
    "data",
    "n_images",
    "data_seed",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "seed",
    "precision",
    "dataset",
    "root",
    "protocol",
    "fold",
    "val_frac",
    "backbone_lr_scale",
    "flip",
    "shift",
    "crossfit_folds",
    "error_epochs",
    "error_lr",
    "correction_gate",
)


@dataclass
class TrainConfig(CorrectionFit, Budget):
    """One training run: its :class:`Budget` and :class:`CorrectionFit`, its data (SynthAge, a manifest or a dataset's protocol fold), the run
    folder and how the images are fed."""

    out: str = option("runs/cilf", "run folder")
    data: str | None = option(None, "CSV manifest (path, age, subject, split) instead of SynthAge")
    n_images: int = option(10000, "SynthAge size", low=50)
    data_seed: int = option(0, "SynthAge seed; with --dataset, the seed of the carved validation split", low=0)
    dataset: str | None = option(None, "a dataset in its official layout instead of SynthAge", metavar="NAME")
    root: str | None = option(None, "its folder, or a 'cilf align' copy of it (default $CILF_DATASETS/<dataset>)")
    protocol: str | None = option(None, "its protocol (default: the dataset's standard one)")
    fold: int = option(0, "fold of the protocol (0-based)", low=0)
    val_frac: float = option(
        0.1,
        "share of the training subjects carved off (seeded by --data-seed) for validation when the protocol "
        "has no validation split",
    )
    # encode the frozen part of CLIP once: its features, or with unfreeze_last_blocks the tokens entering the first
    # trainable block (on disk); ignored when the whole image tower trains
    cache_features: bool = option(
        True,
        "the feature cache: the frozen part of CLIP encoded once, on disk (with unfreeze_last_blocks the tokens "
        "entering the first trainable block); off, images are encoded every epoch",
        flag="--no-cache",
    )
    backbone_lr_scale: float = option(
        0.2,
        "fine-tuned CLIP blocks (--set unfreeze_last_blocks=K or freeze_image=false) train at lr x this",
        positive=True,
    )
    progress: bool = option(True, "progress bars")
    stop_after_epochs: int | None = stop_after_option()
    precision: str = option(
        "auto", "bf16 autocast (FFTs stay float32); auto = bf16 on a CUDA GPU that has it", choices=PRECISIONS
    )
    flip: bool = option(
        False,
        "augment the training images with a random horizontal flip (training from pixels: --set "
        "freeze_image=false, or --no-cache)",
    )
    shift: int = option(
        0, "augment the training images with a random shift of up to PX pixels (as --flip)", low=0, metavar="PX"
    )

    def __post_init__(self) -> None:
        # every value typed by its field first (cilf.typecheck): "false" in quotes is not a switch, 64.5 not a count
        if type(self.device).__name__ == "device":  # a torch.device, as pick_device returns it
            self.device = str(self.device)
        typed = coerce_fields(type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        for name, value in typed.items():
            setattr(self, name, value)
        check_options(self)
        if self.dataset is None and (self.root is not None or self.protocol is not None):
            raise ValueError("root and protocol belong to a dataset: pass --dataset NAME with them")
        if self.dataset is not None and self.data is not None:
            raise ValueError("give either --data (a manifest CSV) or --dataset NAME, not both")
        if not 0 < self.val_frac < 1:
            raise ValueError(f"val_frac must lie in (0, 1), got {self.val_frac}")


def saved_train_config(values: Any, source: str = "") -> dict[str, Any]:
    """The TrainConfig fields of a run's saved settings (``train_state``'s ``tcfg``), typed by their fields.

    Fields this version does not know (a run of another version) are left out; a value of the wrong type
    (``"false"`` in quotes, 64.5 for a count) is refused: ValueError naming ``source``, the field and the value."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}the saved run settings are not a mapping of fields ({type(values).__name__})")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return coerce_fields(TrainConfig, {k: v for k, v in values.items() if k in names}, source=source)
