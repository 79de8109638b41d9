"""The oracle floor: age regressed from what SynthAge drew (docs/method.md, section 8).

SynthAge records, for every image, the variables its pixels were drawn from
(:data:`cilf.data.synthage.LATENT_FIELDS`: growth strain k, apparent skin age, grey level, recession, sex,
glasses, beard, yaw, long hair, JPEG quality). The skin age is not drawn as such: only wrinkles (from skin age
28), creases, sagging and age spots (from 50) are, and below 20 it equals the true age. So the floor, ``oracle``,
regresses age on the cues as the renderer draws them (:data:`cilf.data.synthage.VISIBLE_FIELDS`: skin age replaced
by the drawn signs, :func:`cilf.data.synthage.drawn_skin_signs`); given them the image adds nothing about age, and
no image model can be expected to beat it. ``oracle_latent`` regresses on the latents themselves, skin age
included: a looser floor that knows what the pixels cannot show, kept as a second, labelled line. The regressor is scikit-learn's
HistGradientBoostingRegressor with the L1 loss (MAE is the target metric), its learning rate, leaf count and
number of iterations chosen on validation images (never on test), then refitted on the whole training split.
Real datasets have no latents: there the peer is skipped, with the reason in the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from cilf.data.datasets import read_manifest
from cilf.data.protocols import holdout
from cilf.data.synthage import LATENT_FIELDS, VISIBLE_FIELDS, SynthAgeSpec, generate, visible_cues

NAME = "oracle"
TITLE = "oracle (drawn cues; floor)"
LATENT_NAME = "oracle_latent"
LATENT_TITLE = "oracle (latent variables; looser floor)"
FEATURES = {"visible": VISIBLE_FIELDS, "latent": LATENT_FIELDS}  # what each oracle regresses on
GRID = {"learning_rate": (0.05, 0.15, 0.4), "max_leaf_nodes": (7, 15, 31)}  # x up to MAX_ITER iterations
MAX_ITER = 400
CHUNK, PATIENCE = 50, 100  # iterations fitted at a time; stop once the best is this many iterations back
VAL_FRACTION = 0.2  # of the training subjects, held out for tuning when the fold has no validation split
VERSION = {
    "features": "visible",
    "latents": list(VISIBLE_FIELDS),
    "grid": GRID,
    "max_iter": MAX_ITER,
    "patience": PATIENCE,
    "val_fraction": VAL_FRACTION,
}
_WORDS = {"true": 1.0, "false": 0.0, "m": 1.0, "f": 0.0}


def missing_latents(rows: list[dict]) -> str | None:
    """None when the rows record every latent, else why the oracle cannot run (shown as the skip reason)."""
    lacking = [c for c in LATENT_FIELDS if not rows or c not in rows[0]]
    if not lacking:
        return None
    if rows and "skin_age" in rows[0] and "caption" in rows[0]:  # a SynthAge manifest of an older cilf
        return (
            f"this SynthAge manifest predates the latent columns ({', '.join(lacking)}); run `python -m cilf "
            f"synthage --out ROOT` once with the set's --n-images and --seed to add them (images are kept)"
        )
    return "no latent ageing variables (SynthAge only)"


def _number(value) -> float:
    if isinstance(value, (bool, int, float, np.number)):
        return float(value)
    text = str(value).strip().lower()
    return _WORDS[text] if text in _WORDS else float(text)


LATENT_VERSION = {**VERSION, "features": "latent", "latents": list(LATENT_FIELDS)}


def latent_matrix(rows: list[dict], features: str = "latent") -> np.ndarray:
    """Rows holding ``LATENT_FIELDS`` (manifest strings or numbers; sex M/F -> 1/0) -> (n x L) float64: the
    latents themselves (``features="latent"``) or the cues drawn from them (``"visible"``, :data:`FEATURES`)."""
    why = missing_latents(rows) if rows else None
    if why:
        raise ValueError(f"oracle: {why}")
    fields = FEATURES[features]
    try:
        if features == "visible":
            rows = [visible_cues(r) for r in rows]
        return np.array([[_number(r[c]) for c in fields] for r in rows], dtype=np.float64).reshape(
            len(rows), len(fields)
        )
    except (KeyError, ValueError) as e:
        raise ValueError(
            f"oracle: a row's latent columns cannot be read as numbers ({e}); regenerate the SynthAge "
            f"manifest with `python -m cilf synthage`"
        ) from None


def _one_thread():
    """Every OpenMP/BLAS pool at one thread while boosting: its many tiny parallel regions otherwise wait on
    torch's OpenMP threads (a 300-image fit took 64 s instead of 2 s after torch had run with 2 threads)."""

    return threadpool_limits(1)


def _regressor(learning_rate: float, max_leaf_nodes: int, max_iter: int):

    return HistGradientBoostingRegressor(
        loss="absolute_error",
        learning_rate=learning_rate,
        max_leaf_nodes=max_leaf_nodes,
        max_iter=max_iter,
        early_stopping=False,
        random_state=0,
    )


def _val_curve(lr: float, leaves: int, x_fit, y_fit, x_val, y_val) -> list[float]:
    """Validation MAE after each iteration (up to ``MAX_ITER``), fitted ``CHUNK`` iterations at a time (warm
    start: the same trees as one long fit) until the best is ``PATIENCE`` iterations back."""
    model = _regressor(lr, leaves, CHUNK).set_params(warm_start=True)
    while True:
        model.fit(x_fit, y_fit)
        maes = [float(np.abs(p - y_val).mean()) for p in model.staged_predict(x_val)]
        if len(maes) >= MAX_ITER or len(maes) < model.max_iter or int(np.argmin(maes)) < len(maes) - PATIENCE:
            return maes
        model.set_params(max_iter=min(len(maes) + CHUNK, MAX_ITER))


def tune(x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> tuple[dict, float]:
    """Best (learning_rate, max_leaf_nodes, max_iter) on the validation MAE, and that MAE.

    x_fit (n x L), y_fit (n): what the candidates are fitted on; x_val (v x L), y_val (v): what chooses. Every
    grid point is fitted once; its staged predictions give every shorter run (see ``_val_curve``).
    """
    best: tuple[dict, float] | None = None
    for lr in GRID["learning_rate"]:
        for leaves in GRID["max_leaf_nodes"]:
            maes = _val_curve(lr, leaves, x_fit, y_fit, x_val, y_val)
            i = int(np.argmin(maes))
            if best is None or maes[i] < best[1]:
                best = ({"learning_rate": lr, "max_leaf_nodes": leaves, "max_iter": i + 1}, maes[i])
    return best


@dataclass
class OracleFit:
    """The refitted regressor, its chosen hyperparameters and their validation MAE."""

    model: object
    params: dict
    val_mae: float
    val_images: int
    features: str = "visible"

    def predict(self, rows: list[dict]) -> np.ndarray:
        """rows (m dicts with the latents) -> ages (m)."""
        with _one_thread():
            return self.model.predict(latent_matrix(rows, self.features))


def fit_oracle(
    train_rows: list[dict],
    y_train,
    val_rows: list[dict] | None = None,
    y_val=None,
    seed: int = 0,
    features: str = "visible",
) -> OracleFit:
    """Tune on validation images, then refit on every training row; returns the fit.

    train_rows (n) with y_train (n) ages. With ``val_rows``/``y_val`` (v) those choose the hyperparameters;
    without, ``VAL_FRACTION`` of the training subjects are held out for that (subject-exclusive, seeded).
    Test rows are never an argument: the choice cannot depend on them.
    """
    x, y = latent_matrix(train_rows, features), np.asarray(y_train, dtype=np.float64)
    with _one_thread():
        if val_rows is None:
            (part,) = holdout(train_rows, test_frac=VAL_FRACTION, seed=seed, name="oracle-val")
            params, val_mae = tune(x[part.train], y[part.train], x[part.test], y[part.test])
            n_val = len(part.test)
        else:
            params, val_mae = tune(x, y, latent_matrix(val_rows, features), np.asarray(y_val, dtype=np.float64))
            n_val = len(val_rows)
        return OracleFit(_regressor(**params).fit(x, y), params, val_mae, n_val, features)


def split_oracle(rows: list[dict], features: str = "visible") -> dict:
    """The oracle on a manifest's own train/val/test split (tuned on val, fitted on train, scored on test):
    {"mae", "val_mae", "params", "test_images"}; rows are a SynthAge manifest's (``split`` and ``age`` columns)."""
    part = {s: [r for r in rows if r.get("split") == s] for s in ("train", "val", "test")}
    if not all(part.values()):
        raise ValueError("oracle: the manifest needs train, val and test rows")
    ages = {s: np.array([float(r["age"]) for r in v]) for s, v in part.items()}
    fit = fit_oracle(part["train"], ages["train"], part["val"], ages["val"], features=features)
    mae = float(np.abs(fit.predict(part["test"]) - ages["test"]).mean())
    return {"mae": mae, "val_mae": fit.val_mae, "params": fit.params, "test_images": len(part["test"])}


def oracle_for_run(report: dict) -> dict | None:
    """The oracle on the SynthAge set and split a ``python -m cilf train`` run used (its ``metrics.json`` as
    ``report``): see :func:`split_oracle`; None when the run trained on other data."""
    tc = report.get("train_config") or {}
    if tc.get("data") or "n_images" not in tc:
        return None

    root = generate(SynthAgeSpec(n_images=tc["n_images"], seed=tc.get("data_seed", 0)), progress=False)
    return split_oracle(read_manifest(root / "manifest.csv"))
