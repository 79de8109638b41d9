"""FourierFormer against attention where token mixing must do work: two constructed token-grid tasks.

On the micro-CLIP's 8 x 8 grid the model without any token mixing does as well as with it (the claims' positive
control), so "FourierFormer matches attention" would hold of every mixer there. This benchmark is the setting the
claim needs: token grids whose target cannot be read without mixing, at the micro-CLIP's N = 64 and ViT-B/16's
N = 196, each mixer of :mod:`cilf.model.fourier` in the same stack (input projection + learned position embedding
-> ``FourierFormer`` -> mean over tokens -> linear), trained alike on the same data.

Tasks (x: n x H x W x 7 channels, y: n), both on a torus:

- ``context``: every token has one of 4 colours (one-hot; each grid's colour shares drawn from Dirichlet(1)) and one
  token is flagged as the key; y = the share of tokens with the key's colour. Content-based global context: each
  token needs a statistic of the whole grid and the key's colour.
- ``offset``: two binary marker maps a and b (p = 0.5); y = sum_n a_n b_(n + (H/2, W/2)) / (N p^2). A fixed
  long-range relation: each token needs the token half the grid away.

Without mixing, a mean over per-token features cannot form either target (both are sums of products across
tokens), so the no-mixing row is the floor a mixer must beat: the positive control. The equivalence margin is
fixed from the validation split before the test split is read: ``margin_fraction`` of the gap between no mixing
and the better mixer there. With several learning rates (``lrs``) every mixer trains at each, and keeps the one of
lowest validation MAE: an equal tuning budget, chosen without the test split. ``fused_attention`` trains the
attention row through PyTorch's fused kernel: the same function of the same weights, for grids where the explicit
N x N matrices make a CPU run take hours (its times are then fused SDPA's). Effects are paired over the same test grids, with 95% CIs over test grids x seeds
(:func:`cilf.stats.paired_mae_difference`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cilf.io import FolderLock, write_text
from cilf.model.fourier import MIXER_LABELS, FourierFormer
from cilf.stats import format_effect, paired_mae_difference, verdict

TASKS = ("context", "offset")
CHANNELS = 7  # context: 4 colours + key flag + 2 noise; offset: a, b + 5 noise


@dataclass(frozen=True, kw_only=True)
class MixingBench:
    """Sizes of the benchmark; ``grids``: grid sides (N = side^2)."""

    tasks: tuple[str, ...] = TASKS
    grids: tuple[int, ...] = (8, 14)
    mixers: tuple[str, ...] = ("fourier", "attention", "none")
    seeds: int = 3
    n_train: int = 1500
    n_val: int = 300
    n_test: int = 500
    epochs: int = 40
    batch_size: int = 64
    lrs: tuple[float, ...] = (2e-3,)  # peak learning rates; with several, each mixer keeps its best on validation
    fused_attention: bool = False  # the "attention" row computed by PyTorch's fused SDPA (the same function, faster)
    width: int = 32
    depth: int = 2
    heads: int = 4
    margin_fraction: float = 0.1

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"unknown task {bad[0]!r}; known: {', '.join(TASKS)}")
        if not {"fourier", "attention", "none"} <= set(self.mixers):
            raise ValueError(f"mixers={self.mixers}: the claim needs fourier, attention and none")
        if self.seeds < 2:
            raise ValueError(f"seeds={self.seeds}: the CI resamples seeds, so at least 2")
        if min(self.grids) < 4:
            raise ValueError(f"grids={self.grids}: sides of at least 4")
        if not self.lrs or min(self.lrs) <= 0:
            raise ValueError(f"lrs={self.lrs}: one or more positive learning rates")


def make_task(task: str, n: int, side: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` grids of ``task`` -> x (n x side x side x 7), y (n,). Same arguments, same tensors."""
    gen = torch.Generator().manual_seed(seed)
    if task == "context":
        k = 4
        shares = -torch.log(torch.rand(n, k, generator=gen))  # Dirichlet(1) as normalised exponentials
        shares = shares / shares.sum(1, keepdim=True)
        colour = torch.multinomial(shares, side * side, replacement=True, generator=gen)  # n x N
        key = torch.randint(0, side * side, (n,), generator=gen)
        flag = F.one_hot(key, side * side).float()
        noise = torch.randn(n, side * side, 2, generator=gen)
        x = torch.cat([F.one_hot(colour, k).float(), flag[..., None], noise], -1).reshape(n, side, side, CHANNELS)
        y = (colour == colour[torch.arange(n), key][:, None]).float().mean(1)
        return x, y
    if task == "offset":
        p = 0.5
        a = (torch.rand(n, side, side, generator=gen) < p).float()
        b = (torch.rand(n, side, side, generator=gen) < p).float()
        noise = torch.randn(n, side, side, CHANNELS - 2, generator=gen)
        x = torch.cat([a[..., None], b[..., None], noise], -1)
        partner = torch.roll(b, shifts=(-(side // 2), -(side // 2)), dims=(1, 2))  # b at n + (H/2, W/2)
        return x, (a * partner).sum((1, 2)) / (side * side * p * p)
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


class GridRegressor(nn.Module):
    """x (B x H x W x 7) -> y (B): Linear + learned position embedding -> FourierFormer -> mean -> Linear."""

    def __init__(self, *, side: int, mixer: str, width: int = 32, depth: int = 2, heads: int = 4):
        super().__init__()
        self.inp = nn.Linear(CHANNELS, width)
        self.pos = nn.Parameter(torch.randn(side, side, width) * 0.02)
        self.former = FourierFormer(width, depth=depth, mixer=mixer, grid=(side, side), heads=heads)
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.former(self.inp(x) + self.pos).mean((1, 2))).squeeze(-1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":  # kernels run asynchronously: time them when they are done
        torch.cuda.synchronize(device)


def train_one(
    cfg: MixingBench,
    mixer: str,
    side: int,
    data: dict,
    seed: int,
    lr: float | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Train one mixer on ``data`` ("train", "val", "test": (x, y)) at peak ``lr`` (default ``cfg.lrs[0]``) on
    ``device``; its absolute errors (numpy, per val and test grid) and training seconds."""
    lr = cfg.lrs[0] if lr is None else lr
    device = torch.device(device)
    torch.manual_seed(seed)
    built = "sdpa" if mixer == "attention" and cfg.fused_attention else mixer
    net = GridRegressor(side=side, mixer=built, width=cfg.width, depth=cfg.depth, heads=cfg.heads).to(device)
    data = {k: (x.to(device), y.to(device)) for k, (x, y) in data.items()}
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    x, y = data["train"]
    steps = cfg.epochs * math.ceil(len(y) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    order = torch.Generator().manual_seed(seed)
    _sync(device)
    start = time.perf_counter()
    net.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(y), generator=order)
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size].to(device)
            loss = (net(x[idx]) - y[idx]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    _sync(device)
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        err = {k: (net(data[k][0]) - data[k][1]).abs().cpu().numpy() for k in ("val", "test")}
    return {**err, "seconds": seconds}


class RunStore:
    """Finished runs of one mixer at one rate and seed, as JSON files in ``folder/runs`` named by the hash of all
    they depend on (the config's sizes, task, grid, mixer, rate, seed and device type): an interrupted or extended
    run (more seeds, more rates) reuses them. ``folder`` None: nothing is saved. One writer at a time
    (:class:`cilf.io.FolderLock`, taken by :func:`run_mixing`)."""

    def __init__(self, folder: str | Path | None):
        self.folder = None if folder is None else Path(folder)
        self.reused = self.computed = 0
        self.seconds = 0.0  # training seconds of every run handed out, computed or reused

    def get(self, key: dict, compute) -> dict:
        """The saved run for ``key`` ({"val", "test": arrays, "seconds"}), else ``compute()``, saved."""
        if self.folder is None:
            self.computed += 1
            out = compute()
            self.seconds += out["seconds"]
            return out
        name = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = self.folder / "runs" / f"{name}.json"
        try:
            saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (OSError, ValueError):
            saved = None  # damaged: computed again
        if isinstance(saved, dict) and saved.get("key") == key and isinstance(saved.get("run"), dict):
            run = saved["run"]
            self.reused += 1
            self.seconds += run["seconds"]
            return {
                "val": np.asarray(run["val"], np.float32),
                "test": np.asarray(run["test"], np.float32),
                "seconds": run["seconds"],
            }
        out = compute()
        run = {"val": out["val"].tolist(), "test": out["test"].tolist(), "seconds": out["seconds"]}
        write_text(path, json.dumps({"key": key, "run": run}), root=self.folder)
        self.computed += 1
        self.seconds += out["seconds"]
        return out


def _run_key(cfg: MixingBench, task: str, side: int, mixer: str, lr: float, seed: int, device: torch.device) -> dict:
    """What one saved run depends on: the sizes that shape it (not which tasks, grids, seeds or rates run beside)."""
    sizes = {
        k: v for k, v in asdict(cfg).items() if k not in ("tasks", "grids", "seeds", "lrs", "mixers", "margin_fraction")
    }
    return {**sizes, "task": task, "side": side, "mixer": mixer, "lr": lr, "seed": seed, "device": device.type}


def _effect(err: dict, a: str, b: str, split: str = "test"):
    return paired_mae_difference(np.stack(err[a][split]), np.stack(err[b][split]), group_unit="grids")


def _cell(
    cfg: MixingBench,
    task: str,
    side: int,
    bar=None,
    device: str | torch.device = "cpu",
    store: RunStore | None = None,
) -> dict:
    """Every mixer on one task at one grid over ``cfg.seeds`` seeds: MAEs, the margin read on validation, the
    positive control (the better mixer on validation vs none) and the claim (fourier vs attention) on test. With
    several ``cfg.lrs`` every mixer trains at each, and keeps the one of lowest validation MAE over the seeds."""
    device, store = torch.device(device), store or RunStore(None)
    data_seed = 1000 * TASKS.index(task) + side
    test = make_task(task, cfg.n_test, side, data_seed)  # one test set for every seed: paired over its grids
    runs = {(m, lr): {"val": [], "test": [], "seconds": []} for m in cfg.mixers for lr in cfg.lrs}
    for s in range(cfg.seeds):
        data = {
            "train": make_task(task, cfg.n_train, side, data_seed + 100 * (s + 1)),
            "val": make_task(task, cfg.n_val, side, data_seed + 100 * (s + 1) + 1),
            "test": test,
        }
        for m in cfg.mixers:
            for lr in cfg.lrs:
                out = store.get(
                    _run_key(cfg, task, side, m, lr, s, device),
                    lambda m=m, lr=lr, s=s, data=data: train_one(cfg, m, side, data, seed=s, lr=lr, device=device),
                )
                for k in ("val", "test", "seconds"):
                    runs[(m, lr)][k].append(out[k])
                if bar is not None:
                    bar.update(1)
    lr_of = {m: min(cfg.lrs, key=lambda lr: float(np.mean(runs[(m, lr)]["val"]))) for m in cfg.mixers}  # on val
    err = {m: runs[(m, lr_of[m])] for m in cfg.mixers}
    val = {m: float(np.mean(err[m]["val"])) for m in cfg.mixers}
    best = min(("fourier", "attention"), key=val.get)  # chosen on validation, never on test
    gap = val["none"] - val[best]
    margin = cfg.margin_fraction * gap if gap > 0 else None
    control = _effect(err, best, "none")
    claim = _effect(err, "fourier", "attention")
    resolved = verdict(control, better="lower") == "supported"
    if margin is None or not resolved:
        word = "not testable here"
    else:
        word = verdict(claim, better="equivalent", margin=margin)
    better = "fourier" if claim.ci_high < 0 else "attention" if claim.ci_low > 0 else None
    return {
        "task": task,
        "side": side,
        "tokens": side * side,
        "mae": {m: float(np.mean(err[m]["test"])) for m in cfg.mixers},
        "mae_val": val,
        "seconds_per_run": {m: float(np.mean(err[m]["seconds"])) for m in cfg.mixers},
        "lr": lr_of,  # each mixer's peak learning rate, chosen on validation when cfg.lrs holds several
        "mae_val_by_lr": {m: {f"{lr:g}": float(np.mean(runs[(m, lr)]["val"])) for lr in cfg.lrs} for m in cfg.mixers},
        "best_on_val": best,
        "margin": margin,
        "control": {"a": best, "b": "none", **_effect_dict(control), "resolved": resolved},
        "claim": {"a": "fourier", "b": "attention", **_effect_dict(claim)},
        "fourier_vs_none": _effect_dict(_effect(err, "fourier", "none")),
        "verdict": word,
        "better": better,  # the mixer whose error is resolved lower, None when the CI holds 0
    }


def _effect_dict(e) -> dict:
    return {
        "estimate": e.estimate,
        "ci_low": e.ci_low,
        "ci_high": e.ci_high,
        "text": format_effect(e, unit="", digits=3),
    }


def run_mixing(
    cfg: MixingBench = MixingBench(),
    progress: bool = True,
    device: str | torch.device = "cpu",
    out: str | Path | None = None,
) -> dict:
    """Every task x grid of ``cfg`` (:func:`_cell`) on ``device``; a JSON-ready result with ``rows`` and the config.
    ``out``: a folder whose finished runs are reused and where new ones are saved (:class:`RunStore`)."""
    total = len(cfg.tasks) * len(cfg.grids) * cfg.seeds * len(cfg.mixers) * len(cfg.lrs)
    rows, store, device = [], RunStore(out), torch.device(device)
    with FolderLock(out, "bench-mixing") if out is not None else nullcontext():
        with tqdm(total=total, desc="bench-mixing", unit="run", disable=not progress) as bar:
            for side in cfg.grids:
                for task in cfg.tasks:
                    rows.append(_cell(cfg, task, side, bar, device, store))
    return {
        "source": "this run, constructed token-grid tasks (synthetic)",
        "device": str(device),
        "runs": {"computed": store.computed, "reused": store.reused},
        "train_seconds": store.seconds,  # every run's training time, reused runs' as they were measured
        "config": asdict(cfg),
        "labels": {m: MIXER_LABELS["sdpa" if m == "attention" and cfg.fused_attention else m] for m in cfg.mixers},
        "ci": "95% CI over test grids x seeds (cilf.stats.paired_mae_difference), paired on the same test grids",
        "rows": rows,
    }


def format_mixing(result: dict) -> str:
    """The result as plain text, one line per task and grid."""
    lines = [
        f"== FourierFormer vs attention where mixing must work ({result['source']}) ==",
        "MAE on the test grids per mixer; control = better mixer (on validation) - none; claim = fourier - "
        f"attention, |claim| < margin (set on validation) to match; {result['ci']}",
    ]
    for r in result["rows"]:
        mae = ", ".join(f"{m} {v:.4f}" for m, v in r["mae"].items())
        secs = ", ".join(f"{m} {v:.1f}" for m, v in r["seconds_per_run"].items())
        lrs = ", ".join(f"{m} {v:g}" for m, v in r.get("lr", {}).items())
        margin = f"{r['margin']:.4f}" if r["margin"] is not None else "none (no gap on validation)"
        lines += [
            f"{r['task']} N={r['tokens']}: {mae}",
            f"    control {r['control']['a']} - none: {r['control']['text']} "
            f"({'resolved' if r['control']['resolved'] else 'not resolved'}); claim fourier - attention: "
            f"{r['claim']['text']}, margin {margin} -> {r['verdict']}"
            + (f" ({r['better']} better)" if r["better"] else ""),
            f"    training seconds per run: {secs}"
            + (f"; peak lr (chosen on validation): {lrs}" if len(result["config"].get("lrs", ())) > 1 else ""),
        ]
    return "\n".join(lines)
