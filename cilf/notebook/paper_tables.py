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
from cilf.notebook.plots import finish_figure, pyplot

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


def plot_ablations_and_peers(result: dict, path=None, title: str = ""):
    """Left: MAE of every ablation and peer with its 95% CI, and the difference from the full model with its CI
    and verdict (mean +- std for results without CIs); the oracle floor, where the result has it, as a dashed
    line. Right: CS curves theta = 0..10 (the oracle's dashed)."""
    names = [m for m in result["methods"] if "mae" in result["methods"][m] and m != ORACLE]
    floor = result["methods"].get(ORACLE, {})
    summaries = [result["methods"][m] for m in names]
    fig, (a, b) = pyplot().subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1, 1.1]})
    maes, lows, highs = (list(v) for v in zip(*(_mae_bar(s) for s in summaries)))
    colors = ["tab:blue" if m == "full" else "tab:cyan" if m in VARIANTS else "tab:grey" for m in names]
    yy = np.arange(len(names))
    a.barh(yy, maes, xerr=[lows, highs], color=colors, capsize=2)
    for y_, m_, h_, name, s in zip(yy, maes, highs, names, summaries):  # ablations differ by tenths of a year
        label = mae_text(s) + (f"   Δ {delta_text(s, name)} {s['verdict']}" if "verdict" in s else "")
        a.text(m_ + h_ + 0.01 * max(maes), y_, label, va="center", fontsize=7)
    a.set_xlim(0, 1.6 * max(m_ + h_ for m_, h_ in zip(maes, highs)))
    a.set_yticks(yy, [method_title(m) for m in names], fontsize=8)
    a.invert_yaxis()
    a.set_xlabel(f"test MAE (years), {_bar_kind(summaries)}")
    a.set_title("ablations (blue) and peers (grey)", fontsize=10)
    if "mae" in floor:
        a.axvline(floor["mae"], color="black", ls="--", lw=1.2, label=f"{ORACLE_TITLE}: {mae_text(floor)}")
        a.legend(fontsize=7, loc="lower right")
    palette = sns.color_palette("husl", len(names))
    for m, c in zip(names, palette):
        curve = result["methods"][m]["cs_curve"]
        th = sorted(curve, key=int)
        b.plot(
            [int(t) for t in th],
            [curve[t] for t in th],
            marker="o",
            ms=3,
            color=c,
            lw=2.5 if m == "full" else 1.2,
            label=method_title(m),
        )
    if "cs_curve" in floor:
        th = sorted(floor["cs_curve"], key=int)
        b.plot(
            [int(t) for t in th], [floor["cs_curve"][t] for t in th], color="black", ls="--", lw=1.2, label=ORACLE_TITLE
        )
    b.set_xlabel("θ (years)")
    b.set_ylabel("CS(θ) %")
    b.set_title("cumulative score", fontsize=10)
    b.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.suptitle(title, fontsize=10)
    return finish_figure(fig, path)
