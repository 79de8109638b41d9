"""Ready-made models and samples for notebooks and demos: trained once, cached, deterministic.

``quick_model`` trains CILF-CIAE on SynthAge at a fixed budget (FAST or full) and caches the run
under ``$CILF_CACHE`` (default ``~/.cache/cilf``)/models/<key>; a second call loads it.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from cilf.app.features import extract_features
from cilf.app.params import TrainConfig
from cilf.app.train import train
from cilf.data.datasets import SynthAge
from cilf.model.cilf_model import CILF
from cilf.model.config import default_config
from cilf.persist.checkpoint import load_model
from cilf.utils import cache_dir

MODEL_FORMAT = (
    4  # bump when parameter names, the correction fit or its gate change, so cached demo models are retrained
)
# FAST: 6 epochs, the correction cross-fitted on 2 folds (each fold model costs about one more training run);
# the full budget: 30 epochs, 5 folds
BUDGETS = {True: dict(n_images=4000, epochs=6, crossfit_folds=2), False: dict(n_images=10000, epochs=30)}


def quick_model(fast: bool = True, device: str = "cpu", **overrides) -> tuple[CILF, dict]:
    """(trained model from its best checkpoint, its test report). ``overrides`` change CILFConfig."""
    cfg = default_config().replace(**overrides)
    budget = BUDGETS[bool(fast)]
    key = hashlib.sha1(json.dumps([cfg.to_dict(), budget, MODEL_FORMAT], sort_keys=True).encode()).hexdigest()[:12]
    out = cache_dir() / "models" / f"cilf-{key}"
    metrics = out / "metrics.json"
    if metrics.is_file():
        report = json.loads(metrics.read_text())
    else:
        interrupted = (out / "last").exists() or (out / "prev").exists()  # continue a killed run, else start quietly
        report = train(cfg, TrainConfig(out=str(out), progress=False, device=device, **budget), resume=interrupted)
    return load_model(out / "best", device), report


def synthage_samples(n: int = 8, split: str = "test", fast: bool = True, seed: int = 0, by_age: bool = True):
    """n SynthAge test faces spread over the age range: (PIL images, ages, metas)."""

    ds = SynthAge(split=split, n_images=BUDGETS[bool(fast)]["n_images"], seed=seed, progress=False)
    ages = ds.ages.numpy()
    if by_age:
        targets = np.linspace(ages.min() + 2, ages.max() - 2, n)
        idx = [int(np.abs(ages - t).argmin()) for t in targets]
    else:
        idx = list(range(n))
    items = [ds[i] for i in idx]
    return [it[0] for it in items], [it[1] for it in items], [it[3] for it in items]


def held_out_features(model: CILF, fast: bool = True, seed: int = 0, split: str = "test"):
    """Encoded SynthAge test split (held out from training; ``split="train"``: the training split) for ``model``:
    (ImageFeatures, ages (n), metas)."""

    ds = SynthAge(
        split=split, n_images=BUDGETS[bool(fast)]["n_images"], seed=seed, transform=model.preprocess, progress=False
    )
    return extract_features(model, ds, progress=False)
