"""How far float-level changes of the features move each trained peer's MAE, in notebook 06's FAST setting.

Another CPU encodes the same images with other kernels; the feature cache stores float16, so the float32
differences reach the peers as whole float16 steps (about 1e-3 relative) in the entries near a rounding boundary.
A peer whose training amplifies such changes moves its MAE further than the key numbers' default tolerance. This
measures that amplification: every trained peer is refitted on the features multiplied by (1 + eps * z), z
standard normal in every entry, for eps from 1e-6 to 1e-3 (at 1e-3 more than another CPU changes), and its MAE over
the notebook's runs (first split, 3 seeds) compared with the unperturbed one. Notebook 06 holds each peer's MAE to twice the largest
move measured here where that exceeds the default rule (docs/statistics.md, "Key numbers").

    python -m tools.results run peer_sensitivity_synthage --json runs/peer_sensitivity.json -- \\
        python -m tools.peer_sensitivity --json runs/peer_sensitivity.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from cilf.bench.claims import CLAIMS_MODEL
from cilf.bench.peers import PEERS
from cilf.bench.runner import BenchConfig, fold_runs, peer_inputs, prepare
from cilf.io import json_text, write_text
from cilf.utils import cache_dir

TRAINED = ("regression", "classification", "dex", "coral", "mean_variance", "mean_residue", "drf", "linear_probe")
EPS = (1e-6, 1e-5, 1e-4, 1e-3)
DRAWS = 2
# notebook 06's FAST run (its BUDGET, SEEDS and first split): the features and runs its key numbers come from
NOTEBOOK_06 = dict(
    dataset="synthage", protocol="5-fold", max_folds=1, seeds=3, n_images=1200, epochs=6, crossfit_folds=2
)


def peer_mae(setup, name: str, eps: float, draw: int) -> float:
    """MAE (y) of peer ``name`` over every fold x seed run, its features multiplied by (1 + eps * z)."""
    pooled = setup.cf.features.pooled
    if eps:
        z = torch.randn(pooled.shape, generator=torch.Generator().manual_seed(1000 + draw))
        pooled = pooled * (1 + eps * z)
    errors = []
    for fr in fold_runs(setup):
        inp = peer_inputs(setup, fr, pooled)
        out = PEERS[name].fit_and_predict(inp)
        ages = out[0] if isinstance(out, tuple) else out
        errors.append(np.abs(np.asarray(ages, dtype=np.float64) - fr.y_te))
    return float(np.concatenate(errors).mean())


def measure(peers=TRAINED, eps=EPS, draws: int = DRAWS) -> dict:
    """{config, eps, draws, peers: {name: {mae, perturbed: {eps: [mae per draw]}}}, max_move: {name: y}}."""
    bcfg = BenchConfig(
        **NOTEBOOK_06, variants=("full",), peers=tuple(peers), out=str(cache_dir() / "bench"), progress=False,
        model=dict(CLAIMS_MODEL),
    )  # fmt: skip
    setup = prepare(bcfg, None)
    rows, moves = {}, {}
    for name in peers:
        base = peer_mae(setup, name, 0.0, 0)
        perturbed = {f"{e:g}": [peer_mae(setup, name, e, d) for d in range(draws)] for e in eps}
        rows[name] = {"mae": base, "perturbed": perturbed}
        moves[name] = max(abs(m - base) for ms in perturbed.values() for m in ms)
        print(f"{name:15s} MAE {base:.4f}  largest move {moves[name]:.4f} y", flush=True)
    return {
        "source": "this run, SynthAge (synthetic), notebook 06's FAST setting (first split, 3 seeds)",
        "config": {**NOTEBOOK_06, "model": dict(CLAIMS_MODEL)},
        "eps": list(eps),
        "draws": draws,
        "peers": rows,
        "max_move": moves,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, required=True, help="where the measurement is written")
    args = p.parse_args(argv)
    write_text(args.json, json_text(measure()))


if __name__ == "__main__":
    main()
