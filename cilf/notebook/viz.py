"""Figures (matplotlib + seaborn). Every figure names where its numbers come from."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import atomic_write


def _plt():
    import matplotlib.pyplot as plt  # headless: matplotlib falls back to Agg; notebooks keep inline
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def save_figure(fig, path: str | Path) -> Path:
    """PNG with stable bytes (no software/date metadata); PDF with CreationDate None."""
    path = Path(path)
    meta = {"Software": None} if path.suffix == ".png" else {"CreationDate": None, "Creator": None, "Producer": None}
    fmt = path.suffix.lstrip(".").lower() or "png"  # from the target: the temporary file ends in .tmp
    return atomic_write(path, lambda p: fig.savefig(p, dpi=120, bbox_inches="tight", metadata=meta, format=fmt))


def synthage_contact_sheet(path: str | Path | None = None, seed: int = 0, n_subjects: int = 6,
                           ages=(2, 6, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90), size: int = 112):
    """Rows: subjects; columns: the same subject rendered at each age. Returns the figure."""
    from ..data.synthage import render_face, sample_subject

    plt = _plt()
    fig, axes = plt.subplots(n_subjects, len(ages), figsize=(1.1 * len(ages), 1.2 * n_subjects))
    for r in range(n_subjects):
        s = sample_subject(np.random.default_rng([seed, 7919, r]), r)
        for c, a in enumerate(ages):
            img, _ = render_face(s, a, np.random.default_rng([seed, r, a]), size)
            ax = axes[r, c]
            ax.imshow(img)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{a} y", fontsize=10)
        axes[r, 0].set_ylabel(f"subject {r}\n{'F' if s.sex == 'F' else 'M'}", fontsize=9)
    fig.suptitle("SynthAge (synthetic): the same subjects across ages", y=1.0)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def training_report_figure(history: list[dict], report: dict, y_true=None, y_pred=None,
                           path: str | Path | None = None):
    """Validation MAE per epoch, CS curve on test, and predicted vs true age."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ep = [h["epoch"] for h in history]
    axes[0].plot(ep, [h["val_mae"] for h in history], marker="o", label="val MAE (x*)")
    axes[0].plot(ep, [h["val_mae_y0"] for h in history], marker=".", ls="--", label="val MAE (y0)")
    axes[0].axhline(report["baseline_train_mean"]["mae"], color="grey", ls=":", label="train-mean baseline")
    axes[0].set(xlabel="epoch", ylabel="MAE (years)", title="validation")
    axes[0].legend()
    curve = report["model"]["cs_curve"]
    th = [int(k) for k in curve]
    axes[1].plot(th, [curve[k] for k in curve], marker="o", label="CILF-CIAE")
    axes[1].set(xlabel="theta (years)", ylabel="CS(theta) %", title="cumulative score, test", ylim=(0, 100))
    axes[1].legend()
    if y_true is not None:
        axes[2].scatter(y_true, y_pred, s=6, alpha=0.4)
        lim = [0, max(np.max(y_true), np.max(y_pred)) + 2]
        axes[2].plot(lim, lim, color="k", lw=1)
        axes[2].set(xlabel="true age", ylabel="predicted age", title=f"test MAE {report['model']['mae']:.2f}")
    fig.suptitle(report["source"])
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def run_figure(run_dir: str | Path, path: str | Path) -> Path:
    """The training report figure of a finished ``python -m cilf train`` run folder."""
    import csv
    import json

    run_dir = Path(run_dir)
    history = json.loads((run_dir / "history.json").read_text())
    report = json.loads((run_dir / "metrics.json").read_text())
    with (run_dir / "test_predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    y = np.array([float(r["true_age"]) for r in rows])
    p = np.array([float(r["age"]) for r in rows])
    fig = training_report_figure(history, report, y, p)
    out = save_figure(fig, path)
    _plt().close(fig)
    return out
