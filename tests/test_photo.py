"""One photo step by step (notebook 07): the real detector on a real portrait, two faces, no face; the
maps, estimates and trajectories agree with ``cilf.predict``; real CLIP weights looked up on disk only."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from cilf.app.predict import predict
from cilf.data import load_image
from cilf.data.samples import sample_photo
from cilf.notebook import plots
from cilf.notebook.photo import HF_WEIGHT_FILES, analyse_photo, local_clip_weights

DLIB_BOX = (180, 139, 367, 326)  # dlib's face box on grace_hopper.jpg, as in tests/test_predict.py


@pytest.fixture(scope="module")
def grace():
    return load_image(sample_photo())


def test_the_sample_photo_is_a_real_photograph_on_disk():
    assert sample_photo().is_file() and load_image(sample_photo()).size == (512, 600)


def test_a_portrait_gives_every_step_consistent_with_predict(grace, model):
    s = analyse_photo(sample_photo(), model)
    cfg = model.cfg
    assert s.faces == 1 and len(s.rows) == 1 and s.rows[0].box == DLIB_BOX and s.rows[0].score > 0
    assert s.rows[0].file == "grace_hopper.jpg"
    assert s.crops[0].size == (224, 224)
    assert s.maps.shape == (1, len(cfg.ages), *model.clip.grid) and np.abs(s.maps).max() <= 1 + 1e-5
    # the trajectory starts at y0 and ends at x* (x* clamped to the age range), at most T_max steps
    t = s.trajectories[0]
    assert t[0] == pytest.approx(s.y0[0]) and np.clip(t[-1], cfg.age_min, cfg.age_max) == pytest.approx(s.x[0])
    assert 1 <= len(t) <= cfg.max_steps + 1 and len(t) - 1 == s.rows[0].steps
    # predict's own row holds the same estimates as the step-by-step path
    assert s.rows[0].age == pytest.approx(float(s.x[0]), abs=1e-4)
    assert s.rows[0].y0 == pytest.approx(float(s.y0[0]), abs=1e-4)
    # E_P's curve: each step moves by -eta * e(x_t)
    assert s.errors.shape == (1, len(s.candidates))
    assert len(t) > 1  # the fixture's random-init E_P rejects y0, so the correction runs
    with torch.inference_mode():
        e0 = float(model.corrector.error_fn(*_fused_y0(model, s.crops))(torch.tensor([t[0]]))[0][0])
    assert t[1] == pytest.approx(t[0] - cfg.eta * e0, abs=1e-3)


def _fused_y0(model, crops):
    with torch.inference_mode():
        out = model(torch.stack([model.preprocess(c) for c in crops]), correct=False)
    return out.fused, out.y0


def test_two_faces_give_two_of_everything_left_to_right(grace, model):
    two = Image.new("RGB", (2 * grace.width, grace.height))
    two.paste(grace, (0, 0))
    two.paste(ImageOps.mirror(grace), (grace.width, 0))
    s = analyse_photo(two, model)
    assert s.faces == 2 and len(s.rows) == 2 and s.maps.shape[0] == 2 and len(s.trajectories) == 2
    assert s.rows[0].box[2] <= s.rows[1].box[0]  # disjoint, left first
    assert [r.file for r in s.rows] == ["<image>", "<image>"]


def test_a_photo_without_a_face_stops_at_detection(model):
    blank = Image.new("RGB", (400, 300), (120, 160, 200))
    s = analyse_photo(blank, model)
    assert s.faces == 0 and s.crops == [] and s.trajectories == []
    assert [(r.status, r.reason) for r in s.rows] == [("no_face", "no face found")]
    assert s.maps.shape == (0, len(model.cfg.ages), *model.clip.grid) and s.y0 is None


def test_zero_shot_gives_the_prompts_age_and_no_correction(grace, model):
    s = analyse_photo(grace, model, zero_shot=True)
    assert s.y0 is None and s.trajectories == [] and s.errors is None
    assert s.rows[0].mode == "zero-shot"
    assert s.rows[0].age == pytest.approx(float(s.zero_shot[0]), abs=1e-4)
    assert predict([grace], model, zero_shot=True)[0].age == pytest.approx(s.rows[0].age)


def test_real_clip_weights_are_found_in_a_local_hub_cache_and_never_fetched(tmp_path):
    assert local_clip_weights(cache_dir=tmp_path) is None  # empty cache, HF_HUB_OFFLINE: no request
    repo = tmp_path / "models--timm--vit_base_patch16_clip_224.openai"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / HF_WEIGHT_FILES[1]).write_bytes(b"weights")
    assert local_clip_weights(cache_dir=tmp_path) == str(snap / HF_WEIGHT_FILES[1])
    assert local_clip_weights("ViT-B-32", "openai", cache_dir=tmp_path) is None  # another model's repo


def test_photo_figures_draw_with_no_one_and_two_faces(grace, model, tmp_path):
    for n, photo in ((0, Image.new("RGB", (300, 300))), (1, grace)):
        s = analyse_photo(photo, model)
        assert s.faces == n
        boxes, labels = (
            [r.box for r in s.rows if r.status == "ok"],
            [f"{r.age:.0f}" for r in s.rows if r.status == "ok"],
        )
        assert plots.plot_detections(s.image, boxes, labels, s.crops, path=tmp_path / f"det{n}.png")
        assert (tmp_path / f"det{n}.png").stat().st_size > 1000
    plots.plot_photo_estimates(
        s.trajectories, s.zero_shot, s.candidates, s.errors, model.cfg.eps, path=tmp_path / "est.png"
    )
    plots.plot_photo_estimates([], s.zero_shot, path=tmp_path / "est_zs.png")
    assert (tmp_path / "est.png").stat().st_size > 1000 and (tmp_path / "est_zs.png").stat().st_size > 1000
    plots.pyplot().close("all")
