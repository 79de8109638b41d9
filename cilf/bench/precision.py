"""How precise each claim's effect is, and what an interval of +-0.1 y would take.

A paired difference's CI has two sources of width (docs/statistics.md, "How large the test split must be"):
the test images (shrinks with more of them) and the training seeds (shrinks only with more seeds). For every
row of :func:`cilf.bench.claims.claims_table` this module reads the benchmark's ``delta_precision``
(:func:`cilf.stats.precision_plan`, normal approximation) and says, per claim, how wide the interval is now,
how much of that each source explains, and how many test images and seeds per split would bring it to the
target. On SynthAge the test split can be made as large as wanted (it is procedural); ``dataset_images``
scales the generated set's size by the same factor as the test images, under the same protocol.
"""

from __future__ import annotations

import math


def precision_rows(claims: list[dict], result: dict) -> list[dict]:
    """One row per claim with a measured effect: id, comparison, half_width (of the bootstrap CI), image_part,
    seed_part, image_sd, seed_sd, images_needed (test images), dataset_images (the dataset size giving that many
    under the same protocol), seeds_needed (per split), target, identical (the two methods' estimates equal everywhere: nothing to measure)
    and met (half_width <= target, and not identical)."""
    rows = []
    test_images, images = result.get("test_images"), result.get("images")
    for c in claims:
        p = c.get("precision")
        if not p or c.get("ci_low") is None:
            continue
        half = (c["ci_high"] - c["ci_low"]) / 2
        scale = (images / test_images) if images and test_images else None
        # both methods gave the same estimate on every image and seed (e.g. a correction its gate switched off):
        # a width of 0 then says nothing about precision, so it is not counted as met
        identical = half == 0 and p["image_sd"] == 0 and not p["seed_sd"]
        rows.append(
            {
                "id": c["id"],
                "comparison": c["comparison"],
                "half_width": half,
                "image_part": p["image_part"],
                "seed_part": p["seed_part"],
                "image_sd": p["image_sd"],
                "seed_sd": p["seed_sd"],
                "n_images": p["n_images"],
                "n_seeds": p["n_seeds"],
                "images_needed": p["images_needed"],
                "dataset_images": (math.ceil(p["images_needed"] * scale) if scale else None),
                "seeds_needed": p["seeds_needed"],
                "target": p["target"],
                "identical": identical,
                "met": half <= p["target"] and not identical,
            }
        )
    return rows


def _num(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _int(x) -> str:
    return "-" if x is None else f"{x:,}"


COLUMNS = (
    "claim",
    "CI half-width now",
    "from test images",
    "from seeds",
    "test images needed",
    "dataset size for that",
    "seeds per split needed",
)


def _cells(r: dict) -> tuple[str, ...]:
    # an effect the seeds do not move at all (seed part 0) needs no more seeds: show the minimum of 2
    status = "identical estimates" if r.get("identical") else ("met" if r["met"] else "not met")
    return (
        r["id"],
        f"{_num(r['half_width'])} ({status})",
        _num(r["image_part"]),
        _num(r["seed_part"]),
        _int(r["images_needed"]),
        _int(r["dataset_images"]),
        _int(r["seeds_needed"]),
    )


def _summary(rows: list[dict]) -> str:
    if not rows:
        return "no claim has a measured effect"
    t = rows[0]["target"]
    met = [r["id"] for r in rows if r["met"]]
    same = [r["id"] for r in rows if r.get("identical")]
    worst_img = max(rows, key=lambda r: r["images_needed"])
    seeded = [r for r in rows if r["seeds_needed"] is not None]
    text = (
        f"+-{t:g} y reached now by {len(met)} of {len(rows)} claims"
        + (f" ({', '.join(met)})" if met else "")
        + (f"; {', '.join(same)}: identical estimates, no difference to measure" if same else "")
        + f"; now {rows[0]['n_images']:,} test images x {rows[0]['n_seeds']} seeds per split. "
        f"Each part brought to {t:g}/sqrt(2) y: up to {worst_img['images_needed']:,} test images "
        f"({worst_img['id']})"
    )
    if seeded:
        worst_seed = max(seeded, key=lambda r: r["seeds_needed"])
        text += f" and up to {worst_seed['seeds_needed']} seeds per split ({worst_seed['id']})"
    return text + "; more test images do not shrink the seed part."


def format_precision(rows: list[dict]) -> str:
    """The rows as a plain-text table with a one-line summary under it."""
    cells = [COLUMNS] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip() for c in cells]
    return "\n".join(lines + [_summary(rows)])


def precision_markdown(rows: list[dict]) -> str:
    """The rows as a markdown table with the summary under it."""
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(out + ["", _summary(rows)]) + "\n"


__all__ = ["precision_rows", "format_precision", "precision_markdown"]
