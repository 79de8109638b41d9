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
# CLIP maps images and texts into one space. With one text feature per age class ("C-type" text
# features) the paper scores an image against every age:
#
# $$S_i = \frac{\exp(\mathrm{sim}(T_i, I)/\tau)}{\sum_j \exp(\mathrm{sim}(T_j, I)/\tau)}$$
#
# In code (`cilf/model/similarity.py`): `S = softmax(cos(v, T) / tau)` for the pooled image embedding v,
# and the *dense* version `M = cos(P, T)` for every patch token P (projected into the joint space
# through the image tower's final norm and projection), a K x H x W stack of score maps.

# %%
# Colab guard: installs cilf only inside Google Colab; does nothing anywhere else.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "cilf @ git+https://github.com/cilf-project/cilf"], check=True
    )

# %% tags=["parameters"]
FAST = True  # minutes on a CPU; False = the full budget (./run_all.sh --full)
OUT_DIR = "../figures"  # every figure of this notebook is written here

# %%
import numpy as np

from cilf.notebook.analysis import run_on_images
from cilf.notebook.key_numbers import report as key_numbers
from cilf.notebook.plots import plot_dense_maps, plot_global_scores, plot_text_similarity
from cilf.notebook.zoo import quick_model, synthage_samples

model, report = quick_model(fast=FAST)
ages_k = model.cfg.ages

# %% [markdown]
# ## Prompts and text features
# Each age class gets several prompt templates; their normalised text features are averaged.

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
# Each line is one face: where does its score mass sit, relative to its true age (dotted)?

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
# NBVAL_IGNORE_OUTPUT
print("zero-shot expected ages:", np.round(expected, 1), " true:", np.array(ages))

# %% [markdown]
# ## Dense pixel-text maps
# Per patch: which prompt age does it match better than the average prompt? Red = more similar.

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
# ## Key numbers
# Written to `figures/01_clip_similarity.json` and, in FAST mode, compared with the values recorded in
# `notebooks/expected/` (tolerances there): a change that moves one beyond its tolerance fails here, naming it.

# %%
text_sim = text @ text.T
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
