"""``python -m cilf bench-correction``: the correction against recalibration, in its default, its cross-fitted and
the paper's joint form, with the shrunk-y0 positive control, over a benchmark's folds x seeds (docs/method.md,
section 7).

Every fold x seed trains the full model as ``bench`` does (same budget, same saved-run folder, its own key), then
:func:`cilf.bench.recalibration.correction_predictions` gives each form's test predictions; the joint form is a
second model (``correction_fit=joint``, as ``bench``'s variant of that name) trained on the same images. The rows pool every
(seed, image) cell with the CIs of ``bench`` (test subjects resampled within folds, seeds by a t interval;
:mod:`cilf.stats`), each comparison paired on the same test images.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch
from tqdm import tqdm

from cilf.app.crossfit import fit_features
from cilf.app.infer import predict_features
from cilf.app.params import Budget, correction_fit_of
from cilf.bench.effects import ci_over
from cilf.bench.recalibration import FORMS, SHRINK, ci_cell, correction_predictions, form_rows
from cilf.bench.runner import VARIANTS, BenchConfig, budget, config_key, fold_runs, prepare
from cilf.data.datasets import subject_ids
from cilf.model.config import default_config

METHOD = "correction_vs_recalibration"  # the saved runs' method key
JOINT = "correction_fit=joint"  # the paper's end-to-end form, trained beside the default on the same images


def _check(bcfg: BenchConfig) -> None:
    """Refuse, before any data is read, what this comparison cannot run."""
    if not default_config().replace(**bcfg.model).posthoc_correction:
        raise ValueError(
            "bench-correction compares the post-hoc correction (correction=true, correction_fit=crossfit) with "
            "recalibration; this model config has none (drop the --set that turns it off)"
        )
    if bcfg.unfreeze_last_blocks:
        raise ValueError(
            "bench-correction reads finished features of a frozen tower; --unfreeze-last-blocks is not supported here"
        )


def run_correction_bench(bcfg: BenchConfig) -> dict:
    """Train the full model on every fold x seed of ``bcfg`` and compare its correction forms (module docstring);
    runs are saved in and reused from ``bcfg.out`` like ``bench``'s. Returns the summary: ``real`` and ``control``
    rows keyed by :data:`FORMS` (:func:`cilf.bench.recalibration.form_rows`), the gate's decisions and ``per_run``."""
    t_start = time.perf_counter()
    _check(bcfg)
    setup = prepare(bcfg, None)
    cfg, feats, fit = setup.base, setup.cf.features, correction_fit_of(bcfg)
    runs, ages, groups = [], {}, {}
    bar = tqdm(
        total=len(setup.folds) * bcfg.seeds, desc=f"bench-correction {setup.ds.source.name}", disable=not bcfg.progress
    )
    for fr in fold_runs(setup):
        ages[fr.fold], groups[fr.fold] = fr.y_te, subject_ids(fr.rows_te)

        def compute(fr=fr) -> dict:
            t0 = time.perf_counter()
            b = Budget(
                bcfg.epochs, bcfg.batch_size, bcfg.lr, bcfg.weight_decay, bcfg.warmup_steps, fr.seed, bcfg.device
            )
            subjects = [setup.ds.rows[setup.cf.rows[j]].get("subject", "") for j in fr.tr]
            model = fit_features(cfg, feats[fr.tr], fr.y_tr, **vars(b), groups=subjects, correction=fit)
            joint = fit_features(cfg.replace(**VARIANTS[JOINT]), feats[fr.tr], fr.y_tr, **vars(b), groups=subjects)
            p = correction_predictions(
                model, (feats[fr.tr], fr.y_tr, subjects), (feats[fr.te], torch.as_tensor(fr.y_te)), b, fit
            )
            p["real"]["joint"] = predict_features(joint, feats[fr.te], device=bcfg.device)["age"]
            return {
                "pred": [float(x) for x in p["real"]["correction"]],  # the model's own ages, as bench saves them
                "forms": {blk: {k: [float(x) for x in v] for k, v in p[blk].items()} for blk in ("real", "control")},
                "settings": p["settings"],
                "seconds": time.perf_counter() - t0,
            }

        key = {
            **fr.key,
            "method": METHOD,
            "config": config_key(cfg, bcfg),
            "epochs": bcfg.epochs,
            "batch_size": bcfg.batch_size,
            "lr": bcfg.lr,
            "weight_decay": bcfg.weight_decay,
            "warmup_steps": bcfg.warmup_steps,
            "shrink": SHRINK,
            "forms": list(FORMS),  # runs saved with fewer forms are computed again
        }
        runs.append(setup.store.get(key, compute, n_test=len(fr.te)))
        bar.update()
    bar.close()
    return _summary(setup, runs, ages, groups, time.perf_counter() - t_start)


def _summary(setup, runs: list[dict], ages: dict, groups: dict, seconds: float) -> dict:
    """The rows of both blocks from the runs (folds outer, seeds inner), per fold (n_seeds, m) predictions."""
    bcfg, folds = setup.bcfg, list(ages)
    y = [ages[f] for f in folds]
    g = [groups[f] for f in folds]  # subjects are drawn within folds: fold-local ids
    g = (
        [np.char.add(f"{k}:", np.asarray(x, dtype=str)) for k, x in enumerate(g)]
        if all(x is not None for x in g)
        else None
    )
    n = bcfg.seeds

    def per_fold(block: str, form: str) -> list[np.ndarray]:
        return [np.array([r["forms"][block][form] for r in runs[k * n : (k + 1) * n]]) for k in range(len(folds))]

    blocks = {
        blk: form_rows(y, {f: per_fold(blk, f) for f in FORMS if f in runs[0]["forms"][blk]}, g)
        for blk in ("real", "control")
    }
    settings = [r["settings"] for r in runs]
    return {
        "source": setup.label,
        "dataset": setup.ds.source.title,
        "protocol": setup.ds.protocol,
        "folds": len(folds),
        "seeds": n,
        "test_images": int(sum(len(a) for a in y)),
        "train_images": [s["train_images"] for s in settings],
        "bench_config": asdict(bcfg),
        "budget": budget(bcfg),
        "ci": ci_over(g is not None),
        "forms": FORMS,
        **blocks,
        "gate": {
            "runs": len(runs),
            "default_applied": sum(s["gate_applied"] for s in settings),
            "crossfit_applied": sum(s["crossfit_gate_applied"] for s in settings),
        },
        "shrink": SHRINK,
        "mae_y0_out_of_fold": float(np.mean([s["mae_y0_out_of_fold"] for s in settings])),
        "spearman_with_abs_y0_error": {  # per run, on its test images: E's |e(y0)| (what E_P reads), its spread
            k: _spread([s[f"spearman_{k}"] for s in settings]) for k in ("abs_error0", "spread0")
        },
        "runs": {"computed": setup.store.computed, "reused": setup.store.reused},
        "seconds": seconds,
        "per_run": runs,
    }


def _spread(values: list) -> dict:
    """Mean, lowest and highest of per-run values (None where undefined), and how many were defined."""
    v = np.array([x for x in values if x is not None], dtype=float)
    if not v.size:
        return {"runs": 0}
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()), "runs": int(v.size)}


def format_correction_bench(result: dict) -> str:
    """The result as plain text: both blocks' rows, then the cross-fitted form against its references."""
    gate = result["gate"]
    lines = [
        f"== the correction against recalibration: default, cross-fitted and joint forms ({result['source']}, "
        f"{result['folds']} splits x {result['seeds']} seeds, {result['test_images']} test images) ==",
        f"CIs: {result['ci']}",
        f"held-out gate left the correction on in {gate['default_applied']}/{gate['runs']} runs (default form) and "
        f"{gate['crossfit_applied']}/{gate['runs']} (cross-fitted)",
    ]
    for blk, title in (("real", "real first estimates"), ("control", f"control: y0 shrunk x{result['shrink']:g}")):
        lines.append(f"-- {title}: MAE [95% CI], minus y0 [95% CI]")
        for form, row in result[blk].items():
            lo, hi = row["mae_ci"]
            lines.append(f"  {form:<11} {row['mae']:6.2f} [{lo:.2f}, {hi:.2f}]   {ci_cell(row, 'minus_ref', True)}")
        c, d = result[blk]["crossfit"], result[blk]["correction"]
        lines += [
            f"  correction minus better recalibration ({d['recal']}): {ci_cell(d, 'minus_recal', True)}",
            f"  cross-fitted minus its own y0 (fold models' mean): {ci_cell(c, 'minus_own_y0', True)}",
            f"  cross-fitted minus default correction: {ci_cell(c, 'minus_default', True)}",
        ]
        if "joint" in result[blk]:
            lines.append(
                f"  joint (the paper's form) minus default correction: {ci_cell(result[blk]['joint'], 'minus_default', True)}"
            )
    sp = result["spearman_with_abs_y0_error"]
    for k, what in (
        ("abs_error0", "E's predicted |e(y0)| (what E_P reads)"),
        ("spread0", "the ensemble's spread at y0"),
    ):
        if sp[k].get("runs"):
            lines.append(
                f"Spearman of {what} with |y0 - y|: {sp[k]['mean']:.2f} on average over {sp[k]['runs']} runs "
                f"({sp[k]['min']:.2f} to {sp[k]['max']:.2f})"
            )
    return "\n".join(lines)
