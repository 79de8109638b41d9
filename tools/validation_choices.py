"""Settings chosen on validation data, never on a test split: ``python -m tools.validation_choices --json FILE``.

The validation world is a SynthAge set drawn with another seed (``--seed``, default 1): its subjects share nothing
with the evaluation set (seed 0) whose test split the notebooks and the claims report. Each candidate of each
setting (``CILFConfig.head_gain_rate``; ``CorrectionFit.error_features``, the features the correction's error
model learns from; ``CorrectionFit.correction_gate``, the held-out gate with its current rule against none) trains the full model (the notebooks' FAST budget: 1,200 images, 6 epochs, 2 cross-fit folds)
on that world's 80-20 split, on both bundled micro-CLIPs, the other settings at their defaults, and is scored on
that world's held-out subjects, paired with the default over subjects x seeds (``cilf.stats.stable_difference``).

The rule, fixed before the run: keep the default unless another candidate errs less with its whole 95% CI below 0;
among those, take the lowest MAE. The JSON holds every candidate's MAE and paired difference, and the choice.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from cilf.bench.runner import BenchConfig, run_benchmark
from cilf.data.synthage import SynthAgeSpec, generate
from cilf.stats import stable_difference

# setting -> (candidates, default, where it is set: a model field or a correction-fit option)
SETTINGS = {
    "head_gain_rate": ((1.0, 3.0, 10.0, 30.0), 10.0, "model"),
    "error_features": (("final", "out_of_fold"), "final", "fit"),
    "correction_gate": ((True, False), True, "fit"),  # the held-out gate (its rule was revised after a test MAE)
}
BACKBONES = ("bundled", "bundled-web")


def errors(result: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(seeds, images) absolute errors of the full model on the one split run, and the images' subjects."""
    ((fold, ages),) = result["test_ages"].items()
    y = np.asarray(ages, dtype=float)
    err = np.array([np.abs(np.asarray(r["pred"], dtype=float) - y) for r in result["per_run"]["full"]])
    subjects = result["test_subjects"].get(fold)
    return err, None if subjects is None else np.asarray(subjects)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--seed", type=int, default=1, help="SynthAge seed of the validation world (not 0)")
    ap.add_argument("--n-images", type=int, default=1200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="runs/validation")
    args = ap.parse_args()
    if args.seed == 0:
        raise SystemExit("error: seed 0 is the evaluation world; choose on another")
    root = generate(SynthAgeSpec(n_images=args.n_images, seed=args.seed), progress=False)
    report = {
        "validation_world": f"SynthAge (synthetic), seed {args.seed}, {args.n_images} images, its 80-20 split",
        "budget": "6 epochs, lr 2e-3, batch 64, 2 cross-fit folds (the notebooks' FAST budget)",
        "rule": "keep the default unless a candidate errs less with its whole 95% CI below 0; then the lowest MAE",
        "settings": {},
    }
    for setting, (candidates, default, where) in SETTINGS.items():
        report["settings"][setting] = {"default": default, "backbones": {}}
        for pretrained in BACKBONES:
            errs, subjects = {}, None
            for value in candidates:
                model = {"pretrained": pretrained, **({setting: value} if where == "model" else {})}
                fit = {setting: value} if where == "fit" else {}
                res = run_benchmark(
                    BenchConfig(
                        dataset="synthage",
                        root=str(root),
                        max_folds=1,
                        seeds=args.seeds,
                        variants=("full",),
                        peers=(),
                        n_images=args.n_images,
                        epochs=6,
                        crossfit_folds=2,
                        out=args.out,
                        progress=False,
                        model=model,
                        **fit,
                    )
                )
                errs[value], subjects = errors(res)
            rows = {}
            for value in candidates:
                row = {"mae": float(errs[value].mean())}
                if value != default:
                    d = stable_difference(errs[value], errs[default], groups=subjects)
                    row.update(minus_default=d.estimate, ci=[d.ci_low, d.ci_high])
                rows[str(value)] = row
            better = [v for v in candidates if v != default and rows[str(v)]["ci"][1] < 0]
            chosen = min(better, key=lambda v: rows[str(v)]["mae"]) if better else default
            entry = {"candidates": rows, "chosen": chosen, "images": int(errs[default].shape[1])}
            report["settings"][setting]["backbones"][pretrained] = entry
            print(setting, pretrained, json.dumps(entry))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
