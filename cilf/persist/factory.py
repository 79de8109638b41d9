"""Building the model: open_clip towers with their weights, named model configs, ``create_model``.

As open_clip's factory does: a model is named by a JSON file in ``configs/`` (``cilf-micro``: the offline
default on the bundled micro-CLIP; ``cilf-vit-b16``: the paper's ViT-B/16 with OpenAI's weights, online
once), and ``create_model(name_or_config, **overrides)`` builds the architecture (``cilf.model``) and loads
its CLIP weights (``cilf.persist.clip_weights``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import open_clip
from open_clip.model import resize_pos_embed

from cilf.model.cilf_model import CILF
from cilf.model.clip import CLIPAdapter, OpenCLIPParts
from cilf.model.config import CILFConfig
from cilf.persist.clip_weights import WeightsNotFoundError, log_loaded, record_for

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"  # open_clip architectures (cilf-micro's towers)
CONFIG_DIR = Path(__file__).parent / "configs"  # named CILF-CIAE configs
open_clip.add_model_config(MODEL_CONFIG_DIR)


def list_models() -> list[str]:
    """Names :func:`create_model` accepts (files of ``configs/``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def get_config(name: str, **overrides) -> CILFConfig:
    """The named config (``configs/NAME.json`` over the defaults of :class:`CILFConfig`), with ``overrides``."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())} (or pass a CILFConfig)")
    return CILFConfig.from_dict({**CILFConfig().to_dict(), **json.loads(path.read_text()), **overrides})


def load_open_clip(model_name: str, pretrained: str | None, image_size: int | None = None) -> OpenCLIPParts:
    """The open_clip model, eval transform, tokenizer and WeightsRecord (:class:`OpenCLIPParts`); clear errors
    when offline. ``image_size``: the image tower's input side in pixels (None: the model's own); another size
    gives another token grid, the position embeddings interpolated to it (bicubic, open_clip's resize_pos_embed).

    The weights loaded are logged once (logger ``cilf.weights``: model, source and SHA-256)."""
    if model_name not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip model {model_name!r}; known e.g. cilf-micro, ViT-B-32, ViT-B-16 "
            f"(open_clip.list_models() has {len(open_clip.list_models())})"
        )
    record, source = record_for(model_name, pretrained)  # a tag not cached offline fails here, before any build
    patch = (open_clip.get_model_config(model_name) or {}).get("vision_cfg", {}).get("patch_size")
    if image_size is not None and isinstance(patch, int) and image_size % patch:
        raise ValueError(
            f"image_size={image_size} is not a multiple of {model_name}'s {patch}-px patches: the tower would drop "
            f"pixels; use e.g. {image_size // patch * patch} or {(image_size // patch + 1) * patch}"
        )
    try:
        with _quiet_root_logger():  # open_clip logs "initialized randomly" for pretrained=None: asked for
            if image_size is None:
                model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=source)
            else:
                model, preprocess = _resized(model_name, source, image_size)
    except Exception as e:  # network, hub, checkpoint mismatch: say which and what to do
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise WeightsNotFoundError(
            f"could not load open_clip weights {model_name!r} / {pretrained!r}: {e}. "
            + ("HF_HUB_OFFLINE=1 is set, so nothing is downloaded. " if offline else "")
            + "Offline, use pretrained='bundled' (micro-CLIP), a local checkpoint path, or None."
        ) from e
    log_loaded(record)
    tokenizer = open_clip.get_tokenizer(model_name)
    return OpenCLIPParts(model, preprocess, tokenizer, record)


def _resized(model_name: str, source: str | None, image_size: int):
    """open_clip's ``model_name`` with the weights ``source`` at input side ``image_size``: loaded at its own size by
    open_clip (every conversion of its loader), then moved to the new grid with the position embeddings interpolated
    in float32 (open_clip's loader interpolates them in the file's dtype, and bicubic interpolation refuses the
    bundled files' float16)."""
    own, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=source)
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=None, force_image_size=image_size
    )
    state = own.state_dict()
    state["visual.positional_embedding"] = state["visual.positional_embedding"].float()
    resize_pos_embed(state, model)
    model.load_state_dict(state)
    return model, preprocess


class _quiet_root_logger:
    def __enter__(self):
        self.logger = logging.getLogger()
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def build_clip(cfg: CILFConfig) -> CLIPAdapter:
    """The CLIP towers of ``cfg`` with their weights (``cfg.clip_model``, ``cfg.pretrained``), frozen as it asks."""
    return CLIPAdapter(cfg, load_open_clip(cfg.clip_model, cfg.pretrained, cfg.image_size))


def create_model(config: str | CILFConfig | None = None, **overrides) -> CILF:
    """Build CILF-CIAE: a model name (:func:`list_models`, e.g. ``"cilf-micro"``) or a :class:`CILFConfig`
    (default: ``CILFConfig()``), with optional field overrides (``create_model("cilf-micro", mixer="attention")``)."""
    if isinstance(config, str):
        cfg = get_config(config, **overrides)
    else:
        cfg = config or CILFConfig()
        cfg = cfg.replace(**overrides) if overrides else cfg
    return CILF(cfg, build_clip(cfg))
