"""Multi-process training under ``torchrun`` (docs/method.md, section 12), and the single-process default.

``torchrun --nproc_per_node=G -m cilf train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; then
:func:`init_distributed` joins the process group (NCCL on CUDA, Gloo on CPU) and each rank takes its
own GPU. Without those variables everything here is a no-op for one process. Rank 0 writes
(SynthAge, the feature cache, checkpoints, logs); the other ranks wait for it and then read.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cilf.utils import pick_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    @contextmanager
    def main_first(self):
        """Rank 0 runs the block first (and writes what it caches); the other ranks then run it (and read)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def all_agree(self, flag: bool) -> bool:
        """True only when ``flag`` is true on every rank (so all ranks skip a step together)."""
        if not self.active:
            return flag
        t = torch.tensor([1 if flag else 0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average each value over the ranks (the same keys on every rank)."""
        if not self.active or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun; else one process on ``device``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=pick_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, dev)


def shutdown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()
