"""``python -m cilf curve``: test MAE against the number of training subjects (the low-data learning curve).

The paper's claim is that CLIP's language prior matters most when labelled data are scarce. For each subject
count n and seed, n training subjects are drawn (seeded and nested: the 10 are inside the 30, and so on), every
method trains on those subjects' images only and is scored on the SAME full test split, so every point is
paired with every other. With ``steps`` every subset trains for the same number of optimisation steps (epochs
= ceil(steps / batches per epoch)), so data size is not confounded with optimisation; without it, small subsets
get at least ``min_steps`` (:func:`curve_epochs`).

Zero-shot CLIP trains nothing, so it is one level, the same at every n. The oracle floor (age from SynthAge's
latent variables) is trained once, on all training subjects, and drawn as a level too: it is the floor of the
full training set, not retrained per n. The train-mean baseline is retrained per n (the subset's mean age).
``zero_shot_weights`` adds the zero-shot level of other CLIP weights of the same model (e.g. the exact-caption
micro-CLIP beside the default web-caption one), scored on the same test images.

Everything reuses the benchmark runner (:mod:`cilf.bench.runner`): the same dataset, fold, frozen CLIP feature
cache and run store under ``out``, so reruns are instant and the all-subjects points share the benchmark's saved
runs when their budgets match.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from cilf.app.params import Budget, CorrectionFit, correction_fit_of
from cilf.bench.effects import CONFIDENCE, N_RESAMPLES
from cilf.bench.peers import PEERS
from cilf.bench.runner import (
    BASELINE,
    VARIANTS,
    BenchConfig,
    FoldRun,
    budget,
    check_model_overrides,
    fold_runs,
    method_title,
    prepare,
    run_peer,
    run_variant,
)
from cilf.data.datasets import subject_ids
from cilf.io import json_text, write_text
from cilf.options import check_options, option
from cilf.stats import DEFAULT_SEEDS, mean_ci, stable_difference, verdict

REFERENCES = (
    "zero_shot",
    "oracle",
    "oracle_latent",
)  # drawn as levels: zero-shot trains nothing; the oracle is the all-subjects floor
EPOCHS_RULE = (
    "epochs = max(epochs, ceil(min_steps x batch / training images)): every subset sees at least "
    "min_steps x batch training samples"
)
STEPS_RULE = (
    "a fixed budget: epochs = ceil(steps / batches per epoch), the same number of optimisation steps at every "
    "size (up to one epoch's batches more)"
)
DRAW_SALT = 104729  # keeps the subject draws apart from the training seeds' random streams


@dataclass
class CurveConfig(CorrectionFit, Budget):
    """A learning curve: its :class:`~cilf.app.params.Budget` (``epochs`` the least per method, see
    ``EPOCHS_RULE``; seeds ``seed`` .. ``seed + seeds - 1``), how the post-hoc correction is fitted
    (:class:`~cilf.app.params.CorrectionFit`), the dataset, subject counts and methods."""

    epochs: int = option(15, "least epochs of every method", low=1)
    batch_size: int = option(64, "batch size", low=2)
    lr: float = option(2e-3, "learning rate", positive=True)
    device: str = "cpu"
    dataset: str = option("synthage", "the dataset (cilf.data.sources.SOURCES)")
    root: str | None = option(None, "dataset folder (default $CILF_DATASETS/<dataset>; synthage: generated)")
    n_images: int = option(2000, "SynthAge size when --root is not given", low=50)
    protocol: str | None = option(None, "named protocol (default: the dataset's standard one; its first fold is used)")
    subjects: tuple[int | None, ...] = (10, 30, 100, 300, 1000, None)  # None: every training subject
    seeds: int = option(DEFAULT_SEEDS, "seeds (each draws its own nested subsets and trains with its seed)", low=1)
    methods: tuple[str, ...] = (
        "full",
        "correction=off",
        "context=off",
        "dex",
        "mean_variance",
        "zero_shot",
        "oracle",
        "train_mean",
    )  # bench variant names and peer names
    min_steps: int = option(
        200, "small subsets train max(epochs, ceil(min_steps x batch / training images)) epochs", low=0
    )
    steps: int = option(
        0, "the same number of optimisation steps at every size (overrides epochs and min_steps; 0: off)", low=0
    )
    zero_shot_weights: tuple[str, ...] = ()  # other ``pretrained`` values whose zero-shot level is drawn too
    out: str = option("runs/bench", "results folder; the benchmark's saved runs there are reused")
    cache_dir: str | None = None  # feature cache (default $CILF_CACHE or ~/.cache/cilf)
    progress: bool = True
    model: dict = field(default_factory=dict)  # CILFConfig overrides for every variant

    def __post_init__(self) -> None:
        self.subjects = tuple(None if s is None else int(s) for s in self.subjects)
        self.methods = tuple(self.methods)
        self.zero_shot_weights = tuple(self.zero_shot_weights)
        if not self.subjects:
            raise ValueError("CurveConfig.subjects is empty; give subject counts, e.g. (10, 30, None)")
        bad = [s for s in self.subjects if s is not None and s < 1]
        if bad:
            raise ValueError(f"CurveConfig.subjects {bad}: counts must be at least 1 (None = all subjects)")
        unknown = [m for m in self.methods if m not in VARIANTS and m not in PEERS]
        if unknown:
            raise ValueError(
                f"unknown method(s) {unknown}; choose from the variants {list(VARIANTS)} and the peers {list(PEERS)}"
            )
        check_options(self)
        check_model_overrides(self.model)


def curve_epochs(epochs: int, min_steps: int, batch_size: int, n_train_images: int, steps: int = 0) -> int:
    """The epochs a subset of ``n_train_images`` trains for: ceil(steps / batches per epoch) when ``steps``
    (a fixed budget), else max(epochs, ceil(min_steps x batch / n))."""
    if steps:
        return math.ceil(steps / math.ceil(max(1, n_train_images) / batch_size))
    return max(int(epochs), math.ceil(min_steps * batch_size / max(1, n_train_images)))


def zero_shot_level_name(pretrained: str) -> str:
    """The method name of the zero-shot level of other CLIP weights: ``zero_shot@<pretrained>``."""
    return f"zero_shot@{pretrained}"


def subject_order(subjects: list[str], seed: int) -> list[str]:
    """The training subjects (each once, in order of first appearance) permuted by ``seed``; the first n of
    this order are the n-subject subset, so subsets of one seed are nested."""
    unique = list(dict.fromkeys(subjects))
    perm = np.random.default_rng([int(seed), DRAW_SALT]).permutation(len(unique))
    return [unique[i] for i in perm]


def _curve_budget(cfg: CurveConfig) -> dict:
    """The training budget every point shares (``cilf.bench.runner.budget``); with a fixed step budget the epochs
    differ by size (the result's ``epochs``), so they read "per size" and ``steps`` is given."""
    b = budget(_bench_config(cfg, cfg.epochs))
    if cfg.steps:
        for part in ("cilf", "peers"):
            b[part]["epochs"] = "per size"
        b["steps"] = cfg.steps
    return b


def _bench_config(cfg: CurveConfig, epochs: int) -> BenchConfig:
    """The benchmark settings of one point (``epochs`` for every method); fields bench lacks are left out."""
    names = {f.name for f in dataclasses.fields(BenchConfig)}
    want = dict(
        dataset=cfg.dataset,
        root=cfg.root,
        protocol=cfg.protocol,
        seeds=cfg.seeds,
        max_folds=1,
        variants=tuple(m for m in cfg.methods if m in VARIANTS),
        peers=tuple(m for m in cfg.methods if m in PEERS and m not in VARIANTS),
        epochs=epochs,
        peer_epochs=epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        seed=cfg.seed,
        n_images=cfg.n_images,
        out=cfg.out,
        cache_dir=cfg.cache_dir,
        device=cfg.device,
        progress=cfg.progress,
        model=dict(cfg.model),
        **dataclasses.asdict(correction_fit_of(cfg)),
    )
    return BenchConfig(**{k: v for k, v in want.items() if k in names})


def _subset(fr: FoldRun, rows_tr: list[dict], chosen: set[str], n: int, n_all: int, cf) -> FoldRun:
    """``fr`` restricted to the training images of the ``chosen`` subjects (test split unchanged). The
    all-subjects subset keeps the benchmark's key, so it shares the benchmark's saved runs."""
    keep = [k for k, r in enumerate(rows_tr) if r.get("subject", "") in chosen]
    tr = [fr.tr[k] for k in keep]
    key = dict(fr.key)
    if n < n_all:
        draw = hashlib.sha1(json.dumps(sorted(chosen)).encode()).hexdigest()[:12]
        key.update(curve_subjects=n, curve_draw=draw)
    return dataclasses.replace(fr, tr=tr, y_tr=cf.ages[tr], key=key)


def _errors(runs: list[dict], y_te: np.ndarray) -> np.ndarray:
    """(n_seeds, m) absolute errors from runs holding ``pred`` (NaN where no prediction)."""
    pred = np.array([[np.nan if p is None else p for p in r["pred"]] for r in runs], dtype=np.float64)
    return np.abs(pred - y_te[None, :])


def _kept(groups: np.ndarray | None, ok: np.ndarray) -> np.ndarray | None:
    return None if groups is None else groups[ok]


def _mae_summary(err: np.ndarray, groups: np.ndarray | None = None) -> dict:
    """MAE over seeds x images with its 95% CI, resampling ``groups`` (the test images' subjects) when known
    (images some seed did not predict are left out, counted)."""
    ok = np.isfinite(err).all(axis=0)
    out = {"runs": int(err.shape[0]), "coverage_pct": float(100 * ok.mean()), "images": int(ok.sum())}
    if ok.sum() >= 2:
        eff = mean_ci(err[:, ok], confidence=CONFIDENCE, n_resamples=N_RESAMPLES, seed=0, groups=_kept(groups, ok))
        per_seed = err[:, ok].mean(axis=1)
        out.update(
            mae=eff.estimate,
            mae_ci=[eff.ci_low, eff.ci_high],
            mae_std=float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
        )
    return out


def run_learning_curve(cfg: CurveConfig) -> dict:
    """Train every method on nested subject subsets and score it on the full test split; returns the summary
    (also written to ``<out>/<dataset>-<protocol>/learning_curve.json``).

    Result: per method and subject count, the test MAE over seeds x test images with a 95% CI; the paired
    difference full - zero_shot per count; the counts actually used (larger ones are clipped, said in "notes").
    """
    t_start = time.perf_counter()
    setup = prepare(_bench_config(cfg, cfg.epochs), None)
    runs0 = list(fold_runs(setup))  # one per seed, on the first fold
    cf, rows = setup.cf, setup.ds.rows
    rows_tr = [rows[cf.rows[j]] for j in runs0[0].tr]
    notes = []
    if len(setup.ds.folds()) > 1:
        notes.append(
            f"protocol {setup.ds.protocol} has {len(setup.ds.folds())} folds; the curve uses its first, {runs0[0].fold}"
        )
    if any(not r.get("subject") for r in rows_tr):
        raise ValueError(
            f"{setup.ds.source.name}: some training images have no subject; a learning curve over "
            "subjects needs them (give the manifest a subject column)"
        )
    n_all = len({r["subject"] for r in rows_tr})
    counts = sorted({n_all if s is None else min(s, n_all) for s in cfg.subjects})
    clipped = sorted(s for s in cfg.subjects if s is not None and s > n_all)
    if clipped:
        notes.append(f"{clipped} subject(s) asked for, but the training split has {n_all}: clipped to {n_all}")
    requested = {
        n: [("all" if s is None else s) for s in cfg.subjects if (n_all if s is None else min(s, n_all)) == n]
        for n in counts
    }

    curve_methods = [m for m in cfg.methods if m not in REFERENCES]
    refs = [m for m in cfg.methods if m in REFERENCES]
    y_te = runs0[0].y_te
    groups = subject_ids(runs0[0].rows_te)
    per_run: dict[str, dict[int, list[dict]]] = {m: {} for m in cfg.methods}
    points, orders = [], {}
    bar = tqdm(
        total=len(counts) * cfg.seeds * len(curve_methods) + cfg.seeds * len(refs),
        desc=f"curve {setup.ds.source.name} {setup.ds.protocol}",
        disable=not cfg.progress,
    )
    for fr in runs0:
        order = subject_order([r["subject"] for r in rows_tr], fr.seed)
        orders[fr.seed] = order
        for n in counts:
            sub = _subset(fr, rows_tr, set(order[:n]), n, n_all, cf)
            epochs = curve_epochs(cfg.epochs, cfg.min_steps, cfg.batch_size, len(sub.tr), cfg.steps)
            point = dataclasses.replace(setup, bcfg=_bench_config(cfg, epochs))
            points.append(
                {
                    "n_subjects": n,
                    "seed": fr.seed,
                    "images": len(sub.tr),
                    "epochs": epochs,
                    "steps": epochs * math.ceil(len(sub.tr) / cfg.batch_size),
                }
            )
            for m in curve_methods:
                res = run_variant(point, sub, m) if m in VARIANTS else run_peer(point, sub, PEERS[m])
                per_run[m].setdefault(n, []).append(res)
                bar.update()
            if n == n_all:  # the levels: zero-shot (nothing trained) and the oracle floor, on all subjects
                for m in refs:
                    per_run[m].setdefault(n, []).append(run_peer(point, sub, PEERS[m]))
                    bar.update()
    bar.close()
    for w in cfg.zero_shot_weights:  # other weights of the same CLIP: their own feature cache, the same test split
        other = prepare(_bench_config(dataclasses.replace(cfg, model={**cfg.model, "pretrained": w}), cfg.epochs), None)
        fr = next(iter(fold_runs(other)))
        if not np.array_equal(fr.y_te, y_te):
            raise RuntimeError(f"zero-shot level of {w!r}: its test split differs from the curve's")
        per_run[zero_shot_level_name(w)] = {n_all: [run_peer(other, fr, PEERS["zero_shot"])]}
    result = _summary(cfg, setup, counts, requested, per_run, y_te, groups, points, orders, notes, n_all)
    result["seconds"] = time.perf_counter() - t_start
    result["written_to"] = str(setup.out / "learning_curve.json")
    write_text(setup.out / "learning_curve.json", json_text(json.loads(json.dumps(result, default=str))))
    return result


def _summary(cfg, setup, counts, requested, per_run, y_te, groups, points, orders, notes, n_all) -> dict:
    methods, errs = {}, {}
    for m, by_n in per_run.items():
        other = m.startswith("zero_shot@")
        title = f"{method_title('zero_shot')} ({m.split('@', 1)[1]})" if other else method_title(m)
        entry = {"title": title, "kind": "level" if m in REFERENCES or other else "curve", "points": {}}
        for n, runs in by_n.items():
            skipped = next((r["skipped"] for r in runs if "skipped" in r), None)
            if skipped or not all("pred" in r for r in runs):
                entry["skipped"] = skipped or "no prediction"
                continue
            errs[m, n] = _errors(runs, y_te)
            entry["points"][str(n)] = _mae_summary(errs[m, n], groups)
        methods[m] = entry
    diff, crossover = {}, None
    if ("zero_shot", n_all) in errs:
        zs = errs["zero_shot", n_all]
        for n in counts:
            if ("full", n) not in errs:
                continue
            a = errs["full", n]
            ok = np.isfinite(a).all(axis=0) & np.isfinite(zs).all(axis=0)
            eff = stable_difference(
                a[:, ok], zs[:, ok], confidence=CONFIDENCE, n_resamples=N_RESAMPLES, groups=_kept(groups, ok)
            )
            diff[str(n)] = {
                "delta": eff.estimate,
                "ci": [eff.ci_low, eff.ci_high],
                "verdict": verdict(eff, better="lower"),
                "images": int(ok.sum()),
            }
            if crossover is None and diff[str(n)]["verdict"] == "supported":
                crossover = n
    n_tr = {n: [p["images"] for p in points if p["n_subjects"] == n] for n in counts}
    return {
        "source": setup.label,
        "dataset": setup.ds.source.title,
        "protocol": setup.ds.protocol,
        "fold": setup.folds[0].name,
        "seeds": cfg.seeds,
        "test_images": int(len(y_te)),
        "training_subjects": n_all,
        "subject_counts": counts,
        "requested": {str(n): r for n, r in requested.items()},
        "training_images": {str(n): float(np.mean(v)) for n, v in n_tr.items()},
        "epochs": {str(n): sorted({p["epochs"] for p in points if p["n_subjects"] == n}) for n in counts},
        "epochs_rule": (
            f"{STEPS_RULE} (steps {cfg.steps}, batch {cfg.batch_size})"
            if cfg.steps
            else f"{EPOCHS_RULE} (epochs {cfg.epochs}, min_steps {cfg.min_steps}, batch {cfg.batch_size})"
        ),
        "steps": {str(n): sorted({p["steps"] for p in points if p["n_subjects"] == n}) for n in counts},
        "subject_draws": "seeded and nested: seed s permutes the training subjects; n subjects = the first n",
        "references": {
            "zero_shot": "zero-shot CLIP trains nothing: one level, the same at every n",
            **{
                zero_shot_level_name(w): f"zero-shot with CLIP weights {w!r}: one level, the same test images"
                for w in cfg.zero_shot_weights
            },
            "oracle": "the oracle floor is trained once, on all training subjects, and drawn as a level",
            BASELINE: "the train-mean baseline is the mean age of each subset (retrained per n)",
        },
        "ci": {
            "confidence": CONFIDENCE,
            "n_resamples": N_RESAMPLES,
            "over": (
                f"{'test subjects' if groups is not None else 'test images (no subject ids)'} x seeds (subjects resampled "
                f"with all their images, seeds by a t interval; cilf.stats); the seeds also redraw training subjects"
            ),
        },
        "notes": notes,
        "methods": methods,
        "full_minus_zero_shot": diff,
        "full_beats_zero_shot_from": crossover,
        "runs": {"computed": setup.store.computed, "reused": setup.store.reused},
        "feature_cache": {"path": str(setup.cf.path), "hit": setup.cf.hit},
        "budget": _curve_budget(cfg),
        "curve_config": asdict(cfg),
        "test_ages": [float(a) for a in y_te],
        "test_subjects": None if groups is None else [str(g) for g in groups],  # the CIs' resampling unit
        "subject_order": {str(s): o for s, o in orders.items()},
        "points": points,
        "pred": {m: {str(n): [r.get("pred") for r in runs] for n, runs in by_n.items()} for m, by_n in per_run.items()},
    }


def _n_label(result: dict, n: int) -> str:
    return f"all {n}" if n == result["training_subjects"] else str(n)


def _mae_cell(p: dict | None) -> str:
    if not p or "mae" not in p:
        return "-"
    return f"{p['mae']:.2f} [{p['mae_ci'][0]:.2f}, {p['mae_ci'][1]:.2f}]"


def format_curve(result: dict) -> str:
    """The printed table: rows = methods, columns = subject counts, MAE [95% CI]; then the levels, the paired
    difference full - zero-shot per count, the epochs rule and any notes."""
    counts = result["subject_counts"]
    w = 25
    lines = [
        f"== {result['source']}: test MAE (years) [95% CI over {result['seeds']} seed(s) x "
        f"{result['test_images']} test images] vs training subjects ({result['training_subjects']} available) ==",
        f"{'method':34s}" + "".join(f"{_n_label(result, n):>{w}s}" for n in counts),
    ]
    for e in result["methods"].values():
        if e["kind"] != "curve":
            continue
        if "skipped" in e and not e["points"]:
            lines.append(f"{e['title']:34s} skipped: {e['skipped']}")
            continue
        lines.append(f"{e['title']:34s}" + "".join(f"{_mae_cell(e['points'].get(str(n))):>{w}s}" for n in counts))
    lines.append(
        f"{'training images (mean over seeds)':34s}"
        + "".join(f"{result['training_images'][str(n)]:>{w}.0f}" for n in counts)
    )
    lines.append(f"{'epochs':34s}" + "".join(f"{'/'.join(map(str, result['epochs'][str(n)])):>{w}s}" for n in counts))
    if "steps" in result:
        lines.append(
            f"{'optimisation steps':34s}"
            + "".join(f"{'/'.join(map(str, result['steps'][str(n)])):>{w}s}" for n in counts)
        )
    for m, e in result["methods"].items():
        if e["kind"] == "level":
            p = next(iter(e["points"].values()), None)
            lines.append(
                f"level: {e['title']}: {_mae_cell(p) if p else 'skipped: ' + e.get('skipped', '')} "
                f"({result['references'].get(m, '')})"
            )
    if result["full_minus_zero_shot"]:
        cells = "".join(
            (f"{d['delta']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]" if d else "-").rjust(w)
            for d in (result["full_minus_zero_shot"].get(str(n)) for n in counts)
        )
        lines.append(f"{'full - zero-shot (paired)':34s}{cells}")
        n = result["full_beats_zero_shot_from"]
        lines.append(
            "full beats zero-shot (whole 95% CI below 0) from "
            + (f"{_n_label(result, n)} training subjects" if n is not None else "no subject count tried")
        )
    lines.append(result["epochs_rule"])
    lines += [f"note: {t}" for t in result["notes"]]
    runs = result["runs"]
    lines.append(f"runs computed {runs['computed']}, reused {runs['reused']}; total {result['seconds']:.1f} s")
    return "\n".join(lines)
