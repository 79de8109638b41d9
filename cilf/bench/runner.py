"""``python -m cilf bench``: the full model, its ablations and the peers on one dataset and protocol.

Encoding happens once (on-disk feature cache, :mod:`cilf.app.feature_cache`); every method then trains on
the same cached features of the same folds, for ``seeds`` seeds. Each finished (method, fold, seed)
run is saved under ``out`` keyed by everything it depends on, with its per-image predictions, so an
interrupted benchmark resumes and a repeated one reuses what is done (``fresh=True`` recomputes).
Results: mean +- std over folds x seeds, and, from the per-image predictions, each method's MAE with a
95% CI and its paired difference from the full model (:mod:`cilf.bench.effects`), as JSON, CSV and
a printed table, labelled with where the numbers come from.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cilf.app.correction_report import correction_report
from cilf.app.crossfit import GATE_RULE, fit_features
from cilf.app.feature_cache import cached_boundary, cached_features
from cilf.app.features import boundary_features
from cilf.app.infer import predict_features
from cilf.app.params import Budget, CorrectionFit, correction_fit_of
from cilf.bench.effects import (
    CONFIDENCE,
    N_RESAMPLES,
    REFERENCE,
    ci_header,
    ci_over,
    delta_text,
    effect_columns,
    mae_text,
    verdict_text,
)
from cilf.bench.peers import DEFAULT_PEERS, PEERS, PeerConfig, PeerInputs, PeerSpec
from cilf.data.datasets import subject_ids
from cilf.data.open import open_dataset
from cilf.data.protocols import Fold
from cilf.data.splits import dataset_metrics
from cilf.data.synthage import SynthAgeSpec, generate
from cilf.io import json_text, write_text
from cilf.metrics import age_report, mean_std
from cilf.model.config import TRAINING_FIELDS, CILFConfig, default_config
from cilf.options import check_options, cli_flag, option
from cilf.persist.factory import create_model
from cilf.stats import DEFAULT_SEEDS
from cilf.utils import pick_device

VARIANTS = {  # ablation switches (docs/method.md, section 8)
    "full": {},
    "mixer=attention": {"mixer": "attention"},
    "mixer=none": {"mixer": "none"},
    "contrastive=off": {"contrastive": False},
    "correction=off": {"correction": False},
    "context=off": {"context_prompting": False},
    "similarity_prior=off": {"similarity_prior": False},
    "correction_fit=joint": {"correction_fit": "joint"},  # not an ablation: the paper's end-to-end form of E
}
ABLATIONS = tuple(v for v in VARIANTS if v != "correction_fit=joint")  # each switch off once: the default set
BASELINE = "train_mean"  # the peer that predicts the mean training age: in every benchmark
VARIANT_TITLES = {
    "full": "CILF-CIAE (full)",
    "mixer=attention": "FourierFormer -> attention",
    "mixer=none": "no FourierFormer",
    "contrastive=off": "no contrastive loss",
    "correction=off": "no correction",
    "context=off": "no context prompting",
    "similarity_prior=off": "no similarity prior (S_i)",
    "correction_fit=joint": "correction fitted jointly (in-sample)",
}


@dataclass
class BenchConfig(CorrectionFit, Budget):
    """One benchmark: its :class:`~cilf.app.params.Budget` (one budget for every trained method, CILF-CIAE, its
    ablations and every trained peer; no early stopping; seeds ``seed`` .. ``seed + seeds - 1``), how the post-hoc
    correction is fitted (:class:`~cilf.app.params.CorrectionFit`), the dataset and protocol, the methods, and where
    runs are kept."""

    epochs: int = option(15, "epochs of every trained method (CILF-CIAE, its ablations, the trained peers)", low=1)
    batch_size: int = option(64, "batch size of every trained method", low=2)
    lr: float = option(2e-3, "peak learning rate of every trained method", positive=True)
    device: str = "cpu"  # "auto": CUDA when present, else CPU
    dataset: str = option("synthage", "the dataset (cilf.data.sources.SOURCES)")
    root: str | None = option(None, "dataset folder (default $CILF_DATASETS/<dataset>; synthage: generated)")
    protocol: str | None = option(None, "named protocol (default: the dataset's standard one)")
    seeds: int = option(DEFAULT_SEEDS, "training seeds per fold (the CIs resample them; cilf.stats)", low=1)
    max_folds: int | None = option(None, "run only the first N folds (FG-NET's 82, say)", low=1)
    variants: tuple[str, ...] = ABLATIONS
    peers: tuple[str, ...] = DEFAULT_PEERS  # any registered name may be given (BASELINE always runs)
    peer_epochs: int | None = option(
        None,
        "epochs of the trained peers only (default: --epochs; another value makes the budgets unequal, and the "
        "budget line says so)",
        low=1,
    )
    n_images: int = option(2000, "SynthAge size when --root is not given", low=50)
    out: str = option("runs/bench", "results folder (runs already there are reused)")
    cache_dir: str | None = None  # feature cache (default $CILF_CACHE or ~/.cache/cilf)
    progress: bool = True
    fresh: bool = option(False, "recompute runs already saved in --out")
    model: dict = field(default_factory=dict)  # CILFConfig overrides for every variant
    unfreeze_last_blocks: int = option(
        0,
        "CILF-CIAE and ablations fine-tune the last K CLIP image blocks (from a boundary cache; peers stay on "
        "frozen features)",
        low=0,
        metavar="K",
    )
    backbone_lr_scale: float = option(0.2, "the fine-tuned blocks train at lr x this", positive=True)

    def __post_init__(self) -> None:
        check_options(self)
        check_model_overrides(self.model)
        for kind, names, known in (("variant", self.variants, VARIANTS), ("peer", self.peers, PEERS)):
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"unknown {kind}(s) {unknown}; choose from {list(known)}")
        if BASELINE not in self.peers:  # the train-mean row is in every table
            self.peers = (*self.peers, BASELINE)
        if self.device == "auto":
            self.device = str(pick_device("auto"))


def check_model_overrides(model: dict) -> None:
    """ValueError naming a ``model`` override that is not a CILFConfig field (a training option named as the
    option to use instead)."""
    fields = {f.name for f in dataclasses.fields(CILFConfig)}
    for name in model:
        if name in TRAINING_FIELDS:
            raise ValueError(
                f"{name} is a training option, not a model field: give {name}=... to the benchmark "
                f"({cli_flag(CorrectionFit, name)}), not in its model overrides"
            )
        if name not in fields:
            raise ValueError(f"unknown model field {name!r} in model overrides")


def peer_config(bcfg: BenchConfig, base: CILFConfig) -> PeerConfig:
    """The trained peers' config: the benchmark's one budget (epochs, batch, lr, weight decay; the peers' schedule has
    no warm-up) and the model's age range."""
    return PeerConfig(
        age_min=base.age_min,
        age_max=base.age_max,
        epochs=peer_epochs(bcfg),
        batch_size=bcfg.batch_size,
        lr=bcfg.lr,
        weight_decay=bcfg.weight_decay,
    )


def peer_epochs(bcfg: BenchConfig) -> int:
    """Epochs of each trained peer: ``peer_epochs`` when set, else the shared ``epochs``."""
    return bcfg.epochs if bcfg.peer_epochs is None else bcfg.peer_epochs


def source_label(dataset_title: str, protocol: str, synthetic: bool) -> str:
    return f"this run, {dataset_title} {protocol}" if not synthetic else f"this run, SynthAge (synthetic) {protocol}"


def _score(y: np.ndarray, pred: np.ndarray, rows: list[dict]) -> dict:
    """MAE, CS@1/5, CS curve; Adience group accuracy and APPA-REAL epsilon-error where labels allow.

    y, pred: (m) ages of the fold's test rows; ``pred`` is also kept as a list (None where not finite).
    """
    ok = np.isfinite(pred)
    rep = {
        "n": int(ok.sum()),
        "coverage_pct": float(100 * ok.mean()),
        "pred": [float(p) if k else None for p, k in zip(pred, ok)],
    }
    if not ok.any():
        return rep
    rep.update(age_report(y[ok], pred[ok]))
    rep["cs_curve"] = {str(k): v for k, v in rep["cs_curve"].items()}  # as JSON stores them
    rep.update(dataset_metrics(pred[ok], [r for r, k in zip(rows, ok) if k]))
    return rep


class _RunStore:
    """Finished runs as JSON files named by the hash of what they depend on.

    A saved run is reused only when it holds its per-image predictions (``pred``, ``n_test`` of them when
    given); runs saved before predictions were kept are computed again (said once, on stderr).
    """

    def __init__(self, folder: Path, fresh: bool):
        self.folder, self.fresh = folder / "runs", fresh
        self.reused = self.computed = self.outdated = 0

    def _outdated(self, result, n_test: int | None, path: Path) -> bool:
        pred = result.get("pred") if isinstance(result, dict) else None
        if isinstance(pred, list) and (n_test is None or len(pred) == n_test):
            return False
        if not self.outdated:
            print(
                f"bench: saved runs in {self.folder} have no per-image predictions (saved by an earlier "
                f"version, e.g. {path.name}); computing them again so every method is paired",
                file=sys.stderr,
            )
        self.outdated += 1
        return True

    def get(self, key: dict, compute, n_test: int | None = None):
        """The saved result for ``key``, else ``compute()`` (saved); ``n_test``: predictions it must hold."""
        name = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = self.folder / f"{name}.json"
        if path.is_file() and not self.fresh:
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                saved = None
            if (
                isinstance(saved, dict)
                and "result" in saved
                and saved.get("key") == json.loads(json.dumps(key, default=str))
                and not self._outdated(saved["result"], n_test, path)
            ):
                self.reused += 1
                return saved["result"]
            if not isinstance(saved, dict) or "result" not in saved:
                print(f"bench: saved run {path} is damaged (not a run record); computing it again", file=sys.stderr)
        result = compute()
        try:
            text = json.dumps({"key": key, "result": result}, default=str, allow_nan=False)
        except ValueError:  # a NaN or infinite metric: not saved (strict JSON only), computed again next time
            text = None
        if text is not None:
            write_text(path, text, root=self.folder.parent)
        self.computed += 1
        return result


@dataclass
class _Setup:
    """What every run of one benchmark shares: the dataset, its folds and cached features, the saved runs."""

    bcfg: BenchConfig
    base: CILFConfig
    encoder: torch.nn.Module  # the frozen CILF whose image tower made the features
    ds: object  # the opened dataset
    root: str | Path
    label: str
    folds: list[Fold]
    cf: object  # CachedFeatures
    boundary: object  # CachedFeatures of the boundary tokens (unfreeze_last_blocks > 0), else None
    out: Path
    store: _RunStore
    common: dict  # what every saved run's key holds


@dataclass
class FoldRun:
    """One fold x seed: feature indices (into the cache), ages, test rows and the saved-run key prefix."""

    tr: list[int]
    te: list[int]
    y_tr: torch.Tensor  # (n) training ages
    y_te: np.ndarray  # (m) test ages, float64
    rows_te: list[dict]
    key: dict
    seed: int
    fold: str


def prepare(bcfg: BenchConfig, base: CILFConfig | None) -> _Setup:
    """Model config, dataset (SynthAge generated when asked), folds and the (cached) frozen features."""

    base = (base or default_config()).replace(**bcfg.model)
    if bcfg.unfreeze_last_blocks:
        base = base.replace(unfreeze_last_blocks=bcfg.unfreeze_last_blocks)
    if not base.freeze_image:
        raise ValueError(
            "bench trains every method on cached outputs of a frozen image tower (or of its frozen "
            "part: --unfreeze-last-blocks K fine-tunes the last K blocks); the whole tower "
            "(freeze_image=false) trains from pixels: use `python -m cilf train`"
        )
    root = bcfg.root
    synthetic = bcfg.dataset.lower() == "synthage"
    if synthetic and root is None:
        root = generate(SynthAgeSpec(n_images=bcfg.n_images), progress=bcfg.progress)
    torch.manual_seed(0)
    encoder = create_model(base).to(bcfg.device).eval()
    ds = open_dataset(bcfg.dataset, root, bcfg.protocol, transform=encoder.preprocess)
    out = Path(bcfg.out) / f"{ds.source.name}-{ds.protocol}"
    cf = cached_features(
        encoder, ds, bcfg.cache_dir, device=bcfg.device, progress=bcfg.progress, desc=f"encode {ds.source.name}"
    )
    boundary = None
    if base.unfreeze_last_blocks:  # the variants fine-tune the last blocks from the tokens entering them
        boundary = cached_boundary(
            encoder,
            ds,
            bcfg.cache_dir,
            device=bcfg.device,
            progress=bcfg.progress,
            desc=f"encode {ds.source.name} to block {encoder.clip.boundary}",
        )
        if boundary.rows != cf.rows:
            raise RuntimeError(f"{boundary.path} and {cf.path} hold different images; delete both and run again")
    common = {
        "dataset": ds.source.name,
        "root": str(Path(root).resolve()),
        "protocol": ds.protocol,
        "features": cf.path.name,
        "encoder": cf.path.parent.name,
    }
    if torch.device(bcfg.device).type != "cpu":  # GPU runs differ in the last digits: never reuse them as CPU runs
        common["device"] = torch.device(bcfg.device).type
    return _Setup(
        bcfg=bcfg,
        base=base,
        encoder=encoder,
        ds=ds,
        root=root,
        label=source_label(ds.source.title, ds.protocol, synthetic),
        folds=ds.folds()[: bcfg.max_folds],
        cf=cf,
        boundary=boundary,
        out=out,
        store=_RunStore(out, bcfg.fresh),
        common=common,
    )


def fold_runs(setup: _Setup):
    """Every fold x seed, folds outer, as :class:`FoldRun` (test/train images restricted to readable ones)."""
    cf, pos = setup.cf, {r: i for i, r in enumerate(setup.cf.rows)}
    for fold in setup.folds:
        for seed in range(setup.bcfg.seed, setup.bcfg.seed + setup.bcfg.seeds):
            tr = [pos[i] for i in fold.train if i in pos]
            te = [pos[i] for i in fold.test if i in pos]
            yield FoldRun(
                tr=tr,
                te=te,
                y_tr=cf.ages[tr],
                y_te=cf.ages[te].numpy().astype(np.float64),
                rows_te=[setup.ds.rows[cf.rows[j]] for j in te],
                key={**setup.common, "fold": fold.name, "seed": seed},
                seed=seed,
                fold=fold.name,
            )


def run_variant(setup: _Setup, fr: FoldRun, variant: str) -> dict:
    """CILF-CIAE with ablation ``variant`` trained on the fold's cached features; its scores (saved/reused)."""

    bcfg, cfg = setup.bcfg, setup.base.replace(**VARIANTS[variant])
    feats = setup.boundary.features if setup.boundary is not None else setup.cf.features

    def compute() -> dict:
        t0 = time.perf_counter()
        subjects = [setup.ds.rows[setup.cf.rows[j]].get("subject", "") for j in fr.tr]  # subject-exclusive cross-fit
        model = fit_features(
            cfg,
            feats[fr.tr],
            fr.y_tr,
            epochs=bcfg.epochs,
            seed=fr.seed,
            batch_size=bcfg.batch_size,
            lr=bcfg.lr,
            weight_decay=bcfg.weight_decay,
            warmup_steps=bcfg.warmup_steps,
            device=bcfg.device,
            groups=subjects,
            backbone_lr_scale=bcfg.backbone_lr_scale,
            correction=correction_fit_of(bcfg),
        )
        test = feats[fr.te]
        if setup.boundary is not None:  # the fine-tuned last blocks finish the test images' tokens
            test = boundary_features(model, test, device=bcfg.device)
        pred = predict_features(model, test, device=bcfg.device)
        seconds = time.perf_counter() - t0  # fit + predict
        res = {**_score(fr.y_te, pred["age"].astype(np.float64), fr.rows_te), "seconds": seconds}
        if not cfg.correction:
            return res
        return {**res, "correction": {**correction_report(fr.y_te, pred), "applied": bool(model.corrector.applied)}}

    key = {
        **fr.key,
        "method": variant,
        "config": config_key(cfg, bcfg),
        "epochs": bcfg.epochs,
        "batch_size": bcfg.batch_size,
        "lr": bcfg.lr,
    }
    if (bcfg.weight_decay, bcfg.warmup_steps) != (Budget.weight_decay, Budget.warmup_steps):
        key.update(weight_decay=bcfg.weight_decay, warmup_steps=bcfg.warmup_steps)  # default runs keep their keys
    if cfg.unfreeze_last_blocks:  # frozen runs keep the keys they always had (saved runs are reused)
        key["backbone_lr_scale"] = bcfg.backbone_lr_scale
    return setup.store.get(key, compute, n_test=len(fr.te))


def config_key(cfg: CILFConfig, bcfg: BenchConfig) -> dict:
    """The model config and how its correction is fitted, as a saved run's key holds them (the correction-fit
    settings sit beside the model fields, where they were before they became training options: saved runs keep
    their keys). A gated fit also names its gate rule, so runs saved under an older rule are not reused."""
    fit = dataclasses.asdict(correction_fit_of(bcfg))
    if fit["correction_gate"] and cfg.correction:
        fit["gate_rule"] = GATE_RULE
    return {**cfg.to_dict(), **fit}


def _peer_key(setup: _Setup, fr: FoldRun, spec: PeerSpec) -> dict:
    """What a peer's saved run depends on: for a trained one its budget (epochs, batch, lr; weight decay when not
    the default) and age range."""
    if not spec.seeded:  # deterministic: one run per fold, shared by the seeds
        return {**fr.key, "method": spec.name, "seed": 0, **spec.key}
    pc = peer_config(setup.bcfg, setup.base)
    key = {
        **fr.key,
        "method": spec.name,
        "epochs": pc.epochs,
        "batch_size": pc.batch_size,
        "lr": pc.lr,
        "age_min": pc.age_min,
        "age_max": pc.age_max,
    }
    if pc.weight_decay != PeerConfig.weight_decay:  # default runs keep their keys
        key["weight_decay"] = pc.weight_decay
    if spec.needs_encoder:
        key["config"] = config_key(setup.base, setup.bcfg)
    return {**key, **spec.key}


def peer_inputs(setup: _Setup, fr: FoldRun, pooled: torch.Tensor | None = None) -> PeerInputs:
    """What a peer is fitted on in fold run ``fr``: the pooled features (n x D; default the cached ones) of its
    training and test images, their ages and rows, the seed and the benchmark's peer budget."""
    pooled = setup.cf.features.pooled if pooled is None else pooled
    return PeerInputs(
        pooled[fr.tr],
        fr.y_tr,
        pooled[fr.te],
        seed=fr.seed,
        cfg=peer_config(setup.bcfg, setup.base),
        test_paths=[r["path"] for r in fr.rows_te],
        encoder=setup.encoder,
        train_rows=[setup.ds.rows[setup.cf.rows[j]] for j in fr.tr],
        test_rows=fr.rows_te,
    )


def run_peer(setup: _Setup, fr: FoldRun, spec: PeerSpec) -> dict:
    """Peer ``spec`` on the fold's pooled features; its scores (saved/reused), or why it was skipped."""
    why = spec.available() or spec.applies(setup.ds.rows)
    if why:
        return {"skipped": why}

    def compute() -> dict:
        t0 = time.perf_counter()
        out = spec.fit_and_predict(peer_inputs(setup, fr))
        seconds = time.perf_counter() - t0  # fit + predict
        ages, extras = out if isinstance(out, tuple) else (out, None)
        res = {**_score(fr.y_te, np.asarray(ages).astype(np.float64), fr.rows_te), "seconds": seconds}
        return {**res, **extras, "fold": fr.fold} if extras else res

    return setup.store.get(_peer_key(setup, fr, spec), compute, n_test=len(fr.te))


def budget(bcfg: BenchConfig) -> dict:
    """What each kind of method is trained with: CILF-CIAE and its ablations, and every trained peer."""
    k = bcfg.unfreeze_last_blocks or int(bcfg.model.get("unfreeze_last_blocks", 0))
    return {
        "cilf": {"epochs": bcfg.epochs, "lr": bcfg.lr, "batch_size": bcfg.batch_size},
        "peers": {"epochs": peer_epochs(bcfg), "lr": bcfg.lr, "batch_size": bcfg.batch_size},
        "backbone": (
            f"CILF-CIAE and ablations fine-tune the last {k} CLIP image block(s) at lr x "
            f"{bcfg.backbone_lr_scale:g}; peers on frozen CLIP features"
        )
        if k
        else "frozen CLIP",
    }


def budget_line(b: dict) -> str:
    """One line stating the training budgets, and whether they are equal (no method stops early)."""
    c, p = b["cilf"], b["peers"]
    if c == p:
        text = (
            f"equal budget: every trained method {c['epochs']} epochs at lr {c['lr']:g} (batch {c['batch_size']}), "
            f"no early stopping"
        )
    else:
        text = (
            f"budget: CILF-CIAE and ablations {c['epochs']} epochs at lr {c['lr']:g} (batch {c['batch_size']}); "
            f"trained peers {p['epochs']} epochs at lr {p['lr']:g} (batch {p['batch_size']}) - not equal"
        )
    return text + (f"; backbone: {b['backbone']}" if b.get("backbone", "frozen CLIP") != "frozen CLIP" else "")


def _result(
    setup: _Setup,
    methods: dict[str, list[dict]],
    test_ages: dict[str, np.ndarray],
    seconds: float,
    test_groups: dict[str, np.ndarray | None] | None = None,
) -> dict:
    """The summary of every method with what it was measured on (``test_ages``: fold -> (m) test ages;
    ``test_groups``: fold -> their subject ids, or None where the dataset has none)."""
    ds, cf, folds, bcfg = setup.ds, setup.cf, setup.folds, setup.bcfg
    groups = list((test_groups or {}).values())
    groups = groups if groups and all(g is not None for g in groups) else None
    return {
        "source": setup.label,
        "dataset": ds.source.title,
        "protocol": ds.protocol,
        "protocol_description": ds.source.protocols[ds.protocol],
        "root": str(setup.root),
        "folds": len(folds),
        "folds_in_protocol": len(ds.folds()),
        "seeds": bcfg.seeds,
        "images": _images_used(setup),
        "skipped_files": cf.skipped,
        "listed_but_missing": sum(f.missing for f in folds),
        "feature_cache": {
            "path": str(cf.path),
            "hit": cf.hit,
            "seconds": cf.seconds,
            "encode_seconds": cf.encode_seconds,
        },
        "runs": {
            "computed": setup.store.computed,
            "reused": setup.store.reused,
            "recomputed_without_predictions": setup.store.outdated,
        },
        "seconds": seconds,
        "bench_config": asdict(bcfg),
        "budget": budget(bcfg),
        "test_images": int(sum(len(y) for y in test_ages.values())),
        "ci": {
            "confidence": CONFIDENCE,
            "n_resamples": N_RESAMPLES,
            "reference": REFERENCE,
            "over": ci_over(groups is not None),
            "unit": "subjects" if groups is not None else "images",
        },
        "methods": _with_notes(summarise(methods, list(test_ages.values()), groups), setup.base),
        "test_ages": {f: [float(a) for a in y] for f, y in test_ages.items()},
        "test_subjects": {f: None if g is None else [str(x) for x in g] for f, g in (test_groups or {}).items()},
        "per_run": methods,
    }


def _with_notes(summary: dict, base: CILFConfig) -> dict:
    """``summary`` with each peer's caveat for this encoder (``PeerSpec.note``) as its ``note``."""
    for name, s in summary.items():
        note = PEERS[name].note(base) if name in PEERS else None
        if note:
            s["note"] = note
    return summary


def _images_used(setup: _Setup) -> int:
    """Readable images some fold run uses (images on disk that no list of the protocol names are not counted)."""
    used = {i for f in setup.folds for part in (f.train, f.val, f.test) for i in part}
    return sum(r in used for r in setup.cf.rows)


def run_benchmark(bcfg: BenchConfig, base: CILFConfig | None = None) -> dict:
    """Train and score every method on every fold x seed; returns the summary (also written to ``out``)."""
    t_start = time.perf_counter()
    setup = prepare(bcfg, base)
    peers = [PEERS[p] for p in bcfg.peers]
    methods: dict[str, list[dict]] = {}
    test_ages: dict[str, np.ndarray] = {}
    test_groups: dict[str, np.ndarray | None] = {}
    bar = tqdm(
        total=len(setup.folds) * bcfg.seeds * (len(bcfg.variants) + len(peers)),
        desc=f"bench {setup.ds.source.name} {setup.ds.protocol}",
        disable=not bcfg.progress,
    )
    for fr in fold_runs(setup):
        test_ages[fr.fold] = fr.y_te
        test_groups[fr.fold] = subject_ids(fr.rows_te)
        for v in bcfg.variants:
            methods.setdefault(v, []).append(run_variant(setup, fr, v))
            bar.update()
        for spec in peers:
            methods.setdefault(spec.name, []).append(run_peer(setup, fr, spec))
            bar.update()
    bar.close()
    result = _result(setup, methods, test_ages, time.perf_counter() - t_start, test_groups)
    write_results(result, setup.out)
    return result


def summarise(
    methods: dict[str, list[dict]],
    test_ages: list[np.ndarray] | None = None,
    test_groups: list[np.ndarray] | None = None,
) -> dict:
    """mean +- std over runs of every metric each method reports; with ``test_ages`` (per fold, (m) ages in
    the order of the runs' ``pred``; runs folds outer, seeds inner) also the CI and paired columns of
    :func:`cilf.bench.effects.effect_columns` (``test_groups``: per fold, the test images' subject ids)."""
    effects = effect_columns(methods, test_ages, test_groups=test_groups) if test_ages else {}
    out = {}
    for name, runs in methods.items():
        done = [r for r in runs if "mae" in r]
        if not done:
            out[name] = {"skipped": runs[0].get("skipped", "no prediction")}
            continue
        s = {"runs": len(done)}
        timed = [r["seconds"] for r in done if "seconds" in r]  # runs saved by earlier versions have no time
        if timed:
            s["seconds"] = float(np.mean(timed))  # wall-clock per run: fit + predict
        for k in ("mae", "cs1", "cs5", "group_exact", "group_1off", "epsilon_error", "coverage_pct"):
            if k in done[0]:
                s[k], s[k + "_std"] = mean_std([r[k] for r in done])
        s["cs_curve"] = {th: float(np.mean([r["cs_curve"][th] for r in done])) for th in done[0]["cs_curve"]}
        if "faces" in done[0]:
            per_fold = {r["fold"]: r["faces"] for r in done}  # one run per fold, repeated for every seed
            s["faces"] = {k: int(sum(f[k] for f in per_fold.values())) for k in done[0]["faces"]}
        s.update(effects.get(name, {}))
        out[name] = s
    return out


def method_title(name: str) -> str:
    """Display title of a variant or a registered peer (else the name itself)."""
    return VARIANT_TITLES.get(name) or (PEERS[name].title if name in PEERS else name)


_CSV_COLUMNS = (
    "mae",
    "mae_std",
    "cs1",
    "cs5",
    "cs5_std",
    "group_exact",
    "group_1off",
    "epsilon_error",
    "coverage_pct",
    "mae_pooled",
    "mae_ci_low",
    "mae_ci_high",
    "delta_mae",
    "delta_ci_low",
    "delta_ci_high",
)


def _csv_values(s: dict) -> list[str]:
    flat = dict(s)
    for k in ("mae_ci", "delta_ci"):
        if k in s:
            flat[k + "_low"], flat[k + "_high"] = s[k]
    return [f"{flat[k]:.4f}" if k in flat else "" for k in _CSV_COLUMNS]


def write_results(result: dict, out: Path) -> None:
    """results.json (everything) and results.csv (one row per method, CIs as low/high columns)."""
    write_text(out / "results.json", json_text(json.loads(json.dumps(result, default=str))))
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["source", "method", "runs", *_CSV_COLUMNS, "s/run", "verdict", "paired_images"])
    for name, s in result["methods"].items():
        w.writerow(
            [
                result["source"],
                method_title(name),
                s.get("runs", 0),
                *_csv_values(s),
                f"{s['seconds']:.3f}" if "seconds" in s else "",
                s.get("verdict", ""),
                s.get("paired_images", ""),
            ]
        )
    write_text(out / "results.csv", buf.getvalue())


def _features_text(fc: dict) -> str:
    """How long the shared CLIP feature encoding took (read back from the cache: when it was made, if known)."""
    if not fc["hit"]:
        return f"features encoded once: {fc['seconds']:.1f} s"
    made = fc.get("encode_seconds")
    return (
        f"features encoded once: {made:.1f} s (earlier; read from the cache now in {fc['seconds']:.1f} s)"
        if made is not None
        else f"features read from the cache in {fc['seconds']:.1f} s (encoded earlier)"
    )


def format_results(result: dict) -> str:
    """The printed table: MAE [95% CI], CS@1, CS@5, coverage, wall-clock seconds per run (fit + predict),
    difference from the full model [95% CI], verdict; then each row's note."""
    lines = [
        f"== {result['source']}: {result['images']} images, {result['folds']} fold(s) x {result['seeds']} "
        f"seed(s); {result['protocol_description']} =="
    ]
    if "test_images" in result:
        lines.append(
            ci_header(
                result["test_images"],
                result["seeds"],
                result["folds"],
                result.get("ci", {}).get("n_resamples", N_RESAMPLES),
                result.get("ci", {}).get("unit") == "subjects",
            )
        )
    if "budget" in result:
        lines.append(budget_line(result["budget"]))
    lines.append(
        f"{'method':40s} {'MAE [95% CI]':>22s} {'CS@1 %':>7s} {'CS@5 %':>7s} {'coverage':>8s} "
        f"{'s/run':>7s} {'Δ vs full [95% CI]':>23s}  verdict"
    )
    for name, s in result["methods"].items():
        if "mae" not in s:
            lines.append(f"{method_title(name):40s} skipped: {s['skipped']}")
            continue
        extra = ""
        if "group_exact" in s:
            extra += f"  groups exact {s['group_exact']:.1f}% 1-off {s['group_1off']:.1f}%"
        if "epsilon_error" in s:
            extra += f"  eps-error {s['epsilon_error']:.3f}"
        if "faces" in s:
            extra += f"  (faces detected {s['faces']['detected']}, whole-image box {s['faces']['whole_image_box']})"
        verdict = verdict_text(s)
        secs = f"{s['seconds']:7.2f}" if "seconds" in s else f"{'-':>7s}"
        lines.append(
            f"{method_title(name):40s} {mae_text(s):>22s} {s['cs1']:7.1f} {s['cs5']:7.1f} "
            f"{s['coverage_pct']:7.1f}% {secs} {delta_text(s, name):>23s}  {verdict:12s}{extra}".rstrip()
        )
    fc, runs = result["feature_cache"], result["runs"]
    lines.append(
        f"{_features_text(fc)}, shared by every CLIP-feature row (not in s/run); s/run: wall-clock "
        f"seconds per run, fit + predict; runs computed {runs['computed']}, reused {runs['reused']}; "
        f"total {result['seconds']:.1f} s"
    )
    lines += [f"note: {method_title(name)}: {s['note']}" for name, s in result["methods"].items() if s.get("note")]
    if result["skipped_files"]:
        lines.append(f"skipped {len(result['skipped_files'])} unreadable file(s), e.g. {result['skipped_files'][0]}")
    if result["listed_but_missing"]:
        lines.append(f"{result['listed_but_missing']} file(s) named by the published split lists are not on disk")
    return "\n".join(lines)
