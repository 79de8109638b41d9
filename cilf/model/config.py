"""One configuration dataclass for the whole CILF-CIAE model.

Every value the paper does not fix is a documented default here (docs/method.md, section 13). Ablation switches: ``mixer``, ``contrastive``, ``correction``,
``context_prompting``, ``image_fusion``, ``prompts``.

Every value is checked against its field's type (:func:`cilf.typecheck.coerce_fields`) wherever a config
is made: from JSON (``from_dict``/``load``: only JSON booleans for switches, so ``"correction": "false"``
is refused with a message rather than read as true), from ``--set KEY=VALUE`` (``parse_overrides``: the
words true/false/none) and in python (``CILFConfig(width=64.5)`` is refused; ``width=64.0`` becomes 64).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import write_json
from ..typecheck import coerce_fields
from .fourier import MIXERS

PROMPT_MODES = ("fixed", "learned")
CORRECTION_FITS = ("crossfit", "joint")

DEFAULT_TEMPLATES = (
    "a photo of a {age}-year-old person.",
    "a face of a {age}-year-old person.",
    "a close-up photo of a person aged {age}.",
    "a portrait of someone who is {age} years old.",
)


def check_ranges(cfg: Any, at_least: dict[str, float] | None = None, positive: tuple[str, ...] = ()) -> None:
    """ValueError naming the first field of ``cfg`` that is a NaN or infinite float (any field), below
    its minimum (``at_least``) or not above 0 (``positive``); None values are left alone ("not set")."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, got {value}")
    for name, low in (at_least or {}).items():
        value = getattr(cfg, name)
        if value is not None and value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")
    for name in positive:
        value = getattr(cfg, name)
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


# fields that are training parameters (cilf.app.params.CorrectionFit), named in the error for a config that has them
TRAINING_FIELDS = ("crossfit_folds", "error_epochs", "error_lr", "correction_gate")
TRAINING_HINT = (
    "how the correction is fitted after training is a training option, not a model field: see `python -m cilf "
    "train --help`, options of the post-hoc correction fit"
)


@dataclass
class CILFConfig:
    # -- CLIP backbone (section 1.1) ------------------------------------------------------
    clip_model: str = "cilf-micro"  # any open_clip ViT name, e.g. "ViT-B-16"
    # "bundled" micro-CLIP (exact-age captions) | "bundled-web" (web-like captions; the claims' backbone) | file |
    # open_clip tag | None (random init)
    pretrained: str | None = "bundled"
    # the image tower's input side in pixels; None: the CLIP model's own (cilf-micro: 112 px, an 8 x 8 grid). Another
    # side gives another grid N = (side / patch)^2 (196 px: 14 x 14, ViT-B/16's N = 196), the position embeddings
    # interpolated to it; the images are resized to it by the model's transform
    image_size: int | None = None
    freeze_image: bool = True
    freeze_text: bool = True
    unfreeze_last_blocks: int = 0  # fine-tune the image tower's last k blocks (+ ln_post, proj); text stays frozen
    unfreeze_text_blocks: int = 0  # fine-tune the text tower's last n blocks (+ ln_final, projection)
    prompts: str = "fixed"  # "fixed" templates or "learned" CoOp-style context tokens
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    n_ctx: int = 4  # learned context tokens (prompts="learned")
    # -- age classes ------------------------------------------------------------------------
    age_min: int = 0
    age_max: int = 100
    # -- similarity (section 1.2) -----------------------------------------------------------
    tau: float = 0.07  # temperature of the global scores S_i and of the context softmax
    # -- FourierFormer (section 1.3) --------------------------------------------------------
    mixer: str = "fourier"  # a key of cilf.model.fourier.MIXERS
    width: int = 64  # C
    depth: int = 2
    mlp_ratio: float = 2.0
    heads: int = 4  # attention variants only
    dwconv: bool = True  # depth-wise 3x3 branch of the FPE
    # -- context prompting and fusion (section 1.4) -----------------------------------------
    context_prompting: bool = True
    gamma_init: float = 1e-4
    image_fusion: bool = True  # f = v + Linear(mean F); False: f = v (the positive control of context prompting)
    # -- age head (section 1.5) -------------------------------------------------------------
    head_tau: float = 0.03  # initial temperature of the age head (learnable)
    label_sigma: float = 2.0
    similarity_prior: bool = True  # logits = prior from the global scores S + g * head logits, g from 0 (section 5)
    head_gain_rate: float = 10.0  # g is stored divided by this, so it moves this much faster (heads.py, section 5)
    l1_weight: float = 0.1  # lambda: weight of |y0 - y| inside L_age
    # -- contrastive loss (section 1.6) -----------------------------------------------------
    contrastive: bool = True
    contrastive_delta: float = 2.0  # +- years counted as positives
    contrastive_tau: float = 0.07
    # -- correction (section 1.7) -----------------------------------------------------------
    correction: bool = True
    ensemble_size: int = 5  # M
    error_hidden: int = 128
    eps: float = 0.5
    eta: float = 1.0
    max_steps: int = 10  # T_max
    candidate_range: float = 10.0  # R: error-model candidates y + U(-R, R) and its output scale (years)
    correction_fit: str = "crossfit"  # "crossfit": E fitted after training on out-of-fold residuals; "joint": in-sample
    # how the post-hoc E is fitted (folds, epochs, lr, held-out gate) is a training parameter: cilf.app.params
    # -- loss weights (section 1.8) ---------------------------------------------------------
    w_con: float = 0.5
    w_err: float = 0.5
    w_corr: float = 0.5

    def __post_init__(self) -> None:
        typed = coerce_fields(
            type(self), {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, choices=choices()
        )
        for name, value in typed.items():
            setattr(self, name, value)
        if self.mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {tuple(MIXERS)}, got {self.mixer!r}")
        if self.prompts not in PROMPT_MODES:
            raise ValueError(f"prompts must be one of {PROMPT_MODES}, got {self.prompts!r}")
        if self.correction_fit not in CORRECTION_FITS:
            raise ValueError(f"correction_fit must be one of {CORRECTION_FITS}, got {self.correction_fit!r}")
        if self.age_max <= self.age_min:
            raise ValueError(f"age_max ({self.age_max}) must exceed age_min ({self.age_min})")
        if not self.templates or any("{age}" not in t for t in self.templates):
            raise ValueError("every prompt template must contain '{age}'")
        check_ranges(
            self,
            {
                "n_ctx": 1,
                "width": 1,
                "depth": 0,
                "heads": 1,
                "ensemble_size": 1,
                "error_hidden": 1,
                "max_steps": 0,
                "eps": 0,
                "candidate_range": 0,
                "unfreeze_last_blocks": 0,
                "unfreeze_text_blocks": 0,
                "image_size": 1,
            },
            ("tau", "mlp_ratio", "head_tau", "label_sigma", "contrastive_tau", "eta", "head_gain_rate"),
        )

    @property
    def ages(self) -> list[int]:
        """The K age classes a_1..a_K."""
        return list(range(self.age_min, self.age_max + 1))

    @property
    def num_classes(self) -> int:
        return self.age_max - self.age_min + 1

    def replace(self, **changes: Any) -> CILFConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["templates"] = list(self.templates)
        if d["image_size"] is None:  # the model's own size, as configs saved before the field existed say it
            del d["image_size"]
        return d

    @property
    def posthoc_correction(self) -> bool:
        """E is fitted after the age model, on out-of-fold residuals (docs/method.md, section 7)."""
        return self.correction and self.correction_fit == "crossfit"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CILFConfig:
        """A saved config (values with their JSON types); fields it lacks take their defaults. A value of the wrong type (``"false"`` in quotes for a switch, 64.5 for
        an integer) is refused, never coerced: ValueError naming the field, the value and what is accepted."""
        if not isinstance(d, dict):
            raise ValueError(f"a CILF config is a JSON object of fields, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            moved = sorted(set(unknown) & set(TRAINING_FIELDS))
            hint = f" ({', '.join(moved)}: {TRAINING_HINT})" if moved else ""
            raise ValueError(f"unknown CILFConfig fields: {unknown}{hint}")
        typed = coerce_fields(cls, d, choices=choices())
        return cls(**typed)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load_saved(cls, path: str | Path) -> tuple[CILFConfig, dict[str, Any]]:
        """A config a checkpoint or run folder holds, and the correction-fit settings (:data:`TRAINING_FIELDS`)
        that a checkpoint written before they became training options still carries in it ({} otherwise): they
        say how its error model was fitted, which its weights already hold."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"config {path} not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read this config ({e})") from None
        moved = {k: d.pop(k) for k in TRAINING_FIELDS if isinstance(d, dict) and k in d}
        try:
            return cls.from_dict(d), moved
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: not a valid CILF config ({e})") from None

    @classmethod
    def load(cls, path: str | Path) -> CILFConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"config {path} not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: cannot read this config ({e})") from None
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, ValueError, TypeError) as e:
            raise ValueError(f"{path}: not a valid CILF config ({e})") from None


def default_config() -> CILFConfig:
    """The offline default model: the bundled micro-CLIP (``CILFConfig()``)."""
    return CILFConfig()


def choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of CILFConfig's string fields that name a choice."""
    return {"mixer": tuple(MIXERS), "prompts": PROMPT_MODES, "correction_fit": CORRECTION_FITS}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["mixer=attention", "width=32"]`` into typed CILFConfig changes.

    Text rules (:mod:`cilf.typecheck`, ``text=True``): switches take true or false, ``X | None`` fields
    also none, lists are ``a|b|c``; an integer field refuses 64.5. Raises ValueError naming the field.
    """
    types = {f.name for f in dataclasses.fields(CILFConfig)}
    raw: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"override {pair!r} is not KEY=VALUE")
        key, value = pair.split("=", 1)
        key = key.strip()
        if key in TRAINING_FIELDS:
            raise ValueError(f"{key} cannot be given with --set: {TRAINING_HINT}")
        if key not in types:
            raise ValueError(f"unknown config field {key!r}; fields: {', '.join(sorted(types))}")
        raw[key] = value
    return coerce_fields(CILFConfig, raw, text=True, choices=choices())
