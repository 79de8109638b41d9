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
# # 01 · CLIP pixel-text similarity
#
# CLIP maps images and texts into one space. With one text feature $T_i$ per age class $a_i$ ("C-type" text
# features) the paper scores an image against every age. This notebook implements docs/method.md, section 2:
# the global scores of the pooled image embedding $v_b$ and, for every patch token $P_{b,(h,w)}$ (projected into
# the joint space through the image tower's final norm and projection), the dense score maps
#
# $$S_{b,i} = \frac{\exp(\cos(T_i, v_b)/\tau)}{\sum_{j=1}^{K} \exp(\cos(T_j, v_b)/\tau)}, \qquad
#   M_{b,k,h,w} = \cos(P_{b,(h,w)}, T_k)$$
#
# $S$ is $B \times K$ (each row sums to 1), $M$ is $B \times K \times H \times W$. Code: `cilf/model/similarity.py`.

# %%
__import__("os").system("pip install -q 'cilf @ git+https://github.com/cilf-project/cilf'") if "google.colab" in __import__("sys").modules else None  # Colab only  # fmt: skip

# %% tags=["parameters"]
FAST = True  # minutes on a CPU; False = the full budget (./run_all.sh --full)
OUT_DIR = "../figures"  # every figure of this notebook is written here

# %%
from pathlib import Path

import numpy as np

from cilf.model.similarity import cosine, dense_score_maps, global_scores
from cilf.notebook import conclude
from cilf.notebook.analysis import run_on_images, run_predictions, subjects_of
from cilf.notebook.plots import plot_dense_maps, plot_global_scores, plot_text_similarity
from cilf.notebook.source import show_source
from cilf.notebook.zoo import quick_model, synthage_samples
from cilf.stats import mean_ci, stable_difference

model, report = quick_model(fast=FAST)
ages_k = model.cfg.ages

# %% [markdown]
# ## The code
# These lines are the equations above; every forward pass of the model calls them (`CILF.forward` in
# `cilf/model/cilf_model.py`), and the model keeps both $S$ (`CILFOutput.scores`) and $M$ (`CILFOutput.maps`).

# %%
show_source(cosine, global_scores, dense_score_maps)

# %% [markdown]
# ## Prompts and text features
# Each age class gets several prompt templates; each prompt's feature is normalised, the features are averaged
# over templates and normalised again (docs/method.md, section 1).

# %%
for p in model.clip.class_prompts()[30]:
    print(p)
text = model.clip.class_text_features().detach().numpy()
print("T:", text.shape, "(K age classes x D joint dimensions)")

# %% [markdown]
# Neighbouring ages should have similar text features: a bright diagonal band.

# %%
fig = plot_text_similarity(
    text,
    ages_k,
    path=f"{OUT_DIR}/01_text_similarity.png",
    title=f"text features per age ({model.cfg.clip_model}, {model.cfg.pretrained or 'random init'})",
)

# %% [markdown]
# ## Global scores S across ages
# One panel per face: where does its score mass sit (blue), against its true age (dotted) and the expected age
# $\sum_i S_i a_i$ under $S$ (red)?

# %%
images, ages, _ = synthage_samples(6, fast=FAST)
out = run_on_images(model, images)
fig = plot_global_scores(
    out.scores.numpy(),
    ages,
    ages_k,
    path=f"{OUT_DIR}/01_global_scores.png",
    title="S = softmax(cos(v, T)/tau), this run, SynthAge (synthetic)",
)
expected = (out.scores.numpy() * np.array(ages_k)).sum(1)

# %% [markdown]
# ## Dense pixel-text maps
# Per patch: which prompt age does it match better than the average prompt? Red = more similar. Each map has its
# own colour scale (the contrast within a map is what it shows; its colour bar gives the level).

# %%
fig = plot_dense_maps(
    images[:4],
    out.maps.numpy()[:4],
    ages_k,
    prompt_ages=(5, 40, 80),
    true_ages=ages[:4],
    path=f"{OUT_DIR}/01_dense_maps.png",
    title="M = cos(P, T) minus its mean over prompts, this run, SynthAge (synthetic)",
)
assert out.maps.shape[1:] == (len(ages_k), *model.clip.grid)

# %% [markdown]
# ## What this shows
# Every sentence below is computed from this notebook's numbers: the 6 faces above, and the same model's
# predictions for its whole test split (`test_predictions.csv` of the demo run), with 95% CIs over test subjects.

# %%
text_sim = text @ text.T
near, far = float(np.diag(text_sim, 1).mean()), float(np.diag(text_sim, 40).mean())
print(
    f"The text features order the ages: prompts one year apart have cosine {near:.2f} on average, prompts 40 years "
    f"apart {far:.2f}."
)
pred = run_predictions(Path(report["checkpoint"]).parent)
groups = subjects_of([{"path": p} for p in pred["path"]], fast=FAST)
y = pred["true_age"]
zs = mean_ci(np.abs(pred["zero_shot"] - y), groups=groups)
print(
    f"Read as an estimate (the expectation of the ages under CLIP's own softmax), the prompts alone give a test MAE "
    f"of {zs.estimate:.2f} y {conclude.ci_text((zs.ci_low, zs.ci_high))} on {len(y)} test images; on the 6 faces "
    f"above, {np.abs(expected - np.array(ages)).mean():.2f} y."
)
d = stable_difference(np.abs(pred["age"] - y), np.abs(pred["zero_shot"] - y), groups=groups)
print(conclude.comparison_sentence("The trained model", "the prompts alone", d.estimate, (d.ci_low, d.ci_high)))
rel = out.maps.numpy()[:4] - out.maps.numpy()[:4].mean(axis=1, keepdims=True)
prompts = np.array([5, 40, 80])
best = [int(prompts[np.argmax([rel[i, ages_k.index(a)].mean() for a in prompts])]) for i in range(4)]
closest = [int(prompts[np.abs(prompts - a).argmin()]) for a in ages[:4]]
hits = sum(b == c for b, c in zip(best, closest))
print(
    f"In the dense maps, the prompt age (of 5, 40, 80) closest to the true age has the highest mean map for {hits} "
    f"of 4 faces (highest: {best}; closest: {closest})."
)
if model.cfg.pretrained == "bundled":
    print(
        f"Caution: the exact-caption {model.cfg.clip_model} was pretrained on SynthAge captions that include the "
        f"prompt {model.cfg.templates[0]!r} (docs/method.md, section 11), so 'zero-shot' here means a CLIP trained "
        f"for this very prompt on other subjects, not zero-shot CLIP on unseen data."
    )
elif model.cfg.pretrained == "bundled-web":
    print(
        f"The web-caption {model.cfg.clip_model} never saw the prompts' wording; it learned age from coarse words "
        f"and visible cues on SynthAge faces of other subjects (docs/micro-clip.md), as a web CLIP learns from "
        f"alt-texts. It knows SynthAge, not real faces."
    )

# %% [markdown]
# ## Exercises
# 1. `global_scores(v, T, tau)` with `tau = 0.01` and `tau = 1.0` (use `out`'s inputs: `model.encode_image`, then
#    `model.clip.class_text_features()`): how do the panels of $S$ change, and does the expected age move?
# 2. Draw the dense maps for `prompt_ages=(20, 60)`: do the patches that prefer "60-year-old" sit where SynthAge
#    draws wrinkles and grey hair?
# 3. Change the first template in `model.cfg.templates` (e.g. `quick_model(fast=FAST, templates=("a face aged
#    {age}.",))`, which retrains the demo model): does the zero-shot MAE above rise, as the caution predicts?

# %%
# Check (not part of the lesson): key numbers against notebooks/expected/ (docs/notebooks.md, "Key numbers").
from cilf.notebook.key_numbers import report as key_numbers

recorded = key_numbers(
    "01_clip_similarity",
    {
        "text_classes": text.shape[0],
        "text_dim": text.shape[1],
        "text_cos_neighbouring_ages": float(np.diag(text_sim, 1).mean()),
        "text_cos_ages_40_apart": float(np.diag(text_sim, 40).mean()),
        "zero_shot_mae_6_samples": float(np.abs(expected - np.array(ages)).mean()),
        "dense_map_grid": "x".join(map(str, out.maps.shape[1:])),
    },
    out_dir=OUT_DIR,
    fast=FAST,
)
