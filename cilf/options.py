"""Parameter dataclasses as command-line options: each field says once what it means and its range.

``option(default, help, low=..., positive=...)`` declares a field with its help and range in the field's
metadata; :func:`check_options` enforces the ranges when the dataclass is built, and :func:`add_options`
adds the fields to an argparse parser (``--kebab-case``, typed by the annotation, default from the class,
checked as parsed), so the command line never restates a field. :func:`from_args` builds the dataclass back.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Iterable
from typing import Any

NO_HELP = "(no help)"


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    low: float | None = None,
    positive: bool = False,
    choices: tuple | None = None,
    metavar: str | None = None,
    flag: str | None = None,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its help text and range: ``low`` the least value, ``positive`` > 0, ``choices``;
    ``flag``: its command-line name when not ``--field-name`` (``--no-field-name`` for a switch that is on)."""
    meta = {"help": help, "low": low, "positive": positive, "choices": choices, "metavar": metavar, "flag": flag}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_meta(cls: type, name: str) -> dict:
    """The metadata of field ``name`` as first declared with :func:`option` along ``cls``'s MRO (a subclass that
    only changes the default keeps the help and range of its base)."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "help" in f.metadata:
            return dict(f.metadata)
    return {}


def check_options(obj: Any) -> None:
    """ValueError naming the first field of dataclass ``obj`` that is a NaN or infinite float, below its ``low``,
    not positive where it must be, or not one of its ``choices``; None means "not set" and is left alone."""
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), field_meta(type(obj), f.name)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value}")
        if meta.get("low") is not None and isinstance(value, (int, float)) and value < meta["low"]:
            raise ValueError(f"{f.name} must be at least {meta['low']}, got {value}")
        if meta.get("positive") and isinstance(value, (int, float)) and not value > 0:
            raise ValueError(f"{f.name} must be positive, got {value}")
        if meta.get("choices") and isinstance(value, str) and value not in meta["choices"]:
            raise ValueError(f"{f.name} must be one of {tuple(meta['choices'])}, got {value!r}")


def at_least(low: int):
    """argparse type: an integer of at least ``low`` (checked as parsed, one line naming the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small: give an integer of at least {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def finite_float(text: str) -> float:
    """argparse type: a float that is neither NaN nor infinite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _base_type(annotation: Any) -> Any:
    """int for ``int | None``; the annotation itself otherwise; TypeError for what a single option cannot hold."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"add_options: {annotation} has more than one type besides None")
        annotation = args[0]
    if annotation not in (bool, int, float, str):
        raise TypeError(f"add_options: a {annotation} field is not an option (add it by hand)")
    return annotation


def cli_flag(cls: type, name: str) -> str:
    """The command-line flag of field ``name`` of ``cls``: ``flag`` from its :func:`option`, else ``--name``, or
    ``--no-name`` for a switch that is on by default (what turns it off)."""
    meta = field_meta(cls, name)
    if meta.get("flag"):
        return meta["flag"]
    default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
    switch_on = typing.get_type_hints(cls)[name] is bool and default is True
    return ("--no-" if switch_on else "--") + name.replace("_", "-")


def positive_float(text: str) -> float:
    """argparse type: a finite float above 0."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: Iterable[str],
    *,
    defaults: Any = None,
    help: dict[str, str] | None = None,
) -> None:
    """Add an option for each field of dataclass ``cls`` in ``names`` (in that order), named by :func:`cli_flag`:
    type from the annotation (an integer with ``low`` or ``positive`` and a positive float are range-checked as
    parsed, every float must be finite), default from ``defaults`` (an instance; else ``cls()``), help from the
    field (``help`` may say it for this command). A switch that is off by default is ``--name``; one that is on
    is ``--no-name``, its help prefixed "turn off"."""
    hints = typing.get_type_hints(cls)
    base = defaults if defaults is not None else cls()
    for name in names:
        meta = field_meta(cls, name)
        text = (help or {}).get(name) or meta.get("help") or NO_HELP
        default = getattr(base, name)
        kind = _base_type(hints[name])
        flag = cli_flag(cls, name)
        kw: dict[str, Any] = {"dest": name}
        if kind is bool:
            if meta.get("metavar"):
                raise TypeError(f"add_options: the switch {name} takes no metavar")
            if flag.startswith("--no-") != bool(default):
                raise TypeError(f"add_options: {flag} does not match the default {default!r} of {name}")
            action = "store_false" if default else "store_true"
            parser.add_argument(flag, action=action, help=("turn off " + text) if default else text, **kw)
            continue
        kw["help"] = text
        if meta.get("metavar"):
            kw["metavar"] = meta["metavar"]
        if kind is int:
            low = meta.get("low")
            low = max(1, low if low is not None else 1) if meta.get("positive") else low
            kw["type"] = at_least(int(low)) if low is not None else int
        elif kind is float:
            kw["type"] = positive_float if meta.get("positive") else finite_float
        elif meta.get("choices"):
            kw["choices"] = list(meta["choices"])
        parser.add_argument(flag, default=default, **kw)


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """``cls`` built from the fields of ``args`` that it has (those a command did not add take their defaults),
    with ``extra`` on top."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**values, **extra})
