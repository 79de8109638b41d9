# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · The similarity prior and context prompting
#
# Two of the paper's parts meet in the age head (docs/method.md, sections 2, 4 and 5). The **similarity prior**
# feeds CLIP's global scores $S$ (section 2) into the head's class logits; **context prompting** shifts each age's
# text feature by the image context the FourierFormer gathered for that age (section 4). With $F$ the FourierFormer
# output, $M$ the dense maps and $T$ the text features of the $K$ ages:
#
# $$S_{b,k} = \frac{\exp(\cos(T_k, v_b)/\tau)}{\sum_{j} \exp(\cos(T_j, v_b)/\tau)}, \qquad
#   c_{b,k} = \sum_{n=1}^{N} \mathrm{softmax}_n\!\left(M_{b,k,n}/\tau\right) F_{b,n}, \qquad
#   T'_{b,k} = T_k + \gamma \, \mathrm{Lin}_c(c_{b,k})$$
#
# and the head (section 5) adds the two:
#
# $$l_{b,k} = \alpha\, \tau s \log S_{b,k} + g \cos(f_b, T'_{b,k}) / \tau_h, \qquad p_b = \mathrm{softmax}(l_b),
#   \qquad y_{0,b} = \sum_{k} p_{b,k}\, a_k$$
#
# $s$ is CLIP's own logit scale, so $\mathrm{softmax}(\tau s \log S)$ is exactly zero-shot CLIP's class
# distribution; $\alpha$ starts at 1 and $g$ at 0, so an untrained model *is* zero-shot CLIP, and $\gamma$ starts
# at $10^{-4}$, so the prompts start at CLIP's. This notebook takes a trained model apart along these equations.
# Code: `cilf/model/heads.py`, `cilf/model/fusion.py`, `cilf/model/cilf_model.py`.

# %%
__import__("os").system("pip install -q 'cilf @ git+https://github.com/cilf-project/cilf'") if "google.colab" in __import__("sys").modules else None  # Colab only  # fmt: skip

# %% tags=["parameters"]
FAST = True  # under a minute on a CPU once notebook 00 has trained the demo model; False = the full budget
OUT_DIR = "../figures"  # every figure of this notebook is written here

# %%
import json
from pathlib import Path

import numpy as np

from cilf.model.cilf_model import CILF
from cilf.model.fusion import ContextFusion
from cilf.model.heads import AgeHead
from cilf.notebook import conclude
from cilf.notebook.analysis import prior_and_context, subjects_of
from cilf.notebook.plots import plot_prior_and_context
from cilf.notebook.source import show_source
from cilf.notebook.zoo import held_out_features, quick_model
from cilf.stats import mean_ci, stable_difference

model, report = quick_model(fast=FAST)  # the demo model of notebook 00 (cached)
feats, ages, metas = held_out_features(model, fast=FAST)
y = ages.numpy()
groups = subjects_of(metas, fast=FAST)

# %% [markdown]
# ## The code
# `CILF.similarity_prior` is $\tau s \log S$; in `AgeHead.forward`, `prior_weight` is $\alpha$ and
# `gain_rate * head_gain` is $g$ (stored divided by `CILFConfig.head_gain_rate`, 10, so that Adam moves it ten times faster); in
# `ContextFusion.forward`, `per_class` is $c$ and `text_b` is $T'$.

# %%
show_source(CILF.similarity_prior, AgeHead.forward, ContextFusion.forward)

# %% [markdown]
# ## What training did to the scalars
# $\alpha$ (from 1), $g$ (from 0), $\tau_h$ (from 0.03) and $\gamma$ (from $10^{-4}$), after the demo model's
# training.

# %%
parts = prior_and_context(model, feats)
print(
    f"alpha = {parts['alpha']:.3f}   g = {parts['g']:+.3f}   tau_h = {parts['tau_h']:.4f}   "
    f"gamma = {parts['gamma']:+.4f}"
)
assert np.allclose(parts["prior"] + parts["head"], parts["logits"], atol=1e-3), "l = prior + head term"

# %% [markdown]
# ## Four faces taken apart
# Top: the class distribution of the prior term alone (zero-shot CLIP, re-tempered by $\alpha$), of the head's own
# term alone, and of both
# (the model's $p$). Bottom: how far context prompting moved each age's text feature for that face.

# %%
pick = [int(np.abs(y - a).argmin()) for a in (8, 30, 55, 80)]
fig = plot_prior_and_context(
    {k: v[pick] for k, v in parts.items() if isinstance(v, np.ndarray)},
    y[pick],
    model.cfg.ages,
    path=f"{OUT_DIR}/09_prior_and_context.png",
    title="this run, SynthAge (synthetic) test faces: the age head's two terms and the context shift",
)

# %% [markdown]
# ## Each part switched off at inference
# The same trained model, each part removed in its forward pass (nothing retrained): $p$ from the prior term
# alone ($g = 0$: zero-shot CLIP, re-tempered by the learned $\alpha$), from the head's term alone ($\alpha = 0$),
# and $T'$ replaced by $T$ ($\gamma = 0$).
# Each MAE of $y_0$ is paired with the model's own on the same test images (95% CIs over test subjects). This
# says what each part contributes to *this* model's estimates; whether a model trained without it does better is
# the ablation question, answered by notebook 06 (next section).

# %%
err = {
    "the model (y0)": np.abs(parts["y0"] - y),
    "prior alone": np.abs(parts["y0_prior_only"] - y),
    "head term alone": np.abs(parts["y0_head_only"] - y),
    "without the context shift": np.abs(parts["y0_without_context"] - y),
}
for name, e in err.items():
    m = mean_ci(e, groups=groups)
    print(f"{name:28s} MAE {m.estimate:5.2f} {conclude.ci_text((m.ci_low, m.ci_high))}")
# what each part adds: MAE of the model minus MAE without that part (same images)
inference = {
    name: stable_difference(err["the model (y0)"], err[name], groups=groups)
    for name in ("prior alone", "head term alone", "without the context shift")
}

# %% [markdown]
# ## The ablations: each part trained away
# Notebook 06 trains the model without each part (`similarity_prior=off`, `context=off`) over 3 seeds
# and writes each claim's paired effect to `figures/06_claims.json`; this reads it.

# %%
claims_file = Path(OUT_DIR) / "06_claims.json"
ablation = {r["id"]: r for r in json.loads(claims_file.read_text())} if claims_file.is_file() else {}
for cid in ("similarity", "context"):
    r = ablation.get(cid)
    print(f"{cid}: {r['comparison']}: {r['effect']} -> {r['verdict']}" if r else f"{cid}: no result of notebook 06")

# %% [markdown]
# ## What this shows
# Computed from the numbers above.

# %%
g, gamma = parts["g"], parts["gamma"]
print(
    f"Training set alpha = {parts['alpha']:.2f} (from 1) and g = {g:+.2f} (from 0): the head's own term enters "
    + ("with a negative weight, subtracted from the prior's logits." if g < 0 else "with a positive weight.")
)
shift = parts["context_shift"]
if shift.mean() < 0.05:
    size = "little: the prompted text features stay close to CLIP's"
elif shift.mean() < 1:
    size = "by a sizeable fraction of the text features themselves"
else:
    size = "by more than the text features' own length: T' is dominated by the image context, not by CLIP's text"
print(
    f"Context prompting (gamma = {gamma:+.3f}, from 1e-4) moves each age's text feature by |gamma Lin_c(c_k)| = "
    f"{shift.mean():.2f} |T_k| on average (at most {shift.max():.2f}), {size}."
)
for name, subject in (
    ("prior alone", "At inference, the head's own term added to the prior"),
    ("head term alone", "At inference, the similarity prior added to the head's term"),
    ("without the context shift", "At inference, the context shift gamma Lin_c(c)"),
):
    d = inference[name]
    print(conclude.effect_sentence(subject, d.estimate, (d.ci_low, d.ci_high)))
if g < 0:
    print(
        f"(With g < 0 the head's term alone favours the wrong ages: its MAE is {err['head term alone'].mean():.2f} y, "
        f"so the second line says how the two terms work together; the prior term alone (zero-shot CLIP re-tempered "
        f"by alpha) errs by {err['prior alone'].mean():.2f} y.)"
    )
for cid, subject in (
    ("similarity", "Against a model retrained without it (notebook 06), the similarity prior"),
    ("context", "Against a model retrained without it (notebook 06), context prompting"),
):
    r = ablation.get(cid)
    if r and r.get("estimate") is not None:
        print(conclude.effect_sentence(subject, r["estimate"], (r["ci_low"], r["ci_high"])))
if not ablation:
    print("Notebook 06's claims file is not here, so the retrained ablations cannot be read; run notebook 06 first.")
ctx, d_ctx = ablation.get("context"), inference["without the context shift"]
if ctx and ctx.get("estimate") is not None:
    here = conclude.direction((d_ctx.ci_low, d_ctx.ci_high))
    there = conclude.direction((ctx["ci_low"], ctx["ci_high"]))
    if here == "below" and there != "below":
        print(
            "So this model depends on its context shift (removing it at inference raises the error), yet a model "
            "trained without context prompting does not err more: the shift is the route this model's training "
            "took, not an advantage that the retrained ablation can detect."
        )

# %% [markdown]
# ## Exercises
# 1. Set $\alpha = 0$ by hand (`model.head.prior_weight.data.zero_()`) and compare the result with the row "head
#    term alone" above: they must agree.
# 2. Train without the prior, `quick_model(fast=FAST, similarity_prior=False)`, and compare its test MAE with
#    this model's and with the "head term alone" row: why are they not the same thing?
# 3. `gamma_init=0.1` (`quick_model(fast=FAST, gamma_init=0.1)`): does a larger start make context prompting move
#    the text features, and the MAE?

# %%
# Check (not part of the lesson): key numbers against notebooks/expected/ (docs/notebooks.md, "Key numbers").
from cilf.notebook.key_numbers import report as key_numbers

recorded = key_numbers(
    "09_prior_and_context",
    {
        "alpha": parts["alpha"],
        "g": parts["g"],
        "tau_h": parts["tau_h"],
        "gamma": parts["gamma"],
        "mae_y0": float(err["the model (y0)"].mean()),
        "mae_prior_only": float(err["prior alone"].mean()),
        "mae_head_term_only": float(err["head term alone"].mean()),
        "mae_without_context_shift": float(err["without the context shift"].mean()),
        "context_shift_mean": float(shift.mean()),
    },
    out_dir=OUT_DIR,
    fast=FAST,
)
