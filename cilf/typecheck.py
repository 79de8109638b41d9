"""Values checked against a dataclass's field types, before they reach the code that uses them.

``coerce_fields(cls, values, text=...)`` is the one gate for configs read from JSON (``text=False``:
values keep their JSON types) and from the command line (``text=True``: every value is a string such
as ``--set width=32``). The rules, the same for every config dataclass:

- ``bool``: only ``true``/``false``. From JSON only real booleans (``"false"`` in quotes is refused,
  never read as true because it is a non-empty string); from text the words true or false (any case).
- ``int``: integers; a float only when integral (64.0 -> 64, 64.5 refused); never a boolean.
- ``float``: floats and integers (1 -> 1.0); never a boolean. Range checks stay with the dataclass.
- ``str``: strings (a path object is taken as its string); ``X | None``: None (JSON null; from text
  the word none or null) or an X.
- ``tuple[X, ...]`` / ``list[X]``: a JSON list (never a bare string); from text items separated by ``sep``.
- ``Literal[...]``, an ``Enum`` type, or a field listed in ``choices`` (or with ``metadata={"choices": ...}``):
  one of the allowed values.

Pure python: imports nothing from cilf and no third-party package.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import numbers
import os
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

_NONE_WORDS = ("none", "null")


class _Refused(Exception):
    """Internal: ``value`` does not fit ``accepted`` (a phrase such as "an integer")."""

    def __init__(self, accepted: str, hint: str = ""):
        super().__init__(accepted)
        self.accepted, self.hint = accepted, hint


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _describe(tp: Any) -> str:
    """What values of annotation ``tp`` look like, in words."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is type(None):
        return "none"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, list) or tp in (tuple, list):
        inner = args[0] if args and (origin is list or len(args) == 1 or args[1] is Ellipsis) else None
        plural = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}.get(inner)
        return f"a list of {plural}" if plural else "a list"
    if tp in (dict,) or origin is dict:
        return "an object (mapping)"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, text: bool, sep: str) -> Any:
    """``value`` as annotation ``tp`` wants it, or _Refused."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (
            value is None or (text and isinstance(value, str) and value.strip().lower() in _NONE_WORDS)
        ):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, text, sep)
            except _Refused:
                continue
        raise _Refused(_describe(tp))
    if tp is type(None):
        if value is None or (text and isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            return None
        raise _Refused("none")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if text and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        hint = " (a string: write true or false without quotes)" if isinstance(value, str) and not text else ""
        raise _Refused("true or false", hint)
    if tp is int:
        if isinstance(value, bool):
            raise _Refused("an integer")
        if isinstance(value, numbers.Integral):
            return int(value)
        if text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                try:
                    value = float(value)
                except ValueError:
                    raise _Refused("an integer") from None
        if isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
            return int(value)
        raise _Refused("an integer")
    if tp is float:
        if isinstance(value, bool):
            raise _Refused("a number")
        if isinstance(value, numbers.Real):
            return float(value)
        if text and isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _Refused("a number") from None
        raise _Refused("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise _Refused("a string")
    if origin is typing.Literal:
        for a in args:
            if (value == a and type(value) is type(a)) or (text and isinstance(value, str) and value == str(a)):
                return a
        raise _Refused(_describe(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for m in tp:
            if value is m or value == m.value or (isinstance(value, str) and value in (m.name, str(m.value))):
                return m
        raise _Refused(_describe(tp))
    if origin in (tuple, list) or tp in (tuple, list):
        if text and isinstance(value, str):
            items = [v for v in value.split(sep) if v]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise _Refused(_describe(tp), " (a bare string is not a list)" if isinstance(value, str) else "")
        if not args:
            kinds = [Any] * len(items)
        elif origin is list or (len(args) == 2 and args[1] is Ellipsis):
            kinds = [args[0]] * len(items)
        elif len(args) == len(items):
            kinds = list(args)
        else:
            raise _Refused(f"a list of {len(args)} items")
        try:
            out = [_coerce(v, k, text, sep) for v, k in zip(items, kinds)]
        except _Refused:
            raise _Refused(_describe(tp)) from None
        return tuple(out) if tuple in (origin, tp) else out
    if tp is dict or origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise _Refused("an object (mapping)")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Refused(_describe(tp))
    return value  # an annotation this module does not know: left to the dataclass


def coerce_value(
    name: str, value: Any, annotation: Any, text: bool = False, choices: Iterable | None = None, sep: str = "|"
) -> Any:
    """``value`` checked (and converted, by the module's rules) for a field ``name`` of type ``annotation``.

    Raises ValueError "NAME expects ACCEPTED, got VALUE" naming the field, the value and what is accepted.
    """
    try:
        out = _coerce(value, annotation, text, sep)
    except _Refused as r:
        what = f" ({_kind(value)})" if not text and not r.hint and not isinstance(value, (int, float)) else ""
        raise ValueError(f"{name} expects {r.accepted}, got {value!r}{what}{r.hint}") from None
    if choices is not None and out is not None:
        allowed = tuple(choices)
        if out not in allowed:
            raise ValueError(f"{name} expects one of {', '.join(repr(c) for c in allowed)}, got {value!r}")
    return out


def field_types(cls: type) -> dict[str, Any]:
    """{field name: resolved annotation} of dataclass ``cls`` (string annotations evaluated; cached per class)."""
    return dict(_field_types(cls))


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints.get(f.name, Any)) for f in dataclasses.fields(cls))


def coerce_fields(
    cls: type,
    values: Mapping[str, Any],
    text: bool = False,
    choices: Mapping[str, Iterable] | None = None,
    sep: str = "|",
    source: str = "",
) -> dict[str, Any]:
    """``values`` checked against dataclass ``cls``'s field types; returns a new dict of converted values.

    ``text``: the values come from text (``--set KEY=VALUE``), so the words true/false/none and numbers
    written as strings are read; otherwise (JSON, python) only values of the right type are accepted (an
    integral float for an int). ``choices``: allowed values per field (also taken from a field's
    ``metadata["choices"]``). ``sep``: the item separator of a list written as text. ``source``: prefixed
    to messages (e.g. "c.json: "). Raises one ValueError naming the field, the value and what is accepted;
    an unknown field name is refused listing the known ones.
    """
    types_ = field_types(cls)
    allowed = {f.name: f.metadata["choices"] for f in dataclasses.fields(cls) if "choices" in f.metadata}
    allowed.update(choices or {})
    unknown = sorted(set(values) - set(types_))
    if unknown:
        raise ValueError(f"{source}unknown {cls.__name__} field(s) {unknown}; fields: {', '.join(sorted(types_))}")
    out = {}
    for name, value in values.items():
        try:
            out[name] = coerce_value(name, value, types_[name], text, allowed.get(name), sep)
        except ValueError as e:
            raise ValueError(f"{source}{e}") from None
    return out
