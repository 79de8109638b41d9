"""Small analyses behind the notebooks' figures (kept here so tests can reach them)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cilf.model.cilf_model import CILF, CILFOutput
from cilf.model.fourier import FourierMixer, GlobalFilter
from cilf.model.heads import age_index


@torch.no_grad()
def run_on_images(model: CILF, images) -> CILFOutput:
    """PIL images (list) -> the model's full output (scores, maps, y0, correction ...)."""
    model.eval()
    x = torch.stack([model.preprocess(im) for im in images])
    return model(x)


@torch.no_grad()
def fpe_steps(filt: GlobalFilter, x: torch.Tensor) -> dict[str, np.ndarray]:
    """One global-filter pass step by step for x (H x W x C): channel-mean of the input, |DFT|,
    |filter|, |filtered spectrum| and the IDFT output (each H x W or H x W//2+1)."""
    size = (x.shape[0], x.shape[1])
    spec = torch.fft.rfft2(x.float().permute(2, 0, 1), norm="ortho")  # C x H x W//2+1, as GlobalFilter.forward
    k = filt.filter_for(*size)
    filtered = spec * k
    out = torch.fft.irfft2(filtered, s=size, norm="ortho").permute(1, 2, 0)
    return {
        "input": x.mean(-1).numpy(),
        "spectrum": spec.abs().mean(0).numpy(),
        "filter": k.abs().mean(0).numpy(),
        "filtered": filtered.abs().mean(0).numpy(),
        "output": out.mean(-1).numpy(),
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
