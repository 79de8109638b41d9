"""Tables and figures for notebooks 05 and 06: the paper's reported numbers (with their source),
dataset availability, and benchmark results of this run, each labelled with where it comes from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from cilf.bench.effects import delta_text, mae_text
from cilf.bench.oracle import NAME as ORACLE
from cilf.bench.oracle import TITLE as ORACLE_TITLE
from cilf.bench.runner import VARIANTS, method_title
from cilf.data.open import default_root
from cilf.data.sources import get_source
from cilf.labels import PAPER
from cilf.notebook.plots import finish_figure, pyplot, save_figure

PAPER_SOURCE = f"{PAPER}: Shou et al., CILF-CIAE, Neural Networks 197, 108518 (2026), abstract"
ARXIV_V1_SOURCE = f"{PAPER}: arXiv 2312.01758 v1 (zero-shot CZL-CIAE), abstract"

# Only these figures are published in accessible form (docs/method.md, section 0).
PAPER_REPORTED = [
    {
        "dataset": "MORPH-II",
        "protocol": "S2 (setting B)",
        "method": "CILF-CIAE",
        "MAE": 1.68,
        "CS@5 %": None,
        "source": PAPER_SOURCE,
    },
    {
        "dataset": "MORPH-II",
        "protocol": "S2 (setting B)",
        "method": "MCGRL",
        "MAE": 1.77,
        "CS@5 %": None,
        "source": PAPER_SOURCE,
    },
    {
        "dataset": "MORPH-II",
        "protocol": "S2 (setting B)",
        "method": "LRA-GNN",
        "MAE": 2.21,
        "CS@5 %": None,
        "source": PAPER_SOURCE,
    },
] + [
    {
        "dataset": "MORPH-II",
        "protocol": f"{s} (zero-shot)",
        "method": "CZL-CIAE",
        "MAE": m,
        "CS@5 %": c,
        "source": ARXIV_V1_SOURCE,
    }
    for s, m, c in (("S1", 15.7, 70.2), ("S2", 17.8, 70.4), ("S3", 18.1, 68.3))
]


def paper_table() -> pd.DataFrame:
    """Every number the paper reports in accessible form, with its source."""
    return pd.DataFrame(PAPER_REPORTED)


def availability(datasets, roots: dict[str, str | Path] | None = None) -> pd.DataFrame:
    """For each dataset: found or "not found at PATH", with how to get it."""

    rows = []
    for name in datasets:
        src = get_source(name)
        root = Path((roots or {}).get(name) or default_root(name))
        try:
            src.check_root(root)
            status = f"found at {root}"
        except FileNotFoundError:
            status = f"not found at {root}"
        rows.append(
            {"dataset": src.title, "status": status, "default protocol": src.default_protocol, "how to get it": src.get}
        )
    return pd.DataFrame(rows)


def results_table(result: dict, methods=None) -> pd.DataFrame:
    """One row per method: MAE [95% CI], CS@1, CS@5, coverage, MAE minus the full model's [95% CI] with its
    verdict (cilf.bench.effects), the wall-clock seconds per run (fit + predict; the shared CLIP encoding
    is not in it), the number of runs (folds x seeds) and the source."""
    rows = []
    for name, s in result["methods"].items():
        if methods is not None and name not in methods:
            continue
        if "mae" not in s:
            rows.append(
                {"method": method_title(name), "MAE [95% CI]": "skipped: " + s["skipped"], "source": result["source"]}
            )
            continue
        rows.append(
            {
                "method": method_title(name),
                "MAE [95% CI]": mae_text(s),
                "CS@1 %": round(s["cs1"], 1),
                "CS@5 %": round(s["cs5"], 1),
                "coverage %": round(s["coverage_pct"], 1),
                "Δ vs full [95% CI]": delta_text(s, name),
                "verdict": s.get("verdict", ""),
                "s/run": round(s["seconds"], 1) if s.get("seconds") is not None else None,
                "runs": s["runs"],
                "source": result["source"],
            }
        )
    return pd.DataFrame(rows)


def _mae_bar(s: dict) -> tuple[float, float, float]:
    """(MAE, error below, error above): the 95% CI when the summary has one, else mean +- std over runs."""
    if "mae_ci" in s:
        return s["mae_pooled"], s["mae_pooled"] - s["mae_ci"][0], s["mae_ci"][1] - s["mae_pooled"]
    return s["mae"], s["mae_std"], s["mae_std"]


def _bar_kind(summaries) -> str:
    return "95% CI" if all("mae_ci" in s for s in summaries) else "mean ± std"


def plot_protocol_bars(results: list[dict], methods, path=None, title: str = ""):
    """MAE per method with its 95% CI (mean +- std over folds x seeds for results without CIs), one group per
    result (protocol); the oracle floor, where a result has it, as a dashed line across its group."""
    methods = [m for m in methods if m != ORACLE]
    used = [r["methods"][m] for r in results for m in methods if "mae" in r["methods"].get(m, {})]
    rows = [
        {
            "protocol": r["protocol"],
            "method": method_title(m),
            **dict(zip(("mae", "lo", "hi"), _mae_bar(r["methods"][m]))),
        }
        for r in results
        for m in methods
        if "mae" in r["methods"].get(m, {})
    ]
    df = pd.DataFrame(rows)
    fig, ax = pyplot().subplots(figsize=(10.5, 3.8))
    sns.barplot(df, x="protocol", y="mae", hue="method", ax=ax, palette="deep", errorbar=None)
    for bar_group, (_, sub) in zip(ax.containers, df.groupby("method", sort=False)):
        ax.errorbar(
            [b.get_x() + b.get_width() / 2 for b in bar_group],
            sub["mae"],
            yerr=[sub["lo"], sub["hi"]],
            fmt="none",
            ecolor="black",
            capsize=2,
            lw=0.8,
        )
        ax.bar_label(bar_group, fmt="%.2f", fontsize=7, padding=2)
    groups = list(dict.fromkeys(df["protocol"]))
    floors = [
        (groups.index(r["protocol"]), r["methods"][ORACLE]["mae"])
        for r in results
        if "mae" in r["methods"].get(ORACLE, {}) and r["protocol"] in groups
    ]
    for j, (x, mae) in enumerate(floors):
        ax.hlines(
            mae,
            x - 0.45,
            x + 0.45,
            colors="black",
            linestyles="--",
            lw=1.2,
            label=f"{ORACLE_TITLE} (line)" if j == 0 else None,
        )
        ax.annotate(f"{mae:.2f}", (x + 0.45, mae), fontsize=7, va="bottom", ha="right")
    ax.set_ylabel(f"test MAE (years), {_bar_kind(used)}")
    ax.set_ylim(0, 1.12 * (df["mae"] + df["hi"]).max())
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return finish_figure(fig, path)


BASELINE = "train_mean"  # the trivial baseline's name among the peers


def _save(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


def _zoom(
    rows: list[tuple[float, float, float]], anchor: float, floor: float | None
) -> tuple[list[bool], float, float]:
    """Which rows (MAE, error below, error above) fit a zoomed MAE axis, and its limits: rows within twice
    ``anchor`` (the full model's MAE) stay on it, with the floor; the rest are marked at the right edge."""
    fits = [m <= 2 * anchor for m, _, _ in rows]
    lows = [m - lo for (m, lo, _), f in zip(rows, fits) if f] + ([floor] if floor is not None else [])
    highs = [m + hi for (m, _, hi), f in zip(rows, fits) if f]
    lo, hi = min(lows), max(highs)
    pad = 0.08 * (hi - lo)
    return fits, lo - pad, hi + pad


def _mae_dots(ax, names, summaries, colors, floor: dict, sizes=None) -> None:
    """MAE dots with CI whiskers, one row per method (top to bottom), on an axis zoomed on the full model's
    neighbourhood; rows far above it (a baseline at 3x the error) are arrows at the right edge with their MAE."""
    rows = [_mae_bar(s) for s in summaries]
    anchor = rows[names.index("full")][0] if "full" in names else float(np.median([r[0] for r in rows]))
    fits, x0, x1 = _zoom(rows, anchor, floor.get("mae"))
    yy = np.arange(len(names))
    for y, (m, lo, hi), c, ok, size in zip(yy, rows, colors, fits, sizes or [6] * len(names)):
        if ok:
            ax.errorbar(m, y, xerr=[[lo], [hi]], fmt="o", color=c, ms=size, capsize=2.5, lw=1.4)
        else:
            ax.plot(x1, y, marker=">", color=c, ms=7, clip_on=False)
            ax.annotate(
                f"{m:.2f} (off the axis)",
                (x1, y),
                xytext=(-10, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                fontsize=7,
                color=c,
            )
    if "mae" in floor:
        ax.axvline(floor["mae"], color="black", ls="--", lw=1.2, label=f"{ORACLE_TITLE}: {mae_text(floor)}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.1), frameon=False)
    ax.set_xlim(x0, x1)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_yticks(yy, [method_title(m) for m in names], fontsize=8)


def plot_ablations_and_peers(result: dict, path=None, title: str = ""):
    """Left: MAE of every ablation (blue; the full model dark) and peer (grey) with its 95% CI (mean +- std for
    results without CIs) on an axis zoomed on the full model's neighbourhood (far-off baselines marked at its
    edge), the oracle floor, where the result has it, dashed; beside each row its MAE [CI], the paired difference
    from the full model [CI] and the verdict. Right: CS curves theta = 0..10 with the full model, its best peer
    and the train-mean baseline highlighted, the oracle's dashed and every other method grey; legend outside."""
    methods = result["methods"]
    names = [m for m in methods if "mae" in methods[m] and m != ORACLE]
    floor = methods.get(ORACLE, {})
    summaries = [methods[m] for m in names]
    fig = pyplot().figure(figsize=(17, 0.32 * len(names) + 2.4), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[1.0, 0.85, 1.0])
    a = fig.add_subplot(grid[0, 0])
    b = fig.add_subplot(grid[0, 2])
    colors = ["#08519c" if m == "full" else "#6baed6" if m in VARIANTS else "0.45" for m in names]
    _mae_dots(a, names, summaries, colors, floor, sizes=[8 if m == "full" else 5 for m in names])
    a.set_xlabel(f"test MAE (years), {_bar_kind(summaries)}")
    a.set_title("ablations (blue; full model dark) and peers (grey)", fontsize=10)
    table = fig.add_subplot(grid[0, 1], sharey=a)  # the numbers, off the data: a column of text beside the dots
    table.axis("off")
    for y, name, s in zip(range(len(names)), names, summaries):
        row = f"{mae_text(s):<21s} {delta_text(s, name):<23s} {s.get('verdict', '')}"
        table.text(0.0, y, row, transform=table.get_yaxis_transform(), va="center", fontsize=7, family="monospace")
    head = f"{'MAE [95% CI]':<21s} {'Δ vs full [95% CI]':<23s} verdict"
    table.set_title(head, loc="left", fontsize=7, family="monospace", weight="bold")

    peers = [m for m in names if m not in VARIANTS and m != BASELINE]
    best = min(peers, key=lambda m: _mae_bar(methods[m])[0]) if peers else None
    styles = {
        "full": dict(color="#08519c", lw=2.8, zorder=4, label=method_title("full")),
        best: dict(color="tab:orange", lw=2.0, zorder=3, label=f"best peer: {method_title(best)}" if best else ""),
        BASELINE: dict(color="tab:brown", lw=2.0, ls="-.", zorder=3, label=method_title(BASELINE)),
    }
    grey = dict(color="0.72", lw=0.9, zorder=1)
    labelled_grey = False
    for m in names:
        curve = methods[m]["cs_curve"]
        th = sorted(curve, key=int)
        style = styles.get(m)
        if style is None:
            style = {**grey, "label": None if labelled_grey else "every other ablation and peer"}
            labelled_grey = True
        b.plot([int(t) for t in th], [curve[t] for t in th], marker="o", ms=2.5, **style)
    if "cs_curve" in floor:
        th = sorted(floor["cs_curve"], key=int)
        b.plot(
            [int(t) for t in th], [floor["cs_curve"][t] for t in th], color="black", ls="--", lw=1.2, label=ORACLE_TITLE
        )
    b.set_xlabel("θ (years)")
    b.set_ylabel("CS(θ) %: share of test images with |error| <= θ")
    b.set_ylim(0, 100)
    b.set_title("cumulative score", fontsize=10)
    handles, labels = b.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("every other"))  # grey last
    b.legend(
        [handles[i] for i in order],
        [labels[i] for i in order],
        fontsize=7.5,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        frameon=False,
    )
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_protocol_dots(results: list[dict], methods, path=None, title: str = ""):
    """MAE per method (rows) with its 95% CI (mean +- std over folds x seeds for results without CIs) as dots,
    one colour per result (protocol) side by side in each row, on an axis that starts near the data: methods
    within twice the full model's MAE are on it, with each protocol's oracle floor dashed in its colour; methods
    far above (the off-the-shelf peer, the train-mean baseline) are arrows at the right edge with their MAE."""
    methods = [m for m in methods if m != ORACLE]
    names = [m for m in methods if any("mae" in r["methods"].get(m, {}) for r in results)]
    colours = sns.color_palette("colorblind", len(results))
    points = [
        (j, i, _mae_bar(r["methods"][m]))
        for j, r in enumerate(results)
        for i, m in enumerate(names)
        if "mae" in r["methods"].get(m, {})
    ]
    full = [b[0] for j, i, b in points if names[i] == "full"]
    anchor = max(full) if full else float(np.median([b[0] for _, _, b in points]))
    floors = [r["methods"][ORACLE]["mae"] for r in results if "mae" in r["methods"].get(ORACLE, {})]
    fits, x0, x1 = _zoom([b for _, _, b in points], anchor, min(floors) if floors else None)
    fig, ax = pyplot().subplots(figsize=(10, 0.55 * len(names) * max(1, len(results) / 2) + 1.8))
    step = 0.7 / max(len(results), 1)
    for (j, i, (m, lo, hi)), ok in zip(points, fits):
        y = i + (j - (len(results) - 1) / 2) * step
        label = results[j]["protocol"] if i == min(i2 for j2, i2, _ in points if j2 == j) else None
        if ok:
            ax.errorbar(
                m,
                y,
                xerr=[[lo], [hi]],
                fmt="o",
                color=colours[j],
                ms=7 if names[i] == "full" else 5,
                capsize=2.5,
                lw=1.4,
                label=label,
            )
            ax.annotate(f"{m:.2f}", (m + hi, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
        else:
            ax.plot(x1, y, marker=">", color=colours[j], ms=7, clip_on=False, label=label)
            ax.annotate(
                f"{m:.2f} (off the axis)",
                (x1, y),
                xytext=(-10, 0),
                textcoords="offset points",
                ha="right",
                va="center",
                fontsize=7,
                color=colours[j],
            )
    for j, r in enumerate(results):
        f = r["methods"].get(ORACLE, {})
        if "mae" in f:
            ax.axvline(
                f["mae"], color=colours[j], ls="--", lw=1.2, label=f"{ORACLE_TITLE}, {r['protocol']}: {mae_text(f)}"
            )
    ax.set_xlim(x0, x1)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_yticks(range(len(names)), [method_title(m) for m in names], fontsize=9)
    used = [r["methods"][m] for r in results for m in names if "mae" in r["methods"].get(m, {})]
    ax.set_xlabel(f"test MAE (years), {_bar_kind(used)}")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda k: labels[k].startswith(ORACLE_TITLE))  # protocols, then floors
    ax.legend(
        [handles[k] for k in order],
        [labels[k] for k in order],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        frameon=False,
        title="protocol",
        title_fontsize=8,
    )
    ax.set_title(title, fontsize=10)
    return finish_figure(fig, path)
