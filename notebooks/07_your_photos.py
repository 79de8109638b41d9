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
# # 07 · Your photos, step by step
#
# A real photograph goes through the whole pipeline, each step drawn: **detect** every face (dlib HOG,
# OpenCV cascades where dlib finds none) -> **align** it (5 landmarks, similarity transform) ->
# **dense pixel-text maps** M = cos(P, T) per patch -> **estimate** y0 -> **correction** by E_P
# (x <- x - eta e(x)). The faces and ages are exactly those of `cilf.predict` (and `python -m cilf
# predict photo.jpg`); code: `cilf/notebook/photo.py`.
#
# **Read this first.** Offline, the only CLIP here is the bundled micro-CLIP, and the demo model
# built on it was trained on SynthAge, *synthetic* faces only. Its ages for a real photo are **not
# meaningful**: the figures show what each step does, not how old anyone is. Real-photo ages need
# real CLIP weights (`clip_model="ViT-B-16", pretrained="openai"`). This notebook uses them when they
# are already in the local open_clip / Hugging Face cache (it only looks on disk; nothing is
# downloaded), zero-shot from the age prompts, and otherwise says so and falls back to the bundled model.
#
# Your own photo: set `PHOTO` below (or `papermill -p PHOTO /path/to/photo.jpg`). A photo with
# several faces gives one row per face; a photo with no face stops after detection with "no face found".

# %%
__import__("os").system("pip install -q 'cilf @ git+https://github.com/cilf-project/cilf'") if "google.colab" in __import__("sys").modules else None  # Colab only  # fmt: skip

# %% tags=["parameters"]
FAST = True  # minutes on a CPU; False = the full budget (./run_all.sh --full)
OUT_DIR = "../figures"  # every figure of this notebook is written here
PHOTO = None  # your photo's path; None = matplotlib's sample portrait (grace_hopper.jpg)

# %%
from cilf.app.predict import format_rows
from cilf.data.samples import sample_photo
from cilf.notebook.photo import analyse_photo, photo_model
from cilf.notebook.plots import plot_dense_maps, plot_detections, plot_photo_estimates

photo = PHOTO or sample_photo()
pm = photo_model(fast=FAST)
print(pm.note)
steps = analyse_photo(photo, pm.model, zero_shot=pm.zero_shot)

# %% [markdown]
# ## 1 · Detect and align
# Each box is in the photo's pixels, labelled with the detector and its score (dlib: the HOG SVM
# margin). The aligned crop puts the eyes and nose where the template has them: this is what the
# model sees.

# %%
found = [r for r in steps.rows if r.status == "ok"]
labels = [f"face {r.face}: {r.detector}" + ("" if r.score is None else f" {r.score:.2f}") for r in found]
fig = plot_detections(
    steps.image,
    [r.box for r in found],
    labels,
    steps.crops,
    path=f"{OUT_DIR}/07_detect_align.png",
    title=f"{steps.rows[0].file}: detect -> align",
)
print(f"{steps.rows[0].file}: {steps.image.width} x {steps.image.height} px, {steps.faces} face(s)")
if not steps.faces:
    print("no face found: nothing to estimate (the next cells skip). Try a frontal face at least ~80 px wide.")

# %% [markdown]
# ## 2 · Dense pixel-text maps
# Per patch of each aligned face: which prompt age does it match better than the average prompt?
# Red = more similar (as in notebook 01); each map on its own colour scale.

# %%
if steps.faces:
    fig = plot_dense_maps(
        steps.crops,
        steps.maps,
        steps.class_ages,
        prompt_ages=(5, 40, 80),
        path=f"{OUT_DIR}/07_dense_maps.png",
        title=f"M = cos(P, T) minus its mean over prompts, {pm.label}",
    )

# %% [markdown]
# ## 3 · Estimate and correct
# `cilf.predict`'s rows for this photo: box, detector score, age, y0 and correction steps. Left
# figure: each face's trajectory from y0 to x\* (a single point when E_P accepts y0 at once) and the
# zero-shot age from the prompts alone. Right: E_P's predicted error e(x) of every candidate age x;
# the correction walks down it to the grey band |e| <= eps.

# %%
# NBVAL_IGNORE_OUTPUT
print(format_rows(steps.rows))

# %%
if steps.faces:
    fig = plot_photo_estimates(
        steps.trajectories,
        steps.zero_shot,
        steps.candidates,
        steps.errors,
        eps=pm.model.cfg.eps,
        path=f"{OUT_DIR}/07_estimates.png",
        title=f"{steps.rows[0].file}, this run, {pm.label}",
    )
assert len(steps.rows) == max(steps.faces, 1) and steps.maps.shape[0] == steps.faces

# %% [markdown]
# ## What this shows
# Computed from this photo's rows and from which model ran.

# %%
print(f"{steps.faces} face(s) found in {steps.rows[0].file}.")
for r in (r for r in steps.rows if r.status == "ok"):
    zs = steps.zero_shot[r.face]
    if r.y0 is None:  # a zero-shot model: no y0, no correction
        print(f"Face {r.face} ({r.detector}): {zs:.1f} from the prompts alone.")
        continue
    if r.accepted:
        judged = "E_P accepted it, so x* = y0"
    elif r.steps:
        judged = f"E_P rejected it and {r.steps} correction step(s) moved it to x* = {r.age:.1f}"
    else:
        judged = "E_P rejected it, but the correction is switched off for this model (x* = y0)"
    print(f"Face {r.face} ({r.detector}): y0 = {r.y0:.1f}; {judged}; the prompts alone say {zs:.1f}.")
print(
    f"Model: {pm.label}. "
    + (
        "It was trained on synthetic faces only, so these ages say where a SynthAge-trained model puts a real "
        "face, not how old the person is; the figures show what each step does."
        if not pm.zero_shot
        else "These are zero-shot CLIP ages from the prompts alone (no age training), real-face weights."
    )
)

# %% [markdown]
# To get real-photo ages, fetch the real CLIP weights once while online
# (`open_clip.create_model_and_transforms("ViT-B-16", pretrained="openai")` stores them in the Hugging Face cache)
# and re-run: the notebook then finds them on disk and uses them.
#
# ## Exercises
# 1. Your own photo: `PHOTO = "/path/to/photo.jpg"` (or `papermill -p PHOTO ...`). A group photo gives one row per
#    face; how large must a face be for dlib to find it?
# 2. Mirror the photo (`PIL.ImageOps.mirror`) and run `analyse_photo` on it: how much do y0 and the dense maps
#    move for the same face?
# 3. Read E_P's curve e(x) in the right panel: where does it cross 0, and is that where the trajectory ends?

# %%
# Check (not part of the lesson): key numbers against notebooks/expected/ (docs/notebooks.md, "Key numbers"),
# for the bundled sample photo only (a photo of your own has no recorded values).
from cilf.notebook.key_numbers import report as key_numbers

if PHOTO is None:
    face = steps.rows[0]
    numbers = {
        "faces": steps.faces,
        "model": pm.label,
        "detector": face.detector or "none",
        "age": face.age,
        "y0": face.y0,
        "steps": face.steps,
        "zero_shot": float(steps.zero_shot[0]) if steps.faces else None,
    }
    recorded = key_numbers(
        "07_your_photos", {k: v for k, v in numbers.items() if v is not None}, out_dir=OUT_DIR, fast=FAST
    )
