"""A notebook's key measured numbers, written to ``figures/NN_name.json`` and checked against the values
recorded in ``notebooks/expected/NN_name.json``, so that a change that moves a result beyond its
tolerance fails the notebook (and nbval) with the moved number named.

Comparison rules (``compare``):
- floats: |value - expected| <= tolerance. The tolerance is the one stored in the expected file; the
  notebook passes one where it has a measured spread for the number (e.g. 3 x a seed-to-seed sd);
  otherwise ``record`` stores the default rule ``max(ABS_FLOOR, REL * |expected|)`` (see
  ``default_tolerance`` for the measurement behind it);
- ints: exactly, unless a tolerance is stored for that int (a count that depends on thresholds);
- strings and bools: exactly;
- a number missing from this run, or new in it, is a mismatch too.
Only FAST runs are checked: the expected values are FAST-mode ones.

Recording and checking every notebook at once is repository tooling: ``python -m tools.key_numbers record|check``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from cilf.io import json_text, write_text

# Default tolerance of a float: max(ABS_FLOOR, REL * |value|), tight, because FAST runs are deterministic:
# re-training the FAST demo model with 1 and 2 threads moved its validation MAE by at most 5e-7 years, and forcing
# another CPU's kernels (scalar ATen, SSE4 MKL and oneDNN) or another CPU (AVX-512 against AVX2, Intel against
# AMD) from empty caches moved the notebooks' key numbers by at most 5.2e-5 years and no verdict. 0.005 y is about
# 100x that spread and 20x below a +0.1 y bias; a number with real run-to-run noise (a timing), or one whose
# training amplifies a float16 step of the cached features (notebook 06's L1 regression peer), passes its own
# measured tolerance. Mechanisms are recorded as differences too (x* - y0, with - without the contrastive loss, each claim's
# effect), so a mechanism that stops working or starts to hurt fails under the number's name
# (docs/statistics.md, "Key numbers").
ABS_FLOOR = 0.005
REL = 0.001
RECORD_HINT = "if the change is intended, re-record with `python -m tools.key_numbers record`"
Number = float | int | str | bool


class KeyNumbersMoved(AssertionError):
    """One or more key numbers moved beyond their tolerance; the message lists every one."""


def default_expected_dir() -> Path:
    """``notebooks/expected`` of the checkout this package was imported from (absent when pip-installed)."""
    import cilf

    return Path(cilf.__file__).resolve().parents[1] / "notebooks" / "expected"


def default_tolerance(value: float) -> float:
    """The documented default rule for a float with no measured spread: max(ABS_FLOOR, REL * |value|)."""
    return max(ABS_FLOOR, REL * abs(value))


def _plain(name: str, key: str, v) -> Number:
    """A JSON-able python scalar from a python/numpy/torch scalar; ValueError naming a bad number."""
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, bool | str):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{name}: key number {key} = {v} is not finite")
        return float(v)
    raise TypeError(f"{name}: key number {key} is a {type(v).__name__}; give a float, int, str or bool")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return repr(v) if isinstance(v, str) else str(v)


def compare(name: str, numbers: dict, expected: dict, tolerances: dict | None = None) -> list[str]:
    """Mismatch lines ("NN_name: key = 5.91, expected 5.53 +- 0.1") of ``numbers`` against ``expected``
    (both {key: scalar}); ``tolerances`` {key: float} as stored in the expected file (missing floats
    get ``default_tolerance``). Empty list: everything within tolerance."""
    tolerances = tolerances or {}
    out = []
    for key, exp in expected.items():
        if key not in numbers:
            out.append(f"{name}: {key} missing from this run, expected {_fmt(exp)}")
            continue
        got = numbers[key]
        if isinstance(exp, bool) or isinstance(exp, str) or isinstance(got, bool | str):
            if type(got) is not type(exp) or got != exp:
                out.append(f"{name}: {key} = {_fmt(got)}, expected {_fmt(exp)}")
        elif isinstance(exp, int) and key not in tolerances:
            if got != exp:
                out.append(f"{name}: {key} = {_fmt(got)}, expected {_fmt(exp)} exactly")
        else:
            tol = float(tolerances.get(key, default_tolerance(float(exp))))
            if not abs(float(got) - float(exp)) <= tol:
                out.append(f"{name}: {key} = {_fmt(got)}, expected {_fmt(exp)} +- {tol:.3g}")
    for key in numbers:
        if key not in expected:
            out.append(f"{name}: {key} = {_fmt(numbers[key])} is new (not in the expected file)")
    return out


def moved_message(lines: list[str]) -> str:
    return f"{len(lines)} key number(s) moved:\n  " + "\n  ".join(lines) + f"\n{RECORD_HINT}"


def report(
    name: str,
    numbers: dict[str, Number],
    *,
    out_dir,
    fast: bool,
    tolerances: dict[str, float] | None = None,
    expected_dir=None,
) -> dict:
    """Write ``{out_dir}/{name}.json`` = {notebook, fast, numbers, tolerances}; in FAST mode compare with
    ``{expected_dir}/{name}.json`` (default ``default_expected_dir()``) and print one deterministic line,
    or raise :class:`KeyNumbersMoved` listing every moved number. Returns the written record."""
    numbers = {k: _plain(name, k, v) for k, v in numbers.items()}
    tolerances = {k: float(v) for k, v in (tolerances or {}).items()}
    unknown = sorted(set(tolerances) - set(numbers))
    if unknown:
        raise ValueError(f"{name}: tolerances given for numbers that are not reported: {unknown}")
    record = {"notebook": name, "fast": bool(fast), "numbers": numbers, "tolerances": tolerances}
    write_text(Path(out_dir) / f"{name}.json", json_text(record))
    if not fast:
        print(f"key numbers: {len(numbers)} written, not checked (FAST=False; the expected values are FAST ones)")
        return record
    exp_dir = Path(expected_dir) if expected_dir is not None else default_expected_dir()
    exp_path = exp_dir / f"{name}.json"
    if not exp_dir.is_dir():
        print(
            f"key numbers: {len(numbers)} written, not checked (no folder notebooks/expected beside this "
            f"cilf package, e.g. pip-installed or on Colab)"
        )
        return record
    if not exp_path.is_file():
        print(
            f"key numbers: {len(numbers)} written, not checked (no expected values recorded for {name}; "
            f"record them with `python -m tools.key_numbers record`)"
        )
        return record
    exp = json.loads(exp_path.read_text(encoding="utf-8"))
    lines = compare(name, numbers, exp["numbers"], exp.get("tolerances"))
    if lines:
        raise KeyNumbersMoved(moved_message(lines))
    print(f"key numbers: {len(numbers)} checked, all within tolerance")
    return record
