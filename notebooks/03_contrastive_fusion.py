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
# # 03 · Contrastive multimodal fusion
#
# The fused image embedding f_b and the context-prompted text of its own age T'_{b, y_b} are
# pulled together by a symmetric InfoNCE loss over the batch (ages within +-2 years count as
# positives). Here the same model is trained twice, with and without that loss, and the geometry
# of the fused embeddings is compared. Code: `cilf/model/losses.py`, `cilf/model/fusion.py`.

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

from cilf.notebook.analysis import age_separation, paired_embeddings
from cilf.notebook.key_numbers import report as key_numbers
from cilf.notebook.plots import plot_embedding_pca, plot_similarity_matrices
from cilf.notebook.zoo import held_out_features, quick_model

with_con, rep_con = quick_model(fast=FAST)
without, rep_without = quick_model(fast=FAST, contrastive=False)
feats, ages, _ = held_out_features(with_con, fast=FAST)  # both share the same frozen CLIP features
y = ages.numpy()
f_con, t_con = paired_embeddings(with_con, feats, ages)
f_no, t_no = paired_embeddings(without, feats, ages)

# %% [markdown]
# ## Embedding geometry (PCA, coloured by true age)

# %%
fig = plot_embedding_pca(
    {"with contrastive loss": f_con, "without": f_no},
    y,
    path=f"{OUT_DIR}/03_embedding_pca.png",
    title="fused image embeddings f, this run, SynthAge (synthetic) test split",
)

# %% [markdown]
# ## Image-text similarity matrices
# cos(f_i, T'_{y_j}) with images and texts sorted by age: a sharp diagonal band means each image
# is closest to the text of its own age.

# %%
fig = plot_similarity_matrices(
    {"with contrastive loss": (f_con, t_con), "without": (f_no, t_no)},
    y,
    path=f"{OUT_DIR}/03_similarity_matrices.png",
    title="this run, SynthAge (synthetic) test split",
)

# %% [markdown]
# ## Numbers
# Mean age gap to the 10 nearest neighbours in embedding space (lower = embeddings ordered by age)
# and test MAE of both models.

# %%
# NBVAL_IGNORE_OUTPUT
for name, f, rep in (("with contrastive", f_con, rep_con), ("without", f_no, rep_without)):
    print(f"{name:18s} kNN age gap {age_separation(f, y):5.2f} y   test MAE {rep['model']['mae']:5.2f}")
assert np.isfinite(f_con).all() and np.isfinite(f_no).all()

# %% [markdown]
# ## Key numbers
# Written to `figures/03_contrastive_fusion.json` and, in FAST mode, compared with the values recorded in
# `notebooks/expected/` (tolerances there): a change that moves one beyond its tolerance fails here, naming it.


# %%
def diagonal_gap(f, t):
    """mean cos(f_i, T'_{y_i}) minus the mean cos(f_i, T'_{y_j}) over all pairs: how much closer each image is to its own age's text"""
    fn, tn = f / np.linalg.norm(f, axis=1, keepdims=True), t / np.linalg.norm(t, axis=1, keepdims=True)
    sim = fn @ tn.T
    return float(np.diag(sim).mean() - sim.mean())


recorded = key_numbers(
    "03_contrastive_fusion",
    {
        "knn_age_gap_with_contrastive": age_separation(f_con, y),
        "knn_age_gap_without": age_separation(f_no, y),
        "own_age_text_cos_gap_with_contrastive": diagonal_gap(f_con, t_con),
        "own_age_text_cos_gap_without": diagonal_gap(f_no, t_no),
        "mae_with_contrastive": rep_con["model"]["mae"],
        "mae_without": rep_without["model"]["mae"],
        "mae_with_minus_without_contrastive": rep_con["model"]["mae"] - rep_without["model"]["mae"],
    },
    out_dir=OUT_DIR,
    fast=FAST,
)
