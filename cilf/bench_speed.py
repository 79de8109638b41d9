"""Complexity measured, not asserted: one FourierFormer block against attention blocks of the same
width and MLP as the token count N grows (issue 6, item 1, first bullet).

For each mixer and N: forward+backward wall time (median of repeats after warm-up) and activation
memory = bytes autograd saves for backward (``torch.autograd.graph.saved_tensors_hooks``, each
storage counted once); on CUDA also ``max_memory_allocated``. Log-log slopes are fitted per mixer.
"""
from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .fourier import FourierFormerBlock

DEFAULT_TOKENS = (49, 196, 784, 3136, 12544)
MIXER_LABELS = {"fourier": "FourierFormer (FFT)", "attention": "attention, softmax(QK^T)V",
                "sdpa": "attention, fused SDPA"}


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fwd_bwd(block: torch.nn.Module, x: torch.Tensor, repeats: int = 5, warmup: int = 2) -> float:
    """Median seconds of one forward+backward pass."""
    times = []
    for i in range(warmup + repeats):
        block.zero_grad(set_to_none=True)
        xi = x.detach().requires_grad_(True)
        _sync(x.device)
        t0 = time.perf_counter()
        block(xi).sum().backward()
        _sync(x.device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def fit_slope(ns, values) -> float:
    """Slope of log(values) against log(ns) (least squares)."""
    return float(np.polyfit(np.log(np.asarray(ns, float)), np.log(np.asarray(values, float)), 1)[0])


def bench_mixers(tokens=DEFAULT_TOKENS, dim: int = 64, batch: int = 1, heads: int = 4,
                 mixers=("fourier", "attention", "sdpa"), repeats: int = 5, warmup: int = 2,
                 device: str | torch.device = "cpu", max_attention_bytes: float = 8e9,
                 progress: bool = True) -> dict:
    """Measure every (mixer, N). Attention cases whose N x N scores would exceed
    ``max_attention_bytes`` are reported as skipped with the reason, not silently dropped."""
    device = torch.device(device)
    rows = []
    for n in tokens:
        side = int(round(math.sqrt(n)))
        if side * side != n:
            raise ValueError(f"token count {n} is not a square grid")
        for mixer in mixers:
            scores_bytes = batch * heads * n * n * 4 * 3  # scores, softmax and its grad
            row = {"mixer": mixer, "tokens": n, "grid": [side, side], "dim": dim, "batch": batch}
            if mixer == "attention" and scores_bytes > max_attention_bytes:
                row["skipped"] = f"N x N scores need ~{scores_bytes / 1e9:.1f} GB > limit {max_attention_bytes / 1e9:.1f} GB"
                rows.append(row)
                continue
            torch.manual_seed(0)
            block = FourierFormerBlock(dim, mixer, (side, side), mlp_ratio=4.0, heads=heads).to(device)
            x = torch.randn(batch, side, side, dim, device=device)
            row["saved_bytes"] = saved_activation_bytes(lambda: block(x.detach().requires_grad_(True)))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            row["seconds"] = time_fwd_bwd(block, x, repeats, warmup)
            if device.type == "cuda":
                row["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(device) - base)
            rows.append(row)
            if progress:
                print(f"  {mixer:9s} N={n:6d}  {row['seconds'] * 1e3:9.2f} ms  saved {row['saved_bytes'] / 2**20:9.2f} MiB",
                      flush=True)
    slopes = {}
    for mixer in mixers:
        ok = [r for r in rows if r["mixer"] == mixer and "seconds" in r]
        if len(ok) >= 2:
            slopes[mixer] = {"time": fit_slope([r["tokens"] for r in ok], [r["seconds"] for r in ok]),
                             "memory": fit_slope([r["tokens"] for r in ok], [r["saved_bytes"] for r in ok])}
    return {"source": f"this run, {describe_device(device)}", "rows": rows, "slopes": slopes,
            "settings": {"dim": dim, "batch": batch, "heads": heads, "mlp_ratio": 4.0, "repeats": repeats,
                         "warmup": warmup, "torch": torch.__version__, "threads": torch.get_num_threads()}}


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
    return {m: {"time_ratio": r["seconds"] / f["seconds"], "memory_ratio": r["saved_bytes"] / f["saved_bytes"]}
            for m, r in by.items() if m != "fourier"}


def format_table(result: dict) -> str:
    lines = [f"== FourierFormer block vs attention blocks ({result['source']}) ==",
             f"{'mixer':28s} {'N':>6s} {'fwd+bwd ms':>11s} {'saved MiB':>10s}"]
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
            lines.append(f"N={n}: {MIXER_LABELS.get(m, m)} takes {q['time_ratio']:.1f}x the time and "
                         f"{q['memory_ratio']:.1f}x the activation memory of FourierFormer")
    return "\n".join(lines)


def complexity_figure(result: dict, path: str | Path | None = None):
    from .viz import _plt, save_figure

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in dict.fromkeys(r["mixer"] for r in result["rows"]):
        ok = [r for r in result["rows"] if r["mixer"] == m and "seconds" in r]
        if not ok:
            continue
        ns = [r["tokens"] for r in ok]
        s = result["slopes"].get(m, {})
        axes[0].loglog(ns, [r["seconds"] * 1e3 for r in ok], marker="o",
                       label=f"{MIXER_LABELS.get(m, m)} (slope {s.get('time', float('nan')):.2f})")
        axes[1].loglog(ns, [r["saved_bytes"] / 2**20 for r in ok], marker="o",
                       label=f"{MIXER_LABELS.get(m, m)} (slope {s.get('memory', float('nan')):.2f})")
    axes[0].set(xlabel="tokens N", ylabel="forward+backward (ms)", title="time")
    axes[1].set(xlabel="tokens N", ylabel="activations saved for backward (MiB)", title="memory")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"one block, width {result['settings']['dim']}: {result['source']}")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def run(out_json: str | Path | None = None, figure: str | Path | None = None, **kw) -> dict:
    result = bench_mixers(**kw)
    print(format_table(result))
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(result, indent=2) + "\n")
    if figure:
        complexity_figure(result, figure)
    return result
