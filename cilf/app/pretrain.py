"""Pretrain the bundled micro-CLIP on SynthAge image-caption pairs (docs/method.md, section 11).

open_clip's own model (``cilf-micro``, registered from ``cilf/persist/model_configs``) and its own
contrastive loss (``open_clip.ClipLoss``). The pretraining set is a separate SynthAge draw
(seed 1000): none of its subjects appear in the default evaluation set (seed 0), so every
report on seed 0 is on held-out subjects. Deterministic by seed; resumable per epoch.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from cilf.app.params import Budget, stop_after_option
from cilf.app.schedule import NonFiniteLoss, build_optimizer, check_resume_settings, session_epochs
from cilf.data.captions import CAPTION_STYLES, web_caption
from cilf.data.datasets import SynthAge, collate_skip
from cilf.io import FolderLock, atomic_write, write_json
from cilf.options import check_options, option
from cilf.persist.checkpoint import load_torch_state
from cilf.persist.clip_weights import bundled_weights_path
from cilf.persist.factory import MODEL_CONFIG_DIR  # noqa: F401  (importing the factory adds cilf-micro to open_clip)
from cilf.utils import pick_device, seed_everything

STATE = "state.pt"
# what a resumed run must keep; device, progress and stop_after_epochs may change
RESUME_FIXED = (
    "model",
    "n_images",
    "data_seed",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "seed",
    "person_prompt_prob",
    "captions",
    "precision",
)


PRECISIONS = ("fp32", "bf16")


@dataclass
class PretrainConfig(Budget):
    """A CLIP pretraining run: its :class:`~cilf.app.params.Budget` (with pretraining's defaults) and its data."""

    epochs: int = option(8, "training epochs", low=1)
    batch_size: int = option(256, "image-caption pairs per step", low=2)
    lr: float = option(1e-3, "AdamW peak learning rate", positive=True)
    weight_decay: float = option(0.1, "AdamW weight decay", low=0)
    warmup_steps: int = option(100, "steps of linear learning-rate warm-up", low=1)
    out: str = option("runs/pretrain-clip", "run folder (checkpoints, log, weights)")
    model: str = "cilf-micro"
    n_images: int = option(20000, "SynthAge images with captions", low=2)
    data_seed: int = 1000  # disjoint from the evaluation set (seed 0)
    person_prompt_prob: float = 0.3  # exact captions: replace by "a photo of a {age}-year-old person."
    captions: str = option(
        "exact",
        "exact: SynthAge's captions, which state the age; web: alt-text-like captions (coarse age words, visible "
        "cues, an exact age rarely, the evaluation prompts held out; cilf/data/captions.py)",
        choices=CAPTION_STYLES,
    )
    progress: bool = True
    stop_after_epochs: int | None = stop_after_option()
    precision: str = option(
        "fp32",
        "bf16: both towers under bf16 autocast, the loss in float32 (faster on CPUs with AVX512-BF16 and on GPUs)",
        choices=PRECISIONS,
    )

    def __post_init__(self) -> None:
        check_options(self)
        if not 0 <= self.person_prompt_prob <= 1:
            raise ValueError(f"person_prompt_prob must lie in [0, 1], got {self.person_prompt_prob}")


def training_caption(meta: dict, age: float, rng: np.random.Generator, p_person: float, style: str = "exact") -> str:
    """The image's caption in ``style`` (:data:`CAPTION_STYLES`); exact captions are replaced with probability
    ``p_person`` by the plain prompt wording (web captions never hold it: the evaluation prompts are held out)."""
    if style == "web":
        return web_caption(int(age), meta, rng)
    if rng.random() < p_person:
        return f"a photo of a {int(age)}-year-old person."
    return meta["caption"]


def export_weights(model: torch.nn.Module, path: str | Path) -> Path:
    """Save an open_clip state dict as float16 safetensors, written whole (loadable by open_clip by path)."""
    state = {
        k: v.detach().to(torch.float16).contiguous() if v.is_floating_point() else v.contiguous()
        for k, v in model.state_dict().items()
    }
    return atomic_write(
        path, lambda p: save_file(state, str(p), metadata={"format": "pt", "source": "cilf pretrain-clip on SynthAge"})
    )


def pretrain_clip(pcfg: PretrainConfig, resume: bool = False, export_to: str | Path | None = None) -> dict:
    """Contrastive pretraining; returns the history. Writes ``out/state.pt`` every epoch and the final
    float16 weights to ``out/<model>.safetensors`` (and to ``export_to`` if given).

    One process at a time writes ``out`` (``.cilf-lock``); a loss that becomes NaN or infinite
    stops the run (NonFiniteLoss naming epoch and step) with ``state.pt`` still at the last good epoch.
    """
    out = Path(pcfg.out)
    with FolderLock(out, "pretrain-clip"):
        state = _resume_state(out, pcfg, resume)  # before the data: a bad state is refused at once
        device = pick_device(pcfg.device)
        seed_everything(pcfg.seed)
        model, _, preprocess = open_clip.create_model_and_transforms(pcfg.model, pretrained=None)
        tokenizer = open_clip.get_tokenizer(pcfg.model)
        model = model.to(device)
        pairs = _load_pairs(pcfg, preprocess)
        steps_per_epoch = len(pairs.ages) // pcfg.batch_size
        opt, sched = _optimiser(model, pcfg, steps_per_epoch)
        history: list[dict] = []
        start = 0
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, history = state["epoch"] + 1, state["history"]
        epochs = session_epochs(start, pcfg.epochs, pcfg.stop_after_epochs)
        t0 = time.time()
        for epoch in epochs:
            try:
                loss = _train_epoch(model, opt, sched, tokenizer, pairs, pcfg, epoch, steps_per_epoch, device)
            except NonFiniteLoss as e:
                kept = f"{out / STATE} keeps epoch {history[-1]['epoch']}" if history else "no epoch had been saved"
                raise NonFiniteLoss(
                    f"{out}: {e}; pretraining stopped ({kept}); start a new run (another --out) with a lower --lr"
                ) from None
            history.append({"epoch": epoch + 1, "loss": loss, "seconds": time.time() - t0})
            if pcfg.progress:
                tqdm.write(f"epoch {epoch + 1}: contrastive loss {loss:.3f} ({history[-1]['seconds']:.0f} s)")
            _save_state(out, model, opt, sched, epoch, history, pcfg)
        if epochs.stop < pcfg.epochs:
            return {"stopped_after_epoch": epochs.stop, "history": history}
        weights = export_weights(model, out / f"{pcfg.model}.safetensors")
        if export_to is not None:
            export_weights(model, export_to)
        return {"history": history, "weights": str(weights)}


def _resume_state(out: Path, pcfg: PretrainConfig, resume: bool) -> dict | None:
    """The saved state to continue from (verified, tensors and plain data only), or None for a new run."""
    path = out / STATE
    if not path.is_file():
        return None
    if not resume:
        raise FileExistsError(f"{out} already holds a pretraining run; pass --resume or choose another --out")
    state = load_torch_state(path, "start a new run with another --out", purpose=" to resume")
    check_resume_settings(path, state.get("pcfg", {}), asdict(pcfg), RESUME_FIXED)
    return state


class _Pairs(NamedTuple):
    images: torch.Tensor  # (n, 3, H, W) float16, preprocessed
    ages: torch.Tensor  # (n,)
    metas: list[dict]  # captions


def _load_pairs(pcfg: PretrainConfig, preprocess) -> _Pairs:
    """Decode every SynthAge image once: 20k x 3 x 112 x 112 float16 = 1.5 GB."""
    data = SynthAge(
        split=None, n_images=pcfg.n_images, seed=pcfg.data_seed, transform=preprocess, progress=pcfg.progress
    )
    images, ages, metas = [], [], []
    loader = torch.utils.data.DataLoader(data, batch_size=512, collate_fn=collate_skip)
    for batch in tqdm(loader, desc="load", disable=not pcfg.progress, leave=False):
        if batch is None:
            continue
        images.append(batch[0].half())
        ages.append(batch[1])
        metas.extend(batch[3])
    return _Pairs(torch.cat(images), torch.cat(ages), metas)


def _optimiser(model: torch.nn.Module, pcfg: PretrainConfig, steps_per_epoch: int):
    """AdamW (no weight decay on biases, norms and embeddings) with warm-up and cosine decay."""
    decay = [p for nme, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in nme]
    no_decay = [p for nme, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in nme)]
    groups = [{"params": decay, "weight_decay": pcfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return build_optimizer(
        model,
        lr=pcfg.lr,
        weight_decay=pcfg.weight_decay,
        warmup_steps=pcfg.warmup_steps,
        total_steps=steps_per_epoch * pcfg.epochs,
        groups=groups,
    )


def _train_epoch(
    model, opt, sched, tokenizer, pairs: _Pairs, pcfg: PretrainConfig, epoch: int, steps: int, device
) -> float:
    """One shuffled pass of ``steps`` batches (order and caption draws by seed and epoch); the mean loss."""
    model.train()
    loss_fn = open_clip.ClipLoss()
    gen = torch.Generator().manual_seed(pcfg.seed * 1000003 + epoch)
    rng = np.random.default_rng([pcfg.seed, epoch])
    perm = torch.randperm(len(pairs.ages), generator=gen)
    total_loss = 0.0
    bar = tqdm(range(steps), desc=f"pretrain {epoch + 1}/{pcfg.epochs}", disable=not pcfg.progress, leave=False)
    for s in bar:
        idx = perm[s * pcfg.batch_size : (s + 1) * pcfg.batch_size]
        texts = [
            training_caption(pairs.metas[i], float(pairs.ages[i]), rng, pcfg.person_prompt_prob, pcfg.captions)
            for i in idx.tolist()
        ]
        feats_i, feats_t = _encode_pair(
            model, pairs.images[idx].float().to(device), tokenizer(texts).to(device), pcfg.precision
        )
        loss = loss_fn(feats_i, feats_t, model.logit_scale.exp())
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"the contrastive loss became {value} in epoch {epoch + 1}, step {s + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        total_loss += value
        bar.set_postfix(loss=f"{total_loss / (s + 1):.3f}")
    return total_loss / max(1, steps)


def _encode_pair(model, images: torch.Tensor, tokens: torch.Tensor, precision: str):
    """(B x D, B x D) L2-normalised image and text features of B pairs, float32. With ``bf16`` both towers run
    under bf16 autocast (1.4x per 256-pair step measured on a CPU with AVX512-BF16) and their outputs are
    normalised in float32."""
    amp = torch.autocast(images.device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with amp:
        fi, ft = model.encode_image(images), model.encode_text(tokens)
    return F.normalize(fi.float(), dim=-1), F.normalize(ft.float(), dim=-1)


def _save_state(out: Path, model, opt, sched, epoch: int, history: list, pcfg: PretrainConfig) -> None:
    """``state.pt`` (tensors and plain data only) and ``history.json``, each written whole."""
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "history": history,
        "pcfg": asdict(pcfg),
    }
    atomic_write(out / STATE, lambda p: torch.save(state, p), root=out)
    write_json(out / "history.json", history, root=out)


def default_export_path(model: str = "cilf-micro", captions: str = "exact") -> Path:
    """Where ``--install`` puts the weights: the package's ``bundled`` file (exact captions) or ``bundled-web``."""
    return bundled_weights_path(model, "bundled-web" if captions == "web" else "bundled")
