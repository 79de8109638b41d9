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
# # 04 · Correcting inverse age estimation
#
# The first estimate y0 is assessed by E_P: an ensemble of M small MLPs predicts the signed error
# e(x) of a candidate age x from the fused features. If |e(y0)| <= eps, y0 is accepted; otherwise
#
# $$x_{t+1} = x_t - \eta\, e(x_t)$$
#
# runs until |e(x_t)| <= eps or T_max steps. The spread of the ensemble is a per-image
# uncertainty. Code: `cilf/correction.py`.

# %%
# Colab guard: installs cilf only inside Google Colab; does nothing anywhere else.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "cilf @ git+https://github.com/cilf-project/cilf"],
                   check=True)

# %% tags=["parameters"]
FAST = True  # minutes on a CPU; False = the full budget (./run_all.sh --full)
OUT_DIR = "../figures"  # every figure of this notebook is written here

# %%
import numpy as np
from scipy.stats import spearmanr

from cilf.notebook.analysis import correction_outputs
from cilf.notebook.plots import plot_correction
from cilf.notebook.zoo import held_out_features, quick_model

model, report = quick_model(fast=FAST)
feats, ages, _ = held_out_features(model, fast=FAST)
y = ages.numpy()
corr = correction_outputs(model, feats)
print("eps =", model.cfg.eps, "| eta =", model.cfg.eta, "| T_max =", model.cfg.max_steps,
      "| M =", model.cfg.ensemble_size)

# %% [markdown]
# ## Trajectories, MAE before and after, uncertainty

# %%
fig = plot_correction(corr, y, path=f"{OUT_DIR}/04_correction.png",
                      title="correction on the SynthAge (synthetic) test split, this run")

# %% [markdown]
# ## Numbers

# %%
# NBVAL_IGNORE_OUTPUT
mask = ~corr["accepted"].astype(bool)
print(f"accepted by E_P: {100 * (1 - mask.mean()):.1f}%   mean steps: {corr['steps'].mean():.2f}")
print(f"MAE all images: y0 {np.abs(corr['y0'] - y).mean():.2f} -> x* {np.abs(corr['x'] - y).mean():.2f}")
if mask.any():
    print(f"MAE corrected images: y0 {np.abs(corr['y0'] - y)[mask].mean():.2f} -> x* {np.abs(corr['x'] - y)[mask].mean():.2f}")
rho = spearmanr(corr["spread"], np.abs(corr["x"] - y)).statistic
print(f"Spearman(spread, |error|) = {rho:.2f}")
assert corr["steps"].max() <= model.cfg.max_steps and np.isfinite(corr["x"]).all()
