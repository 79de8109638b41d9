"""Evaluation: predictions for encoded images, metrics against baselines, a printed report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cilf.app.correction_report import correction_report, format_correction
from cilf.app.features import extract_features
from cilf.app.infer import predict_features
from cilf.app.params import TrainConfig
from cilf.app.splits import load_splits
from cilf.data.splits import dataset_metrics, metric_text
from cilf.metrics import age_report, mae
from cilf.persist.checkpoint import load_model
from cilf.utils import pick_device


def evaluation_report(
    y_true, pred: dict[str, np.ndarray], train_mean: float, source: str, clip_tuned: bool = False
) -> dict:
    """Metrics of the final and first estimates, zero-shot CLIP and the train-mean baseline.

    ``clip_tuned`` (``CLIPAdapter.tuned``): a CLIP tower or the prompts were trained, so the prompts read tuned features and the "zero-shot" row is
    no longer zero-shot CLIP; the report says so (``zero_shot_clip["clip"]``)."""
    y = np.asarray(y_true, dtype=np.float64)
    baseline = mae(y, np.full_like(y, train_mean))
    rep = {
        "source": source,
        "n": int(y.size),
        "model": age_report(y, pred["age"]),
        "first_estimate_y0": age_report(y, pred["y0"]),
        "zero_shot_clip": {"mae": mae(y, pred["zero_shot"]), "clip": "fine-tuned" if clip_tuned else "as pretrained"},
        "baseline_train_mean": {"prediction": float(train_mean), "mae": baseline},
    }
    rep["improvement_over_baseline"] = {
        "years": baseline - rep["model"]["mae"],
        "percent": 100 * (baseline - rep["model"]["mae"]) / baseline,
    }
    rep["correction"] = correction_report(y, pred)
    return rep


def zero_shot_line(zs: dict) -> str:
    """The report's prompt row: zero-shot CLIP, or the same prompts read through a fine-tuned CLIP."""
    if zs.get("clip") == "fine-tuned":
        return f"prompts on the fine-tuned CLIP (not zero-shot)  MAE {zs['mae']:6.2f}"
    return f"zero-shot CLIP (prompts)  MAE {zs['mae']:6.2f}"


def format_report(rep: dict) -> str:
    m, y0, b = rep["model"], rep["first_estimate_y0"], rep["baseline_train_mean"]
    imp = rep["improvement_over_baseline"]
    b_cs = f"   CS@1 {b['cs1']:5.1f}%   CS@5 {b['cs5']:5.1f}%" if "cs1" in b else ""
    c = rep["correction"]
    lines = [
        f"== {rep['source']}: {rep['n']} test images ==",
        f"CILF-CIAE (corrected x*)  MAE {m['mae']:6.2f}   CS@1 {m['cs1']:5.1f}%   CS@5 {m['cs5']:5.1f}%"
        + metric_text(m),
        f"first estimate y0         MAE {y0['mae']:6.2f}   CS@1 {y0['cs1']:5.1f}%   CS@5 {y0['cs5']:5.1f}%",
        zero_shot_line(rep["zero_shot_clip"]),
        f"baseline: predict the training mean ({b['prediction']:.1f} y)  MAE {b['mae']:6.2f}" + b_cs + metric_text(b),
        f"-> model beats the train-mean baseline by {imp['years']:.2f} years ({imp['percent']:.1f}% lower MAE)"
        if imp["years"] > 0
        else f"-> model does NOT beat the train-mean baseline ({-imp['years']:.2f} years worse)",
        *format_correction(c),
    ]
    return "\n".join(lines)


def evaluate_checkpoint(
    checkpoint: str | Path, tcfg: TrainConfig, split: str = "test", clip_weights: str | Path | None = None
) -> dict:
    """Evaluate a saved model on one split; the baseline is the train split's mean age.

    ``clip_weights``: the CLIP weights file where it was moved (``cilf.persist.checkpoint.load_model``)."""
    device = pick_device(tcfg.device)
    model = load_model(checkpoint, device, clip_weights=clip_weights)
    model.clip.warm_text_cache(tcfg.progress)
    splits, source, info = load_splits(tcfg, model.preprocess)
    feats, ages, metas = extract_features(
        model, splits[split], device=device, progress=tcfg.progress, desc=f"encode {split}"
    )
    pred = predict_features(model, feats, device=device)
    report = evaluation_report(
        ages.numpy(), pred, float(splits["train"].ages.mean()), source, clip_tuned=model.clip.tuned
    )
    if info:
        add_dataset_metrics(report, pred, ages.numpy(), metas, info)
    report.update(
        {
            "split": split,
            "checkpoint": str(checkpoint),
            "clip_weights": model.clip.weights.to_dict(),
            "skipped_files": {split: splits[split].skips.skipped},
        }
    )
    return report


def add_dataset_metrics(report: dict, pred: dict, y_true, metas: list[dict], info: dict) -> dict:
    """Add to an :func:`evaluation_report` the dataset's own metrics (Adience exact/1-off group accuracy,
    APPA-REAL epsilon-error) of the model and of the train-mean baseline, the baseline's CS@1/CS@5, and
    ``info`` as ``report["dataset"]``. ``y_true``, ``metas``: (m) ages and rows of the images ``pred`` scores."""
    base = np.full(len(metas), report["baseline_train_mean"]["prediction"])
    b = age_report(np.asarray(y_true, dtype=np.float64), base)
    report["model"].update(dataset_metrics(pred["age"], metas))
    report["baseline_train_mean"].update({"cs1": b["cs1"], "cs5": b["cs5"], **dataset_metrics(base, metas)})
    report["dataset"] = info
    return report
