"""Pretrain the bundled micro-CLIP on SynthAge image-caption pairs (docs/method.md, section 11).

open_clip's own model (``cilf-micro``, registered from ``cilf/model/model_configs``) and its own
contrastive loss (``open_clip.ClipLoss``). The pretraining set is a separate SynthAge draw
(seed 1000): none of its subjects appear in the default evaluation set (seed 0), so every
report on seed 0 is on held-out subjects. Deterministic by seed; resumable per epoch.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from ..model import clip as _registers_configs  # noqa: F401  (adds cilf-micro to open_clip)
from ..model.clip import bundled_weights_path
from ..model.config import check_ranges
from ..data.datasets import SynthAge, collate_skip
from ..utils import pick_device, seed_everything


@dataclass
class PretrainConfig:
    out: str = "runs/pretrain-clip"
    model: str = "cilf-micro"
    n_images: int = 20000
    data_seed: int = 1000  # disjoint from the evaluation set (seed 0)
    epochs: int = 8
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    seed: int = 0
    person_prompt_prob: float = 0.3  # replace the caption by "a photo of a {age}-year-old person."
    device: str = "auto"
    progress: bool = True
    stop_after_epochs: int | None = None

    def __post_init__(self) -> None:
        check_ranges(self, {"n_images": 2, "epochs": 1, "batch_size": 2, "warmup_steps": 1, "stop_after_epochs": 1,
                            "weight_decay": 0, "person_prompt_prob": 0}, ("lr",))


def training_caption(meta: dict, age: float, rng: np.random.Generator, p_person: float) -> str:
    """The image's caption, or with probability ``p_person`` the plain prompt wording."""
    if rng.random() < p_person:
        return f"a photo of a {int(age)}-year-old person."
    return meta["caption"]


def _save_state(path: Path, model, opt, sched, epoch: int, history: list, pcfg: PretrainConfig) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epoch, "history": history, "pcfg": asdict(pcfg)}, tmp)
    tmp.replace(path)


def export_weights(model: torch.nn.Module, path: str | Path) -> Path:
    """Save an open_clip state dict as float16 safetensors (loadable by open_clip by path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() if v.is_floating_point() else v.contiguous()
             for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "source": "cilf pretrain-clip on SynthAge"})
    tmp.replace(path)
    return path


def pretrain_clip(pcfg: PretrainConfig, resume: bool = False, export_to: str | Path | None = None) -> dict:
    """Contrastive pretraining; returns the history. Writes ``out/state.pt`` every epoch and the final
    float16 weights to ``out/<model>.safetensors`` (and to ``export_to`` if given)."""
    out = Path(pcfg.out)
    state_path = out / "state.pt"
    if state_path.is_file() and not resume:
        raise FileExistsError(f"{out} already holds a pretraining run; pass --resume or choose another --out")
    device = pick_device(pcfg.device)
    seed_everything(pcfg.seed)
    model, _, preprocess = open_clip.create_model_and_transforms(pcfg.model, pretrained=None)
    tokenizer = open_clip.get_tokenizer(pcfg.model)
    model = model.to(device)
    data = SynthAge(split=None, n_images=pcfg.n_images, seed=pcfg.data_seed, transform=preprocess,
                    progress=pcfg.progress)
    # decode every image once: 20k x 3 x 112 x 112 floats = 3 GB; uint8 keeps it at 0.75 GB
    images, ages, metas = [], [], []
    loader = torch.utils.data.DataLoader(data, batch_size=512, collate_fn=collate_skip)
    for batch in tqdm(loader, desc="load", disable=not pcfg.progress, leave=False):
        if batch is None:
            continue
        images.append(batch[0].half())
        ages.append(batch[1])
        metas.extend(batch[3])
    images_t, ages_t = torch.cat(images), torch.cat(ages)
    n = len(ages_t)
    loss_fn = open_clip.ClipLoss()
    decay = [p for nme, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in nme]
    no_decay = [p for nme, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in nme)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": pcfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=pcfg.lr)
    steps_per_epoch = n // pcfg.batch_size
    total = max(1, steps_per_epoch * pcfg.epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / pcfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    history: list[dict] = []
    start = 0
    if resume and state_path.is_file():
        st = torch.load(state_path, map_location=device, weights_only=False)
        if st["pcfg"]["seed"] != pcfg.seed or st["pcfg"]["n_images"] != pcfg.n_images:
            raise ValueError(f"{state_path}: started with another seed or data size; resume with the same settings")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start, history = st["epoch"] + 1, st["history"]
    out.mkdir(parents=True, exist_ok=True)
    stop = pcfg.epochs if pcfg.stop_after_epochs is None else min(pcfg.epochs, start + pcfg.stop_after_epochs)
    t0 = time.time()
    for epoch in range(start, stop):
        model.train()
        gen = torch.Generator().manual_seed(pcfg.seed * 1000003 + epoch)
        rng = np.random.default_rng([pcfg.seed, epoch])
        perm = torch.randperm(n, generator=gen)
        total_loss = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"pretrain {epoch + 1}/{pcfg.epochs}", disable=not pcfg.progress,
                   leave=False)
        for s in bar:
            idx = perm[s * pcfg.batch_size : (s + 1) * pcfg.batch_size]
            texts = [training_caption(metas[i], float(ages_t[i]), rng, pcfg.person_prompt_prob) for i in idx.tolist()]
            img = images_t[idx].float().to(device)
            tok = tokenizer(texts).to(device)
            feats_i, feats_t, scale = model(img, tok)
            loss = loss_fn(feats_i, feats_t, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            total_loss += float(loss.detach())
            bar.set_postfix(loss=f"{total_loss / (s + 1):.3f}")
        history.append({"epoch": epoch + 1, "loss": total_loss / max(1, steps_per_epoch),
                        "seconds": time.time() - t0})
        if pcfg.progress:
            tqdm.write(f"epoch {epoch + 1}: contrastive loss {history[-1]['loss']:.3f} ({history[-1]['seconds']:.0f} s)")
        _save_state(state_path, model, opt, sched, epoch, history, pcfg)
        (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    if stop < pcfg.epochs:
        return {"stopped_after_epoch": stop, "history": history}
    weights = export_weights(model, out / f"{pcfg.model}.safetensors")
    if export_to is not None:
        export_weights(model, export_to)
    return {"history": history, "weights": str(weights)}


def default_export_path(model: str = "cilf-micro") -> Path:
    return bundled_weights_path(model)
