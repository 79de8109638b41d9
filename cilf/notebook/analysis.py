"""Small analyses behind the notebooks' figures (kept here so tests can reach them)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from cilf.data.datasets import SynthAge
from cilf.model.cilf_model import CILF, CILFOutput
from cilf.model.fourier import FourierMixer, GlobalFilter
from cilf.model.heads import age_index
from cilf.model.similarity import global_log_scores
from cilf.notebook.zoo import BUDGETS
from cilf.stats import N_RESAMPLES, stable_difference


@torch.no_grad()
def run_on_images(model: CILF, images) -> CILFOutput:
    """PIL images (list) -> the model's full output (scores, maps, y0, correction ...)."""
    model.eval()
    x = torch.stack([model.preprocess(im) for im in images])
    return model(x)


@torch.no_grad()
def fpe_steps(filt: GlobalFilter, x: torch.Tensor, channel: int | None = None) -> dict[str, np.ndarray | int]:
    """One global-filter pass step by step for x (H x W x C).

    Channel means (each H x W or H x W//2+1): ``input``, ``spectrum`` (|DFT|), ``filter`` (|K|), ``filtered``
    and ``output`` (the IDFT). The mean over channels of a LayerNorm output is about 0 by construction, so the
    same steps for one channel are returned too: ``input_channel``, ``spectrum_channel``, ``filter_channel``,
    ``filtered_channel`` and ``output_channel``, for ``channel`` (default: the channel whose output differs most
    from its input, relative to the input's norm, i.e. the one the filter changes most), and ``channel``."""
    size = (x.shape[0], x.shape[1])
    xc = x.float().permute(2, 0, 1)  # C x H x W
    spec = torch.fft.rfft2(xc, norm="ortho")  # C x H x W//2+1, as GlobalFilter.forward
    k = filt.filter_for(*size)
    filtered = spec * k
    out = torch.fft.irfft2(filtered, s=size, norm="ortho")  # C x H x W
    if channel is None:
        change = (out - xc).flatten(1).norm(dim=1) / xc.flatten(1).norm(dim=1).clamp_min(1e-12)
        channel = int(change.argmax())
    return {
        "input": x.mean(-1).numpy(),
        "spectrum": spec.abs().mean(0).numpy(),
        "filter": k.abs().mean(0).numpy(),
        "filtered": filtered.abs().mean(0).numpy(),
        "output": out.permute(1, 2, 0).mean(-1).numpy(),
        "channel": channel,
        "input_channel": xc[channel].numpy(),
        "spectrum_channel": spec[channel].abs().numpy(),
        "filter_channel": k[channel].abs().numpy(),
        "filtered_channel": filtered[channel].abs().numpy(),
        "output_channel": out[channel].numpy(),
    }


def filter_spectra(model: CILF) -> list[np.ndarray]:
    """|K| averaged over channels for every Fourier block: list of H x (W//2+1) arrays (fftshifted in H)."""
    spectra = []
    for blk in model.fusion.former.blocks:
        if isinstance(blk.mixer, FourierMixer):
            k = torch.view_as_complex(blk.mixer.filter.weight.detach().float().contiguous())
            spectra.append(np.fft.fftshift(k.abs().mean(0).numpy(), axes=0))
    return spectra


@torch.no_grad()
def paired_embeddings(model: CILF, features, ages: torch.Tensor, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Fused image embeddings f (n x D) and their age's context-prompted text T'_{y} (n x D), L2-normalised."""
    model.eval()
    fs, ts = [], []
    for i in range(0, len(features), batch):
        out = model(features=features[i : i + batch], correct=False)
        y = ages[i : i + batch]
        idx = age_index(y, model.cfg.age_min, model.cfg.num_classes)
        fs.append(F.normalize(out.fused, dim=-1))
        ts.append(F.normalize(out.text[torch.arange(len(idx)), idx], dim=-1))
    return torch.cat(fs).numpy(), torch.cat(ts).numpy()


def own_image_share(f: np.ndarray, t: np.ndarray, ages: np.ndarray, delta: float = 2.0) -> tuple[float, float]:
    """Does the contrastive matching recognise the image rather than its age? f (n x D) fused images, t (n x D)
    their own text targets T'_{b, k(y_b)}, ages (n). Among each image's positives (ages within ``delta``, itself
    included), the share of images whose own target scores strictly highest, and the chance rate (mean 1 / number
    of positives). Far above chance: T'_b, which carries image b's own context, is matched as that image's."""
    fn, tn = f / np.linalg.norm(f, axis=1, keepdims=True), t / np.linalg.norm(t, axis=1, keepdims=True)
    sim = fn @ tn.T
    pos = np.abs(ages[:, None] - ages[None, :]) <= delta
    others = np.where(pos & ~np.eye(len(ages), dtype=bool), sim, -np.inf).max(axis=1)
    hit = np.diag(sim) > others
    return float(hit.mean()), float((1.0 / pos.sum(axis=1)).mean())


def age_separation(emb: np.ndarray, ages: np.ndarray, k: int = 10) -> float:
    """Mean |age difference| to the k nearest neighbours in cosine space (lower = age better organised)."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    nn_idx = np.argsort(-sim, axis=1)[:, :k]
    return float(np.abs(ages[nn_idx] - ages[:, None]).mean())


@torch.no_grad()
def correction_outputs(model: CILF, features, batch: int = 512) -> dict[str, np.ndarray]:
    """y0, x*, steps, accepted, spread and padded trajectories (n x T+1) for every image."""
    model.eval()
    cols: dict[str, list] = {k: [] for k in ("y0", "x", "steps", "accepted", "spread", "traj")}
    t_max = model.cfg.max_steps + 1
    for i in range(0, len(features), batch):
        out = model(features=features[i : i + batch])
        c = out.correction
        if c is None:
            raise ValueError("this model was built with correction=False")
        traj = c.trajectory.t()  # B x T'
        pad = traj[:, -1:].expand(-1, t_max - traj.shape[1])
        cols["traj"].append(torch.cat([traj, pad], dim=1))
        for k, v in (("y0", c.y0), ("x", out.age), ("steps", c.steps), ("accepted", c.accepted), ("spread", c.spread)):
            cols[k].append(v)
    return {k: torch.cat(v).numpy() for k, v in cols.items()}


def subjects_of(metas: list[dict], fast: bool = True, seed: int = 0, split: str = "test") -> list[str]:
    """The SynthAge subject id of each image of :func:`cilf.notebook.zoo.held_out_features` (its metas carry the
    image path, not the subject): the resampling unit of a CI over test images (docs/statistics.md)."""
    rows = SynthAge(split=split, n_images=BUDGETS[bool(fast)]["n_images"], seed=seed, progress=False).rows
    by_path = {str(r["path"]): str(r["subject"]) for r in rows}
    missing = [m["path"] for m in metas if str(m["path"]) not in by_path]
    if missing:
        raise ValueError(f"{len(missing)} image(s) are not in the SynthAge {split} split asked for, e.g. {missing[0]}")
    return [by_path[str(m["path"])] for m in metas]


def spearman_ci(
    a, b, groups=None, *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """Spearman's rank correlation of ``a`` and ``b`` (one value per image) with a percentile bootstrap CI;
    ``groups`` (one id per image, e.g. its subject): subjects are drawn with replacement, each bringing all its
    images, as in :mod:`cilf.stats`. Deterministic for a given ``seed``. Returns (rho, (low, high))."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 3:
        raise ValueError(f"a and b: one value per image, at least 3 images (shapes {a.shape}, {b.shape})")
    rho = float(spearmanr(a, b).statistic)
    codes = np.unique(np.asarray(groups if groups is not None else np.arange(len(a))), return_inverse=True)[1]
    members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    rng = np.random.default_rng(seed)
    draws = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        draws[i] = spearmanr(a[idx], b[idx]).statistic
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(draws, [alpha, 1 - alpha])
    return rho, (float(lo), float(hi))


@torch.no_grad()
def prior_and_context(model: CILF, features, batch: int = 256) -> dict[str, np.ndarray | float]:
    """The age head taken apart (docs/method.md, sections 2, 4 and 5), per image of ``features``:

    * ``prior``: the similarity prior's logits alpha * tau * s * log S (n x K), s CLIP's logit scale;
    * ``head``: the head's own logits g * cos(f, T') / tau_h (n x K); ``prior + head`` are the model's logits;
    * ``context_shift``: |gamma Lin_c(c_k)| / |T_k| per class (n x K), how far context prompting moves each
      class's text feature, c_k the class's pooled FourierFormer context;
    * ``y0`` (the model's first estimate), ``y0_prior_only`` (softmax of the prior term alone: zero-shot CLIP,
      re-tempered by alpha; exactly zero-shot CLIP when alpha = 1),
      ``y0_head_only`` (softmax of the head's term alone) and ``y0_without_context`` (T' replaced by T, gamma = 0
      at inference; the model is not retrained, unlike the ablation ``context=off``);
    * the learned scalars ``alpha``, ``g``, ``tau_h`` and ``gamma``.

    Needs a model built with the similarity prior and context prompting (the defaults)."""
    cfg = model.cfg
    if not (cfg.similarity_prior and cfg.context_prompting):
        raise ValueError(
            "prior_and_context takes the model apart: build it with similarity_prior and context_prompting"
        )

    model.eval()
    head, fusion = model.head, model.fusion
    alpha, g = float(head.prior_weight), float(head.gain_rate * head.head_gain)
    scale = float(head.logit_scale.exp().clamp(max=1000.0))
    text = model.clip.class_text_features()  # T: K x D
    cols: dict[str, list] = {k: [] for k in ("prior", "head", "logits", "context_shift", "y0", "y0_without_context")}
    for i in range(0, len(features), batch):
        feats = features[i : i + batch]
        out = model(features=feats, correct=False)
        prior_plain = model.similarity_prior(global_log_scores(feats.pooled, text, cfg.tau))  # tau s log S
        prior = alpha * prior_plain
        cos = torch.einsum("bd,bkd->bk", F.normalize(out.fused, dim=-1), F.normalize(out.text, dim=-1))
        shift = (out.text - text.unsqueeze(0)).norm(dim=-1) / text.norm(dim=-1)
        _, _, y0_plain = head(out.fused, text, model.ages, prior_plain)  # the head with T in place of T'
        for k, v in (
            ("prior", prior),
            ("head", g * scale * cos),
            ("logits", out.logits),
            ("context_shift", shift),
            ("y0", out.y0),
            ("y0_without_context", y0_plain),
        ):
            cols[k].append(v)
    res: dict[str, np.ndarray | float] = {k: torch.cat(v).numpy() for k, v in cols.items()}
    ages = model.ages.numpy()
    for name, part in (("y0_prior_only", res["prior"]), ("y0_head_only", res["head"])):
        p = torch.softmax(torch.from_numpy(np.asarray(part)), dim=-1).numpy()
        res[name] = p @ ages
    res.update(alpha=alpha, g=g, tau_h=1.0 / scale, gamma=float(fusion.gamma))
    return res


def run_predictions(run_dir) -> dict[str, np.ndarray]:
    """A finished run folder's ``test_predictions.csv`` as arrays (n each): ``true_age`` and every prediction
    column (``age`` = x*, ``y0``, ``zero_shot``, ...), and ``path`` (the image files, for :func:`subjects_of`)."""
    with (Path(run_dir) / "test_predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{run_dir}/test_predictions.csv has no rows")

    def value(text: str) -> float:  # numbers, True/False (E_P's "accepted"), empty or None (no prediction)
        if text in ("True", "False"):
            return float(text == "True")
        try:
            return float(text)
        except ValueError:
            return float("nan")

    out: dict[str, np.ndarray] = {"path": np.array([r["path"] for r in rows])}
    for col in rows[0]:
        if col != "path":
            out[col] = np.array([value(r[col]) for r in rows])
    return out


def curve_errors(result: dict, method: str, n: int) -> np.ndarray | None:
    """Absolute test errors (seeds x test images) of ``method`` trained on ``n`` subjects in a learning-curve result
    (:func:`cilf.bench.curve.run_learning_curve`); a level (zero-shot, oracle: trained once) at any ``n``; None
    when the method has no predictions there. Images a seed did not predict are NaN."""
    y = np.asarray(result["test_ages"], float)
    by_n = result["pred"].get(method, {})
    runs = by_n.get(str(n)) or (next(iter(by_n.values())) if result["methods"][method]["kind"] == "level" else None)
    if not runs or any(r is None for r in runs):
        return None
    pred = np.array([[np.nan if p is None else p for p in r] for r in runs], dtype=float)
    return np.abs(pred - y[None, :])


def curve_differences(result: dict, a: str, b: str, counts=None) -> dict[int, object]:
    """{n: :class:`cilf.stats.Effect` of MAE(a) - MAE(b)} at every subject count (of ``counts``, default all of
    the result's) where both have predictions,
    paired over seeds x the test images both predicted (as the curve's own full - zero-shot row). Subjects are the
    resampling unit when the result records them (``test_subjects``), else images (the Effect's ``unit`` says)."""
    groups = np.asarray(result["test_subjects"]) if result.get("test_subjects") else None
    out = {}
    for n in result["subject_counts"] if counts is None else counts:
        ea, eb = curve_errors(result, a, n), curve_errors(result, b, n)
        if ea is None or eb is None:
            continue
        ok = np.isfinite(ea).all(axis=0) & np.isfinite(eb).all(axis=0)
        if ok.sum() < 2:  # no images both predicted in every seed: nothing to pair
            continue
        out[n] = stable_difference(ea[:, ok], eb[:, ok], groups=None if groups is None else groups[ok])
    return out
