"""The learning-curve figure (:func:`cilf.bench.curve.run_learning_curve`): test MAE against the number of
training subjects, log x, 95% CI bands; zero-shot CLIP dotted, the oracle floor dashed, the train-mean baseline
grey. Written like the other figures (:func:`cilf.notebook.plots.finish_figure`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns

from cilf.notebook.plots import finish_figure, pyplot


def _series(entry: dict, counts: list[int]) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """(n, MAE, CI low, CI high) of the counts a curve method has."""
    ns = [n for n in counts if "mae" in entry["points"].get(str(n), {})]
    p = [entry["points"][str(n)] for n in ns]
    return (
        ns,
        np.array([q["mae"] for q in p]),
        np.array([q["mae_ci"][0] for q in p]),
        np.array([q["mae_ci"][1] for q in p]),
    )


def plot_learning_curve(result: dict, path: str | Path | None = None, title: str | None = None):
    """Test MAE (years) per method against training subjects (log x) with 95% CI bands; levels for zero-shot
    CLIP (dotted) and the oracle floor (dashed); the train-mean baseline in grey; the legend outside the data. The
    caption states the epochs rule and the source. Returns the figure (written to ``path`` when given)."""
    plt = pyplot()

    counts, n_all = result["subject_counts"], result["training_subjects"]
    methods = result["methods"]
    curves = [m for m, e in methods.items() if e["kind"] == "curve" and m != "train_mean" and e["points"]]
    colours = dict(zip(curves, sns.color_palette("colorblind", len(curves))))
    fig, ax = plt.subplots(figsize=(10.5, 5.2))
    for m in curves:
        ns, mae, lo, hi = _series(methods[m], counts)
        ax.plot(ns, mae, marker="o", color=colours[m], label=methods[m]["title"], lw=2 if m == "full" else 1.4)
        ax.fill_between(ns, lo, hi, color=colours[m], alpha=0.15, lw=0)
    if methods.get("train_mean", {}).get("points"):
        ns, mae, lo, hi = _series(methods["train_mean"], counts)
        ax.plot(ns, mae, color="grey", lw=1.2, marker=".", label=methods["train_mean"]["title"])
        ax.fill_between(ns, lo, hi, color="grey", alpha=0.1, lw=0)
    others = [m for m in methods if m.startswith("zero_shot@")]  # zero-shot of other CLIP weights
    levels = [("zero_shot", ":", "tab:purple"), *((m, "-.", "tab:pink") for m in others), ("oracle", "--", "black")]
    tops = []
    for m, style, colour in levels:
        p = next(iter(methods.get(m, {}).get("points", {}).values()), None)
        if p and "mae" in p:
            ax.axhline(p["mae"], ls=style, color=colour, lw=1.5, label=f"{methods[m]['title']} ({p['mae']:.2f})")
            ax.axhspan(*p["mae_ci"], color=colour, alpha=0.07, lw=0)
            tops.append(p["mae"])
    for e in methods.values():  # the axis shows every estimate; a band wider than that is cut at the frame
        tops += [q["mae"] for q in e.get("points", {}).values() if "mae" in q]
    if tops:
        ax.set_ylim(0, 1.15 * max(tops))
    ax.set_xscale("log")
    ax.set_xticks(counts)
    ax.set_xticklabels([f"{n}\n(all)" if n == n_all else str(n) for n in counts])
    ax.minorticks_off()
    ax.set(
        xlabel="training subjects (nested subsets; log scale)",
        ylabel="test MAE (years)",
        title=title or f"{result['source']}: learning curve",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # outside the data
    fig.text(
        0.01,
        -0.02,
        f"{result['seeds']} seed(s) x {result['test_images']} test images, the same test split at "
        f"every n; bands: 95% CIs (cut at the frame). {result['epochs_rule']}.\nZero-shot CLIP: nothing trained "
        f"(one level per CLIP); "
        f"oracle floor: trained once on all {n_all} training subjects.",
        fontsize=7.5,
        va="top",
        wrap=True,
    )
    return finish_figure(fig, path)
