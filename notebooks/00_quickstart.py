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
# # 00 · Quickstart: CILF-CIAE in five cells
#
# CILF-CIAE (Shou et al., arXiv 2312.01758) estimates age from a face by fusing CLIP image and
# text features and then *correcting* its own first estimate. This notebook loads the default
# model, trains it briefly on **SynthAge** (procedural faces with known ages, so everything runs
# offline) and predicts ages for a few held-out faces.
#
# Every number here is *this run, SynthAge (synthetic)*: it is not comparable with the paper's
# results on real photographs.

# %%
__import__("os").system("pip install -q 'cilf @ git+https://github.com/cilf-project/cilf'") if "google.colab" in __import__("sys").modules else None  # Colab only  # fmt: skip

# %% tags=["parameters"]
FAST = True  # minutes on a CPU; False = the full budget (./run_all.sh --full)
OUT_DIR = "../figures"  # every figure of this notebook is written here

# %%
from pathlib import Path

import numpy as np

from cilf.app.evaluate import format_report
from cilf.notebook import conclude
from cilf.notebook.analysis import run_on_images, run_predictions, subjects_of
from cilf.notebook.plots import show_faces, synthage_contact_sheet, training_figure
from cilf.notebook.zoo import quick_model, synthage_samples
from cilf.stats import mean_ci, stable_difference

# %% [markdown]
# ## SynthAge
# Faces age through published mechanisms: craniofacial growth (cardioidal strain), skin ageing
# (forehead lines, crow's feet, folds, spots, sagging), greying and hair recession, each subject at
# their own rate. Rows are subjects, columns ages.

# %%
fig = synthage_contact_sheet(f"{OUT_DIR}/00_synthage_contact_sheet.png")

# %% [markdown]
# ## Train (or load) the model
# `quick_model` trains CILF-CIAE on the SynthAge train split at a fixed budget and caches the run,
# so a second call just loads it. The CLIP backbone is the bundled micro-CLIP when it is shipped.

# %%
model, report = quick_model(fast=FAST)
print(model.cfg.clip_model, "| weights:", model.cfg.pretrained or "random init")

# %% [markdown]
# The test report compares the model with its own first estimate, zero-shot CLIP prompts and the
# trivial baseline that always predicts the training mean. (Exact digits vary across CPUs, so this
# cell's output is not compared by the regression tests; the assertion is.)

# %%
# NBVAL_IGNORE_OUTPUT
print(format_report(report))
assert report["model"]["mae"] < 0.8 * report["baseline_train_mean"]["mae"]

# %% [markdown]
# ## How training went
# Left: the validation MAE per epoch (of x* and of y0) against the oracle floor (dashed: age read from SynthAge's
# own latent variables, the lowest error an image model can be expected to reach); the train-mean baseline is far
# above the axis and named in the legend. Middle: the cumulative score CS(θ), the share of test faces within θ
# years. Right: predicted against true age on the test split.

# %%
run_dir = Path(report["checkpoint"]).parent
fig = training_figure(run_dir, f"{OUT_DIR}/00_training.png")

# %% [markdown]
# ## Predict
# Eight held-out test faces spread over the age range, with true and predicted ages.

# %%
images, ages, metas = synthage_samples(8, fast=FAST)
out = run_on_images(model, images)
titles = [f"true {a:.0f} | pred {p:.0f}" for a, p in zip(ages, out.age.tolist())]
fig = show_faces(
    images, titles, path=f"{OUT_DIR}/00_predictions.png", suptitle="this run, SynthAge (synthetic) held-out subjects"
)

# %% [markdown]
# From the command line the same model predicts any image file:
# `python -m cilf predict face.jpg --checkpoint <run>/best`.

# %% [markdown]
# ## What this shows
# Computed from the test report and the run's per-image test predictions (`test_predictions.csv`), with 95% CIs
# over test subjects (one trained model: the training noise is not in them).

# %%
pred = run_predictions(run_dir)
y = pred["true_age"]
groups = subjects_of([{"path": p} for p in pred["path"]], fast=FAST)
m = mean_ci(np.abs(pred["age"] - y), groups=groups)
print(
    f"After a FAST budget ({report['train_config']['epochs']} epochs on {report['train_config']['n_images']} "
    f"SynthAge images, frozen {model.cfg.clip_model}), CILF-CIAE errs by {m.estimate:.2f} y "
    f"{conclude.ci_text((m.ci_low, m.ci_high))} on {len(y)} held-out faces of unseen subjects."
)
base = report["baseline_train_mean"]["mae"]
print(f"That is {base - m.estimate:.2f} y below always answering the training mean age ({base:.2f} y).")
d = stable_difference(np.abs(pred["age"] - y), np.abs(pred["zero_shot"] - y), groups=groups)
print(conclude.comparison_sentence("The trained model", "CLIP's prompts alone", d.estimate, (d.ci_low, d.ci_high)))
d = stable_difference(np.abs(pred["age"] - y), np.abs(pred["y0"] - y), groups=groups)
print(conclude.effect_sentence("Its correction stage (x* in place of y0)", d.estimate, (d.ci_low, d.ci_high)))

# %% [markdown]
# ## Exercises
# 1. `quick_model(fast=FAST, similarity_prior=False)` trains the same model without the similarity prior (a
#    second cached run): is its test MAE above or below this one? Notebook 06 asks the same with CIs.
# 2. Predict a face of your own with `python -m cilf predict face.jpg --checkpoint <run>/best` (the run folder is
#    `run_dir`); notebook 07 shows every step for a real photo.
# 3. `FAST = False` trains on 10,000 images for 30 epochs (far slower than FAST): how much lower is the test MAE,
#    and how much closer to the oracle floor?

# %%
# Check (not part of the lesson): key numbers against notebooks/expected/ (docs/notebooks.md, "Key numbers").
from cilf.notebook.key_numbers import report as key_numbers

recorded = key_numbers(
    "00_quickstart",
    {
        "n_test": report["n"],
        "mae_xstar": report["model"]["mae"],
        "mae_y0": report["first_estimate_y0"]["mae"],
        "mae_zero_shot": report["zero_shot_clip"]["mae"],
        "mae_baseline_train_mean": report["baseline_train_mean"]["mae"],
        "mae_8_samples": float(np.abs(out.age.numpy() - np.array(ages)).mean()),
    },
    out_dir=OUT_DIR,
    fast=FAST,
)
