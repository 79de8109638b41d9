"""Command-line options made from the parameter dataclasses: one flag per field, with the field's type, default
and choices, and its help from :data:`HELP` (one place), so the command line never restates a field by hand.

``add_options(parser, TrainConfig)`` adds ``--epochs``, ``--batch-size``, ... (``--no-cache`` for
``cache_features``, ``--quiet`` for ``progress``); ``options(TrainConfig, args)`` reads them back as the
dataclass's keyword arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass

from cilf.app.params import PRECISIONS

DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda or cuda:N"


@dataclass(frozen=True)
class Opt:
    """How one field appears on the command line: ``help``; ``flag`` (default: the field's name with dashes);
    ``invert``: a boolean field set False by its flag (``--no-cache`` for ``cache_features``); ``choices``."""

    help: str
    flag: str | None = None
    metavar: str | None = None
    invert: bool = False
    choices: tuple | None = None


HELP: dict[str, Opt] = {
    # the budget (cilf.app.params.Budget)
    "epochs": Opt("training epochs"),
    "batch_size": Opt("images per step"),
    "lr": Opt("AdamW peak learning rate (warm-up, cosine decay)"),
    "weight_decay": Opt("AdamW weight decay"),
    "warmup_steps": Opt("optimiser steps of linear learning-rate warm-up"),
    "seed": Opt("seed of weights, shuffles and noise"),
    "device": Opt(DEVICE_HELP),
    # the data of a run
    "data": Opt("CSV manifest (path, age, subject, split) instead of SynthAge"),
    "dataset": Opt("a dataset in its official layout instead of SynthAge (python -m cilf data check)", metavar="NAME"),
    "root": Opt("its folder, or a 'cilf align' copy of it (default $CILF_DATASETS/<dataset>)"),
    "protocol": Opt("its protocol (default: the dataset's standard one)"),
    "fold": Opt("fold of the protocol (0-based)"),
    "val_frac": Opt(
        "share of the training subjects carved off (seeded by --data-seed) for validation when the protocol has "
        "no validation split"
    ),
    "n_images": Opt("SynthAge size"),
    "data_seed": Opt("SynthAge seed; with --dataset, the seed of the carved validation split"),
    # how a run trains
    "out": Opt("run folder"),
    "backbone_lr_scale": Opt(
        "fine-tuned CLIP blocks (--set unfreeze_last_blocks=K or freeze_image=false) train at lr x this"
    ),
    "cache_features": Opt(
        "encode images on the fly every epoch (with unfreeze_last_blocks: no boundary cache)",
        flag="no-cache",
        invert=True,
    ),
    "progress": Opt("no progress bars", flag="quiet", invert=True),
    "stop_after_epochs": Opt(
        "stop after N epochs of this session (continue later with --resume)", flag="stop-after", metavar="N"
    ),
    "precision": Opt("bf16 autocast (FFTs stay float32); auto = bf16 on a CUDA GPU that has it", choices=PRECISIONS),
    "flip": Opt(
        "augment the training images with a random horizontal flip (training from pixels: --set "
        "freeze_image=false, or --no-cache)"
    ),
    "shift": Opt("augment the training images with a random shift of up to PX pixels (as --flip)", metavar="PX"),
}


def finite_float(text: str) -> float:
    """argparse type: a float that is neither NaN nor infinite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _base_type(annotation) -> type:
    """int, float, str or bool from a field's annotation (``int | None`` -> int)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return args[0]
    return annotation


def _flag(name: str, opt: Opt) -> str:
    return "--" + (opt.flag or name.replace("_", "-"))


def add_options(parser: argparse.ArgumentParser, cls, names: typing.Iterable[str] | None = None) -> None:
    """Add one option per field of dataclass ``cls`` (those in ``names``, default every field :data:`HELP`
    describes), with the field's default."""
    hints = typing.get_type_hints(cls)
    default = cls()
    wanted = list(names) if names is not None else [f.name for f in dataclasses.fields(cls) if f.name in HELP]
    for name in wanted:
        opt, kind = HELP[name], _base_type(hints[name])
        value = getattr(default, name)
        if kind is bool:
            action = "store_false" if opt.invert else "store_true"
            parser.add_argument(_flag(name, opt), dest=name, action=action, default=value, help=opt.help)
            continue
        parser.add_argument(
            _flag(name, opt),
            dest=name,
            type=finite_float if kind is float else kind,
            default=value,
            metavar=opt.metavar,
            choices=opt.choices,
            help=opt.help,
        )


def options(cls, args: argparse.Namespace, **extra) -> dict:
    """The keyword arguments of ``cls`` that ``args`` holds (as :func:`add_options` named them), plus ``extra``."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {**{k: v for k, v in vars(args).items() if k in names}, **extra}
