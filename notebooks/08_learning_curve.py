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
# # 08 · The low-data learning curve
#
# The paper's argument is that CLIP's language prior matters most when labelled data are scarce. Here every
# method is trained on **nested subsets of the training subjects** (the 3 are inside the 10, which are inside
# the 30, ...; each seed draws its own nested subsets) and scored on **the same full test split**, so every
# point of every curve is paired with every other. Small subsets get a fair amount of optimisation:
# `epochs = max(epochs, ceil(min_steps x batch / training images))`.
#
# Zero-shot CLIP trains nothing, so it is one level (dotted). The oracle floor (age from SynthAge's latent
# ageing variables) is trained once, on all training subjects, and drawn as a level (dashed). The train-mean
# baseline is the mean age of each subset. Each MAE has a 95% CI over seeds x test images, and the paired
# difference full - zero-shot per subject count says where training overtakes the language prior.
#
# Offline this runs on SynthAge (synthetic); the same curve on a real dataset:
# `python -m cilf curve --dataset NAME --subjects 10 30 100 300 1000 all --seeds 3`.

# %%
# Colab guard: installs cilf only inside Google Colab; does nothing anywhere else.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "cilf @ git+https://github.com/cilf-project/cilf"], check=True
    )

# %% tags=["parameters"]
FAST = True  # about a minute and a half on a 2-core CPU; False = the full curve (hours on a CPU, use a GPU)
OUT_DIR = "../figures"  # every figure of this notebook is written here

# %%
from cilf.bench.curve import CurveConfig, format_curve, run_learning_curve
from cilf.bench.runner import VARIANTS
from cilf.notebook.curve_plots import plot_learning_curve
from cilf.utils import cache_dir

METHODS = [
    "full",
    "similarity_prior=off",
    "correction=off",
    "context=off",
    "dex",
    "mean_variance",
    "zero_shot",
    "oracle",
    "train_mean",
]
if FAST:  # the cross-fitted correction trains the model 1 + K times: FAST keeps K = 2 and one correction variant
    METHODS.remove("context=off")
    SETTINGS = dict(
        n_images=1200,
        subjects=(3, 10, 30, 100, None),
        seeds=2,
        epochs=2,
        batch_size=32,
        min_steps=10,
        crossfit_folds=2,
    )
else:
    SETTINGS = dict(
        n_images=10000, subjects=(10, 30, 100, 300, 1000, None), seeds=3, epochs=15, batch_size=64, min_steps=200
    )
METHODS = [m for m in METHODS if m in VARIANTS or "=" not in m]  # variants this version of cilf has
result = run_learning_curve(
    CurveConfig(methods=tuple(METHODS), out=str(cache_dir() / "bench"), progress=False, **SETTINGS)
)

# %%
# NBVAL_IGNORE_OUTPUT
print(format_curve(result))

# %%
fig = plot_learning_curve(result, path=f"{OUT_DIR}/08_learning_curve.png")

# %% [markdown]
# ## What the curve shows, and what it does not
#
# * Where the full model's band drops below the zero-shot level is where training on that many subjects beats
#   CLIP's prompts alone; the paired differences above say it with a CI (the table's last rows).
# * Read the full model against "no correction": where the full model sits above it at the left end, the
#   cross-fitted error correction (fitted on a handful of subjects) costs more than it corrects.
# * The gap between the full model and the peers at the left end is the value of the language prior when
#   labels are scarce; at the right end it is what the architecture adds once data are plentiful.
# * It is SynthAge (synthetic): whether real faces show the same crossover is not measured here. FAST also
#   trains for very few steps (and cross-fits the correction on 2 folds, not 5), so its curves sit above
#   the ones a full budget gives; read the shape, not the numbers. The seeds redraw the subjects, so the CIs
#   include which subjects were drawn, not only the training noise.

# %%
methods = result["methods"]
small, large = min(result["subject_counts"]), max(result["subject_counts"])


def mae_at(name, n):
    points = methods[name]["points"]
    p = points.get(str(n)) or next(iter(points.values()))  # levels have one point
    return round(p["mae"], 3)


from cilf.notebook.key_numbers import report as key_numbers

numbers = {f"mae {m} at {small} subjects": mae_at(m, small) for m in methods if methods[m]["points"]}
numbers.update({f"mae {m} at {large} subjects": mae_at(m, large) for m in methods if methods[m]["points"]})
numbers["full beats zero-shot from (subjects)"] = str(result["full_beats_zero_shot_from"])
assert all(v > 0 for v in numbers.values() if isinstance(v, float))
recorded = key_numbers("08_learning_curve", numbers, out_dir=OUT_DIR, fast=FAST)  # this run, SynthAge (synthetic)
