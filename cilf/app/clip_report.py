"""Does the CLIP backbone align images and text? Zero-shot age MAE (prompts only) and caption
retrieval recall@1/5 on held-out SynthAge subjects, each beside random initialisation; optionally
the full CILF-CIAE model trained on both backbones at the same budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cilf.app.features import extract_features
from cilf.app.params import TrainConfig
from cilf.app.train import train
from cilf.data.datasets import SynthAge
from cilf.io import write_json
from cilf.labels import SYNTHAGE, this_run
from cilf.metrics import mae
from cilf.model.config import CILFConfig
from cilf.persist.factory import build_clip
from cilf.stats import paired_mae_difference
from cilf.utils import pick_device


def recall_at_k(sim: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """sim (n x n), the match of row i is column i -> recall@k in percent."""
    ranks = (sim > sim.diag().unsqueeze(1)).sum(dim=1)  # how many beat the true match
    return {f"R@{k}": float((ranks < k).float().mean() * 100) for k in ks}


@torch.no_grad()
def alignment_metrics(
    pretrained: str | None,
    model_name: str = "cilf-micro",
    n_images: int = 10000,
    seed: int = 0,
    n_retrieval: int = 1000,
    device="cpu",
    progress: bool = True,
) -> dict:
    """Zero-shot MAE and retrieval for one backbone on the held-out test subjects of SynthAge(seed); ``errors``
    holds each test image's absolute zero-shot error and ``subjects`` its subject (for paired comparisons)."""
    torch.manual_seed(0)
    cfg = CILFConfig(clip_model=model_name, pretrained=pretrained)
    adapter = build_clip(cfg).to(device).eval()
    test = SynthAge(split="test", n_images=n_images, seed=seed, transform=adapter.preprocess, progress=progress)
    feats, ages, metas = extract_features(adapter, test, device=device, progress=progress, desc="encode")
    v = F.normalize(feats.pooled.to(device), dim=-1)
    pred = adapter.zero_shot_ages(v)
    subject_of = {r["path"]: str(r.get("subject", "")) for r in test.rows}
    n = min(n_retrieval, len(metas))
    caps = F.normalize(adapter.encode_text([m["caption"] for m in metas[:n]]), dim=-1)
    sim = v[:n] @ caps.t()
    return {
        "pretrained": pretrained or "random init",
        "errors": np.abs(pred.cpu().numpy() - ages.numpy()),
        "subjects": [subject_of.get(m.get("path"), "") for m in metas],
        "zero_shot_mae": mae(ages.numpy(), pred.cpu().numpy()),
        "image_to_text": recall_at_k(sim),
        "text_to_image": recall_at_k(sim.t()),
        "n_test": int(len(ages)),
        "n_retrieval": n,
        "train_mean_baseline_mae": mae(
            ages.numpy(),
            np.full(
                len(ages), float(SynthAge(split="train", n_images=n_images, seed=seed, progress=False).ages.mean())
            ),
        ),
    }


def clip_report(
    n_images: int = 10000,
    seed: int = 0,
    n_retrieval: int = 1000,
    device: str = "auto",
    train_compare: bool = False,
    epochs: int = 10,
    out: str | Path = "runs/clip-report",
    progress: bool = True,
    weights: dict[str, str] | None = None,
) -> dict:
    """The report of the bundled micro-CLIP beside random initialisation (and beside each of ``weights``, named
    weights files of the same model, with the paired zero-shot MAE difference from the bundled one and its 95% CI
    over test subjects)."""
    dev = pick_device(device)
    kw = dict(n_images=n_images, seed=seed, n_retrieval=n_retrieval, device=dev, progress=progress)
    rep = {
        "source": this_run(f"{SYNTHAGE}, seed {seed} test split (held-out subjects)"),
        "bundled": alignment_metrics("bundled", **kw),
        "random": alignment_metrics(None, **kw),
    }
    if weights:
        rep["others"] = {}
        for name, path in weights.items():
            m = alignment_metrics(str(path), **kw)
            subjects = rep["bundled"]["subjects"]
            d = paired_mae_difference(
                m["errors"], rep["bundled"]["errors"], seed=0, groups=np.asarray(subjects) if all(subjects) else None
            )
            m["zero_shot_minus_bundled"] = {"estimate": d.estimate, "ci": [d.ci_low, d.ci_high], "unit": d.unit}
            rep["others"][name] = m
    for m in (rep["bundled"], rep["random"], *rep.get("others", {}).values()):
        m.pop("errors")
        m.pop("subjects")
    rep["chance"] = {"R@1": 100.0 / rep["bundled"]["n_retrieval"], "R@5": 500.0 / rep["bundled"]["n_retrieval"]}
    if train_compare:
        rep["cilf_same_budget"] = {}
        for name, pre in (("bundled", "bundled"), ("random", None)):
            run_dir = Path(out) / f"cilf-{name}-e{epochs}"
            r = train(
                CILFConfig(pretrained=pre),
                TrainConfig(
                    out=str(run_dir), epochs=epochs, n_images=n_images, data_seed=seed, progress=progress, device=device
                ),
                resume=True,
            )
            rep["cilf_same_budget"][name] = {
                "test_mae": r["model"]["mae"],
                "cs5": r["model"]["cs5"],
                "epochs": epochs,
                "run": str(run_dir),
            }
    write_json(Path(out) / "clip_report.json", rep)
    return rep


def format_clip_report(rep: dict) -> str:
    b, r, c = rep["bundled"], rep["random"], rep["chance"]
    lines = [
        f"== CLIP alignment, {rep['source']} ==",
        f"{'':34s}{'bundled micro-CLIP':>20s}{'random init':>14s}{'reference':>22s}",
        f"{'zero-shot age MAE (prompts only)':34s}{b['zero_shot_mae']:20.2f}{r['zero_shot_mae']:14.2f}"
        f"{b['train_mean_baseline_mae']:14.2f} (mean)",
    ]
    for d in ("image_to_text", "text_to_image"):
        for k in ("R@1", "R@5"):
            lines.append(
                f"{d.replace('_', ' ') + ' ' + k + ' %':34s}{b[d][k]:20.1f}{r[d][k]:14.1f}{c[k]:14.1f} (chance)"
            )
    lines.append(f"(retrieval over {b['n_retrieval']} held-out captions; zero-shot over {b['n_test']} test images)")
    for name, m in rep.get("others", {}).items():
        d = m["zero_shot_minus_bundled"]
        lines.append(
            f"{name} ({m['pretrained']}): zero-shot MAE {m['zero_shot_mae']:.2f}, minus bundled {d['estimate']:+.2f} "
            f"[{d['ci'][0]:.2f}, {d['ci'][1]:.2f}] (paired, 95% CI over {d['unit']}); retrieval R@1 "
            f"{m['image_to_text']['R@1']:.1f} / {m['text_to_image']['R@1']:.1f} %"
        )
    if "cilf_same_budget" in rep:
        cb = rep["cilf_same_budget"]
        lines.append(
            f"CILF-CIAE trained {cb['bundled']['epochs']} epochs on each backbone: test MAE "
            f"{cb['bundled']['test_mae']:.2f} (bundled micro-CLIP) vs {cb['random']['test_mae']:.2f} (random init)"
        )
    return "\n".join(lines)
