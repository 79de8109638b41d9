"""The training application's parameters: the optimisation budget every trainer shares, and one run's settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cilf.model.config import check_ranges
from cilf.typecheck import coerce_fields


@dataclass
class Budget:
    """The optimisation budget every trainer shares (training, cross-fitting's fold models, benchmarks, curves,
    pretraining): epochs, images per step, AdamW's peak lr and weight decay, warm-up steps, seed, device."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    seed: int = 0
    device: str = "auto"  # auto (CUDA when present, else CPU), cpu, cuda, cuda:N


PRECISIONS = ("auto", "fp32", "bf16")
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
)


@dataclass
class TrainConfig(Budget):
    """One training run: its :class:`Budget`, its data (SynthAge, a manifest or a dataset's protocol fold), the run
    folder and how the images are fed."""

    out: str = "runs/cilf"
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
    shift: int = 0  # augment the training images: random shift of up to this many pixels (cilf.app.augment)

    def __post_init__(self) -> None:
        # every value typed by its field first (cilf.typecheck): "false" in quotes is not a switch, 64.5 not a count
        if type(self.device).__name__ == "device":  # a torch.device, as pick_device returns it
            self.device = str(self.device)
        typed = coerce_fields(type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        for name, value in typed.items():
            setattr(self, name, value)
        check_ranges(
            self,
            {
                "epochs": 1,
                "batch_size": 2,
                "warmup_steps": 1,
                "n_images": 50,
                "stop_after_epochs": 1,
                "weight_decay": 0,
                "shift": 0,
            },
            ("lr", "backbone_lr_scale"),
        )
        if self.dataset is None and (self.root is not None or self.protocol is not None):
            raise ValueError("root and protocol belong to a dataset: pass --dataset NAME with them")
        if self.dataset is not None and self.data is not None:
            raise ValueError("give either --data (a manifest CSV) or --dataset NAME, not both")
        if self.fold < 0 or not 0 < self.val_frac < 1:
            raise ValueError(f"fold must be >= 0 (got {self.fold}) and val_frac in (0, 1) (got {self.val_frac})")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


def saved_train_config(values: Any, source: str = "") -> dict[str, Any]:
    """The TrainConfig fields of a run's saved settings (``train_state``'s ``tcfg``), typed by their fields.

    Fields this version does not know (a run of another version) are left out; a value of the wrong type
    (``"false"`` in quotes, 64.5 for a count) is refused: ValueError naming ``source``, the field and the value."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}the saved run settings are not a mapping of fields ({type(values).__name__})")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return coerce_fields(TrainConfig, {k: v for k, v in values.items() if k in names}, source=source)
