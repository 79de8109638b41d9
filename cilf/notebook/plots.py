"""Figures (matplotlib + seaborn) for the notebooks and the CLI. Each function returns a matplotlib
figure and writes it when given ``path`` (PNG with stable bytes). Titles carry the data source."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle
from PIL import Image
from sklearn.decomposition import PCA

from cilf.bench.oracle import TITLE, oracle_for_run
from cilf.data.synthage import render_face, sample_subject
from cilf.io import atomic_write
from cilf.labels import SYNTHAGE
from cilf.model.fourier import MIXER_LABELS

SYNTH = SYNTHAGE


def pyplot():
    """matplotlib.pyplot with the seaborn theme of every cilf figure."""
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


def _save(fig, path):
    if path is not None:
        save_figure(fig, Path(path))
    return fig


def finish_figure(fig, path: str | Path | None = None):
    """Tight layout, then written to ``path`` when given (see save_figure); returns the figure."""
    fig.tight_layout()
    return _save(fig, path)


def synthage_contact_sheet(
    path: str | Path | None = None,
    seed: int = 0,
    n_subjects: int = 6,
    ages=(2, 6, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90),
    size: int = 112,
):
    """Rows: subjects; columns: the same subject rendered at each age. Returns the figure."""

    plt = pyplot()
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
    fig.suptitle(f"{SYNTHAGE}: the same subjects across ages", y=1.0)
    return finish_figure(fig, path)


def training_report_figure(
    history: list[dict],
    report: dict,
    y_true=None,
    y_pred=None,
    path: str | Path | None = None,
    oracle: dict | None = None,
):
    """Validation MAE per epoch, CS curve on test, and predicted vs true age.

    ``oracle``: the oracle floor on the same split ({"mae": test MAE}, :func:`cilf.bench.oracle.split_oracle`),
    drawn as a reference line beside the train-mean baseline."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    ep = [h["epoch"] for h in history]
    vals = [h["val_mae"] for h in history] + [h["val_mae_y0"] for h in history]
    axes[0].plot(ep, [h["val_mae"] for h in history], marker="o", label="val MAE (x*)")
    axes[0].plot(ep, [h["val_mae_y0"] for h in history], marker=".", ls="--", label="val MAE (y0)")
    base = report["baseline_train_mean"]["mae"]
    # the axis holds the curves and the floor; a baseline far above them is named in the legend, not drawn
    top = 1.25 * max(vals) if base > 2 * max(vals) else 1.05 * max(max(vals), base)
    off = " (above the axis)" if base > top else ""
    axes[0].axhline(base, color="grey", ls=":", label=f"train-mean baseline, test MAE {base:.2f}{off}")
    if oracle is not None:
        axes[0].axhline(oracle["mae"], color="black", ls="--", lw=1, label=f"{TITLE}, test MAE {oracle['mae']:.2f}")
    axes[0].set_ylim(0, top)
    axes[0].set(xlabel="epoch", ylabel="MAE (years)", title="validation")
    axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
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
    return finish_figure(fig, path)


def training_figure(run_dir: str | Path, path: str | Path | None = None):
    """The training report figure of a finished ``python -m cilf train`` run folder (on SynthAge with the
    oracle floor of its split, :func:`cilf.bench.oracle.oracle_for_run`); returns the figure, written to ``path``
    when given (a notebook displays it)."""

    run_dir = Path(run_dir)
    history = json.loads((run_dir / "history.json").read_text())
    report = json.loads((run_dir / "metrics.json").read_text())
    with (run_dir / "test_predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    y = np.array([float(r["true_age"]) for r in rows])
    p = np.array([float(r["age"]) for r in rows])
    fig = training_report_figure(history, report, y, p, oracle=oracle_for_run(report))
    return _save(fig, path)


def run_figure(run_dir: str | Path, path: str | Path) -> Path:
    """:func:`training_figure` written to ``path`` and closed (the CLI's ``train --figure``); returns the path."""
    fig = training_figure(run_dir)
    out = save_figure(fig, path)
    pyplot().close(fig)
    return out


def show_faces(images, titles, path=None, ncols: int = 8, suptitle: str = ""):
    plt = pyplot()
    n = len(images)
    rows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(rows, ncols, figsize=(1.9 * ncols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, im, t in zip(axes.flat, images, titles):
        ax.imshow(im)
        ax.set_title(t, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return finish_figure(fig, path)


def plot_text_similarity(text: np.ndarray, ages, path=None, title: str = ""):
    """Cosine similarity between the K age-class text features (K x K heatmap)."""
    plt = pyplot()
    t = text / np.linalg.norm(text, axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.imshow(t @ t.T, cmap="viridis", extent=[ages[0], ages[-1], ages[-1], ages[0]])
    fig.colorbar(im, ax=ax, label="cos(T_i, T_j)")
    ax.set(xlabel="prompt age j", ylabel="prompt age i", title=title or "text features per age")
    ax.grid(False)
    return finish_figure(fig, path)


def plot_global_scores(scores: np.ndarray, true_ages, class_ages, path=None, title: str = "", ncols: int = 3):
    """S over the age classes, one small panel per face (shared axes): the true age (dotted) and the expected
    age sum_i S_i a_i under S (solid) marked, so each panel reads on its own."""
    plt = pyplot()

    ages = np.asarray(class_ages, float)
    n = len(true_ages)
    rows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(rows, ncols, figsize=(3.6 * ncols, 2.3 * rows), sharex=True, sharey=True, squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, s, a in zip(axes.flat, scores, true_ages):
        expected = float(np.dot(s, ages))
        ax.fill_between(ages, s, color="tab:blue", alpha=0.25, lw=0)
        ax.plot(ages, s, color="tab:blue", lw=1.2)
        ax.axvline(float(a), color="black", ls=":", lw=1.2, label="true age")
        ax.axvline(expected, color="tab:red", lw=1.2, label="expected age under S")
        ax.set_title(f"true {float(a):.0f} y | sum S_i a_i = {expected:.1f} y", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("age class a_i")
    for ax in axes[:, 0]:
        ax.set_ylabel("S_i")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title or "global pixel-text scores")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path)


def robust_limit(values, q: float = 98.0) -> float:
    """A symmetric colour limit for a signed map: the ``q``-th percentile of |values| (a few extreme patches do
    not wash the rest out); 1e-6 for an all-zero map."""
    v = np.abs(np.asarray(values, float))
    return max(float(np.percentile(v, q)), 1e-6)


def plot_dense_maps(
    images, maps: np.ndarray, class_ages, prompt_ages=(5, 40, 80), path=None, title: str = "", true_ages=None
):
    """Each face (true age in the row label when given) beside its dense score maps M (cosine per
    patch, B x K x H x W) for a few prompt ages.

    Maps are shown relative to the mean over all K prompts, so colour says which prompt age a
    patch prefers, not the overall similarity level. Each map has its own symmetric colour scale (the 98th
    percentile of its |values|, :func:`robust_limit`) and colour bar, over a grey copy of the face, so the
    contrast within every map shows; compare levels between maps by their colour bars."""
    plt = pyplot()

    class_ages = list(class_ages)
    rel = maps - maps.mean(axis=1, keepdims=True)
    fig, axes = plt.subplots(
        len(images), 1 + len(prompt_ages), figsize=(2.6 * (1 + len(prompt_ages)), 2.4 * len(images)), squeeze=False
    )
    for r, im in enumerate(images):
        axes[r, 0].imshow(im)
        axes[r, 0].set_ylabel(f"face {r}" if true_ages is None else f"face {r}, age {float(true_ages[r]):.0f}")
        grey = np.asarray(im.convert("L"), float) / 255.0
        for c, a in enumerate(prompt_ages):
            m = rel[r, class_ages.index(a)]
            up = np.asarray(Image.fromarray(m.astype(np.float32)).resize(im.size, Image.BICUBIC))
            lim = robust_limit(m)
            ax = axes[r, c + 1]
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            overlay = ax.imshow(up, cmap="RdBu_r", alpha=0.65, vmin=-lim, vmax=lim)
            cb = fig.colorbar(overlay, ax=ax, fraction=0.046, pad=0.02)
            cb.ax.tick_params(labelsize=6)
            if r == 0:
                ax.set_title(f'"{a}-year-old"')
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
    fig.suptitle(title or "dense pixel-text maps (relative to the mean prompt)")
    fig.text(
        0.5,
        0.0,
        "colour: cos(P, T_age) - mean over prompts; red = this prompt age fits the patch better than the "
        "average prompt; each map on its own scale",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return _save(fig, path)


def _freq_extent(h: int, w: int) -> list[float]:
    """imshow extent of an fftshifted H x (W//2+1) spectrum: horizontal 0..W//2, vertical -H//2..H//2 (centred)."""
    return [-0.5, w - 0.5, (h - 1) // 2 + 0.5, -(h // 2) - 0.5]


def plot_fpe_steps(steps: dict, path=None, title: str = ""):
    """One FPE pass for one channel (``fpe_steps``' ``*_channel`` entries; channel means when they are absent):
    input, |DFT| (log colour), the learned |K|, the filtered spectrum (log colour) and the inverse DFT, with the
    spectra fftshifted so the zero frequency sits in the middle of the vertical axis."""
    plt = pyplot()

    one = "input_channel" in steps
    suffix = "_channel" if one else ""
    what = f"channel {steps['channel']}" if one else "channel mean"
    names = [
        ("input", f"input x ({what})"),
        ("spectrum", "|DFT(x)| (log colour)"),
        ("filter", "learned filter |K|"),
        ("filtered", "|DFT(x) K| (log colour)"),
        ("output", "IDFT -> output"),
    ]
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.5))
    spectra = [np.asarray(steps[k + suffix]) for k in ("spectrum", "filtered")]
    low = max(min(float(a.min()) for a in spectra), 1e-6)
    high = max(float(a.max()) for a in spectra)
    grid = [np.asarray(steps[k + suffix]) for k in ("input", "output")]
    lim = max(float(np.abs(a).max()) for a in grid)
    for ax, (k, label) in zip(axes, names):
        a = np.asarray(steps[k + suffix])
        if k in ("input", "output"):  # signed values in the token grid, one scale for both
            im = ax.imshow(a, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set(xlabel="w (patch column)", ylabel="h (patch row)")
        else:  # spectra: zero frequency centred; the DC term dwarfs the rest, hence log colour (one scale for both)
            norm = LogNorm(vmin=low, vmax=high) if k != "filter" else None
            a = np.fft.fftshift(a, axes=0)
            im = ax.imshow(a, cmap="magma", norm=norm, extent=_freq_extent(*a.shape))
            if k == "filter":
                im.set_cmap("PuOr_r")
                dev = max(float(np.abs(a - 1).max()), 1e-3)
                im.set_clim(1 - dev, 1 + dev)
            ax.set(xlabel="horizontal frequency", ylabel="vertical frequency")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_title(label, fontsize=10)
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title or "one FPE global-filter pass, step by step")
    return finish_figure(fig, path)


def plot_filter_spectra(spectra, path=None, title: str = ""):
    """The learned global filters (``filter_spectra``: mean |K| per block, fftshifted) as departures from the
    identity: block 1's |K| - 1, then each later block minus block 1, on one symmetric colour scale (an all-pass
    filter is 0 everywhere; near-white later panels mean the blocks learned nearly the same filter)."""
    plt = pyplot()
    base = np.asarray(spectra[0], float)
    panels = [(base - 1, "block 1: mean |K| - 1")] + [
        (np.asarray(s, float) - base, f"block {i + 1} - block 1") for i, s in enumerate(spectra[1:], start=1)
    ]
    lim = max(max(float(np.abs(p).max()) for p, _ in panels), 1e-4)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.7), squeeze=False)
    for ax, (a, label) in zip(axes[0], panels):
        im = ax.imshow(a, cmap="PuOr_r", vmin=-lim, vmax=lim, extent=_freq_extent(*a.shape))
        ax.set(
            title=f"{label}\n(max |.| {np.abs(a).max():.3f})",
            xlabel="horizontal frequency",
            ylabel="vertical frequency",
        )
        ax.title.set_fontsize(10)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title or "learned global filters: departure from the identity (0 = pass unchanged)")
    return finish_figure(fig, path)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, float) - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def plot_prior_and_context(parts: dict, true_ages, class_ages, path=None, title: str = ""):
    """One column per face (``parts``: :func:`cilf.notebook.analysis.prior_and_context` for those faces). Top: the
    class distribution of the similarity prior alone (zero-shot CLIP), of the head's own term alone, and of both
    together (the model's p), with the true age dotted. Bottom: how far context prompting moves each class's text
    feature, |gamma Lin_c(c_k)| / |T_k|, over the age classes."""
    plt = pyplot()
    ages = np.asarray(class_ages, float)
    n = len(true_ages)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 5.4), squeeze=False, sharex=True)
    series = (
        ("prior", "prior alone: softmax(alpha tau s log S)", "tab:purple", "--"),
        ("head", "head term alone: softmax(g cos(f, T') / tau_h)", "tab:orange", ":"),
        ("logits", "both: the model's p", "tab:blue", "-"),
    )
    for j in range(n):
        ax = axes[0, j]
        for key, label, colour, ls in series:
            p = _softmax(parts[key][j])
            ax.plot(ages, p, color=colour, ls=ls, lw=1.6 if key == "logits" else 1.2, label=label)
        ax.axvline(float(true_ages[j]), color="black", ls=":", lw=1, label="true age")
        ax.set_title(f"face {j}: true {float(true_ages[j]):.0f} y, y0 {float(parts['y0'][j]):.1f}", fontsize=9)
        axes[1, j].plot(ages, parts["context_shift"][j], color="tab:green", lw=1.4)
        axes[1, j].axvline(float(true_ages[j]), color="black", ls=":", lw=1)
        axes[1, j].set_xlabel("age class a_k")
    axes[0, 0].set_ylabel("p over ages")
    axes[1, 0].set_ylabel("|T'_k - T_k| / |T_k|")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title or "the similarity prior, the head's own term, and context prompting")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)


def plot_embedding_pca(embeddings: dict, ages, path=None, title: str = ""):
    """2-D PCA of each named embedding set (n x D), coloured by age."""
    plt = pyplot()

    fig, axes = plt.subplots(
        1, len(embeddings), figsize=(5.4 * len(embeddings), 4.5), squeeze=False, layout="constrained"
    )
    for ax, (name, emb) in zip(axes[0], embeddings.items()):
        xy = PCA(2, random_state=0).fit_transform(emb)
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=ages, cmap="viridis", s=8)
        ax.set(title=name, xlabel="PC 1", ylabel="PC 2")
    fig.colorbar(sc, ax=axes[0].tolist(), label="true age")
    fig.suptitle(title)
    return _save(fig, path)


def plot_similarity_matrices(pairs: dict, ages, path=None, title: str = ""):
    """cos(f_i, T'_{y_j}) for images sorted by age, one panel per named (f, t) pair."""
    plt = pyplot()
    order = np.argsort(ages)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.3), squeeze=False)
    for ax, (name, (f, t)) in zip(axes[0], pairs.items()):
        im = ax.imshow(f[order] @ t[order].T, cmap="viridis")
        ax.set(title=name, xlabel="text T'_{y_j} (sorted by age)", ylabel="image f_i (sorted by age)")
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    return finish_figure(fig, path)


def plot_correction(corr: dict, y_true, path=None, title: str = "", n_traj: int = 40):
    """Trajectories x_t - y of corrected images, MAE before/after by group, spread vs actual error."""
    plt = pyplot()
    y = np.asarray(y_true, float)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    corrected = ~corr["accepted"].astype(bool)
    idx = np.flatnonzero(corrected)[:n_traj]
    for i in idx:
        steps = int(corr["steps"][i])
        axes[0].plot(range(steps + 1), corr["traj"][i, : steps + 1] - y[i], marker=".", alpha=0.6)
    axes[0].axhline(0, color="k", lw=1)
    axes[0].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    axes[0].set(xlabel="step t", ylabel="x_t - true age (years)", title=f"{len(idx)} corrected images")
    groups = {"accepted by E_P": ~corrected, "corrected": corrected, "all": np.ones_like(corrected)}
    labels, before, after = [], [], []
    for g, m in groups.items():
        if m.any():
            labels.append(f"{g}\n(n={int(m.sum())})")
            before.append(np.abs(corr["y0"][m] - y[m]).mean())
            after.append(np.abs(corr["x"][m] - y[m]).mean())
    xs = np.arange(len(labels))
    for shift, vals, name in ((-0.2, before, "y0 (first estimate)"), (0.2, after, "x* (after correction)")):
        bars = axes[1].bar(xs + shift, vals, 0.4, label=name)
        axes[1].bar_label(bars, fmt="%.2f", fontsize=8)
    axes[1].set_xticks(xs, labels)
    axes[1].set(ylabel="MAE (years)", title="MAE before and after", ylim=(0, 1.3 * max(before + after, default=1)))
    axes[1].legend(loc="upper center", ncol=2, fontsize=8)
    axes[2].scatter(corr["spread"], np.abs(corr["x"] - y), s=6, alpha=0.4)
    axes[2].set(
        xlabel="ensemble spread (std over M members)", ylabel="|x* - true age|", title="uncertainty vs actual error"
    )
    fig.suptitle(title)
    return finish_figure(fig, path)


def plot_calibration(calibration: list[dict], path=None, title: str = "", spearman: float | None = None):
    """E_P calibration: per decile of E's predicted |error| at y0 (the rows of
    ``cilf.app.correction_report.calibration_bins``), mean predicted vs mean actual |y0 - y|, with the
    identity line (a calibrated E lies on it) and each decile's size."""
    plt = pyplot()
    pred = np.array([b["predicted_abs_error"] for b in calibration], float)
    actual = np.array([b["actual_abs_error"] for b in calibration], float)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    top = 1.1 * max(pred.max(initial=1.0), actual.max(initial=1.0))
    axes[0].plot([0, top], [0, top], color="k", lw=1, ls="--", label="calibrated (y = x)")
    axes[0].plot(pred, actual, marker="o", label="deciles of predicted |error|")
    axes[0].set(
        xlim=(0, top),
        ylim=(0, top),
        xlabel="mean predicted |e(y0)| (years)",
        ylabel="mean actual |y0 - true age| (years)",
        title="calibration" + ("" if spearman is None else f" (Spearman over images {spearman:.2f})"),
    )
    axes[0].legend(fontsize=8, loc="upper left")
    xs = np.arange(1, len(calibration) + 1)
    axes[1].bar(xs - 0.2, pred, 0.4, label="predicted |error|")
    axes[1].bar(xs + 0.2, actual, 0.4, label="actual |error|")
    axes[1].set_xticks(xs, [f"{b['bin']}\n(n={b['n']})" for b in calibration], fontsize=7)
    axes[1].set(xlabel="decile of predicted |error| (1 = smallest)", ylabel="years", title="by decile")
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    return finish_figure(fig, path)


def plot_detections(image, boxes, labels, crops, path=None, title: str = ""):
    """The photo with each detected face's box (x0, y0, x1, y1 in its pixels) and label, beside the
    aligned crops the model sees. No boxes: the photo alone, titled "no face found"."""
    plt = pyplot()

    n = len(crops)
    fig, axes = plt.subplots(
        1,
        1 + max(n, 1),
        figsize=(4.4 + 2.6 * max(n, 1), 4.2),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.7] + [1] * max(n, 1)},
    )
    ax = axes[0, 0]
    ax.imshow(image)
    for box, label in zip(boxes, labels):
        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=2, color="yellow"))
        ax.text(x0, y0 - 4, label, color="black", fontsize=8, va="bottom", bbox={"fc": "yellow", "lw": 0, "pad": 1})
    ax.set_title("photo: detected faces" if n else "no face found")
    for k in range(max(n, 1)):
        a = axes[0, k + 1]
        if k < n:
            a.imshow(crops[k])
            a.set_title(f"face {k}: aligned {crops[k].size[0]} px", fontsize=9)
    for a in axes.flat:
        a.set_xticks([]), a.set_yticks([])
        a.grid(False)
    if not n:
        axes[0, 1].axis("off")
    fig.suptitle(title)
    return finish_figure(fig, path)


def plot_photo_estimates(
    trajectories, zero_shot, candidates=None, errors=None, eps: float | None = None, path=None, title: str = ""
):
    """Left, per face: the correction trajectory x_0 = y0, ..., x* over the steps t (one point when E_P
    accepts y0) and the zero-shot age from the prompts alone (dotted). Right, when ``errors`` (F x G)
    is given: E_P's predicted error e(x) over the candidate ages (G), the +-eps band where it accepts,
    and each trajectory's points on it. ``trajectories`` empty: a zero-shot model, dotted lines only."""
    plt = pyplot()
    import seaborn as sns

    colors = sns.color_palette("tab10", max(len(zero_shot), 1))
    curve = errors is not None and len(errors)
    fig, axes = plt.subplots(1, 2 if curve else 1, figsize=(13 if curve else 7, 3.9), squeeze=False)
    ax = axes[0, 0]
    longest = 1
    for i, zs in enumerate(zero_shot):
        if len(trajectories):
            t = np.asarray(trajectories[i], float)
            longest = max(longest, len(t) - 1)
            ax.plot(
                range(len(t)),
                t,
                marker="o",
                color=colors[i],
                label=f"face {i}: y0 {t[0]:.1f} -> x* {t[-1]:.1f} ({len(t) - 1} steps)",
            )
        ax.axhline(zs, color=colors[i], ls=":", lw=1.2, label=f"face {i}: zero-shot (prompts) {zs:.1f}")
    ax.set_xlim(-0.3, longest + 0.3)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set(xlabel="correction step t", ylabel="estimated age (years)", title="estimates per face")
    ax.legend(fontsize=8, loc="best")
    if curve:
        ax = axes[0, 1]
        if eps is not None:
            ax.axhspan(-eps, eps, color="0.85", label=f"|e| <= eps = {eps:g}: accepted")
        ax.axhline(0, color="k", lw=0.8)
        for i, e in enumerate(errors):
            ax.plot(candidates, e, color=colors[i], label=f"face {i}: e(x)")
            if len(trajectories):
                t = np.asarray(trajectories[i], float)
                ax.plot(t, np.interp(t, candidates, e), "o", color=colors[i])
        if len(trajectories):  # zoom on the walk: +-15 years around every trajectory
            pts = np.concatenate([np.asarray(t, float) for t in trajectories])
            lo, hi = max(pts.min() - 15, candidates[0]), min(pts.max() + 15, candidates[-1])
            seen = np.asarray(errors)[:, (candidates >= lo) & (candidates <= hi)]
            pad = 0.1 * (seen.max() - seen.min()) + (eps or 0)
            ax.set(xlim=(lo, hi), ylim=(min(seen.min(), -(eps or 0)) - pad, max(seen.max(), eps or 0) + pad))
        ax.set(
            xlabel="candidate age x (years)",
            ylabel="predicted error e(x) (years)",
            title="E_P: predicted error of a candidate age",
        )
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title)
    return finish_figure(fig, path)


def complexity_figure(result: dict, path: str | Path | None = None):
    """Time and memory of one block against the number of tokens N, log-log (a ``bench_mixers`` result)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in dict.fromkeys(r["mixer"] for r in result["rows"]):
        ok = [r for r in result["rows"] if r["mixer"] == m and "seconds" in r]
        if not ok:
            continue
        ns = [r["tokens"] for r in ok]
        s = result["slopes"].get(m, {})
        style = {"marker": "o", "linestyle": "--" if m == "none" else "-"}  # the floor, not a rival mixer
        axes[0].loglog(
            ns,
            [r["seconds"] * 1e3 for r in ok],
            **style,
            label=f"{MIXER_LABELS.get(m, m)} (slope {s.get('time', float('nan')):.2f})",
        )
        axes[1].loglog(
            ns,
            [r["saved_bytes"] / 2**20 for r in ok],
            **style,
            label=f"{MIXER_LABELS.get(m, m)} (slope {s.get('memory', float('nan')):.2f})",
        )
    axes[0].set(xlabel="tokens N", ylabel="forward+backward (ms)", title="time")
    axes[1].set(xlabel="tokens N", ylabel="activations saved for backward (MiB)", title="memory")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"one block, width {result['settings']['dim']}: {result['source']}")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


# -- end-to-end pipeline. The targets: fusion + correction at most 25% of the encoder's time, and a
# training epoch on cached features at least 10x faster than one that encodes the images --------
