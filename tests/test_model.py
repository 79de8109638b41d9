"""The assembled CILF model: forward outputs, losses reaching every parameter, ablation switches."""

import pytest
import torch

import cilf


def test_forward_shapes_and_dtypes(model, small_cfg):
    x = torch.randn(3, 3, 112, 112)
    out = model(x)
    k = small_cfg.num_classes
    h, w = model.clip.grid
    assert out.scores.shape == (3, k) and out.maps.shape == (3, k, h, w)
    assert out.logits.shape == (3, k) and out.text.shape[:2] == (3, k)
    assert out.y0.shape == (3,) and out.age.shape == (3,) and out.fused.shape == (3, model.clip.embed_dim)
    assert all(t.dtype == torch.float32 for t in (out.scores, out.maps, out.y0, out.age))
    torch.testing.assert_close(out.scores.sum(1), torch.ones(3))
    assert (out.maps.abs() <= 1 + 1e-5).all()  # cosines
    c = out.correction
    assert c.steps.dtype == torch.long and c.accepted.dtype == torch.bool and c.spread.shape == (3,)
    assert ((out.age >= small_cfg.age_min) & (out.age <= small_cfg.age_max)).all()


def test_losses_reach_every_trainable_parameter(small_cfg):
    # by default the error model E is fitted after training (cilf.app.crossfit): the losses train everything else
    torch.manual_seed(0)
    model = cilf.create_model(small_cfg, similarity_prior=True)
    out = model(torch.randn(4, 3, 112, 112))
    parts = model.losses(out, torch.tensor([5.0, 20.0, 45.0, 80.0]))
    assert set(parts) == {"age", "con", "total"}
    parts["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing and all(n.startswith("corrector.") for n in missing)
    assert model.head.head_gain.grad is not None and model.head.head_gain.grad.abs() > 0
    assert not any(p.requires_grad for p in model.clip.model.parameters())  # frozen by default


def test_the_joint_correction_option_trains_every_parameter_through_its_losses(small_cfg):
    torch.manual_seed(0)
    m = cilf.create_model(small_cfg, correction_fit="joint")
    out = m(torch.randn(4, 3, 112, 112))
    parts = m.losses(out, torch.tensor([5.0, 20.0, 45.0, 80.0]))
    assert set(parts) == {"age", "con", "err", "corr", "total"}
    parts["total"].backward()
    assert not [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("prompts", ["fixed", "learned"])
def test_with_the_similarity_prior_an_untrained_model_gives_zero_shot_clip(small_cfg, prompts):
    # bundled weights where present (a meaningful zero-shot estimate), else the random-init CLIP of small_cfg
    from cilf.persist.clip_weights import bundled_weights_path

    cfg = small_cfg.replace(prompts=prompts, similarity_prior=True)
    if bundled_weights_path(cfg.clip_model).is_file():
        cfg = cfg.replace(pretrained="bundled")
    torch.manual_seed(0)
    m = cilf.create_model(cfg).eval()
    x = torch.randn(6, 3, 112, 112)
    with torch.no_grad():
        out = m(x)
        zero_shot = m.clip.zero_shot_ages(m.encode_image(x).pooled)
    torch.testing.assert_close(out.y0, zero_shot, rtol=0, atol=1e-4)
    assert out.y0.std() > 0.01  # the images get different estimates: the check compares something
    # the prior is the paper's S: its log, re-tempered to CLIP's scale (softmax(prior) = zero-shot distribution)
    torch.testing.assert_close(
        out.probs.log(), (m.similarity_prior(out.scores.log())).log_softmax(-1), rtol=0, atol=1e-4
    )
    # without the prior, the head starts elsewhere (its own temperature): the switch changes the estimate
    torch.manual_seed(0)
    plain = cilf.create_model(cfg, similarity_prior=False).eval()
    with torch.no_grad():
        assert (plain(x).y0 - zero_shot).abs().max() > 1e-2
    assert plain.head.head_gain is None


def test_a_model_that_predicted_under_inference_mode_can_still_train(small_cfg):
    torch.manual_seed(0)
    m = cilf.create_model(small_cfg).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.inference_mode():  # as predict_paths / predict_features run: fills the text cache
        before = m(x).age
    assert not m.clip.class_text_features().is_inference()
    out = m.train()(x)
    m.losses(out, torch.tensor([30.0, 60.0]))["total"].backward()
    assert m.fusion.img_proj.weight.grad is not None
    torch.testing.assert_close(m.eval()(x).age, before)


@pytest.mark.parametrize(
    "changes",
    [
        dict(mixer="attention"),
        dict(mixer="none"),
        dict(contrastive=False),
        dict(correction=False),
        dict(context_prompting=False),
        dict(prompts="learned"),
        dict(unfreeze_last_blocks=1),
        dict(similarity_prior=False),
        dict(correction_fit="joint"),
        dict(image_fusion=False),
    ],
)
def test_every_ablation_switch_builds_and_trains(small_cfg, changes):
    torch.manual_seed(0)
    m = cilf.create_model(small_cfg, **changes)
    out = m(torch.randn(2, 3, 112, 112))
    parts = m.losses(out, torch.tensor([30.0, 60.0]))
    parts["total"].backward()
    assert ("con" in parts) == m.cfg.contrastive
    assert ("err" in parts) == (m.cfg.correction and m.cfg.correction_fit == "joint")
    assert (out.correction is None) == (not m.cfg.correction)
    if changes.get("prompts") == "learned":
        assert m.clip.prompt_learner.ctx.grad is not None
    if changes.get("unfreeze_last_blocks"):
        assert any(p.grad is not None for p in m.clip.model.visual.transformer.resblocks[-1].parameters())
    if changes.get("image_fusion") is False:  # f = v: the FourierFormer reaches the head through T' alone
        assert m.fusion.img_proj is None and m.fusion.ctx_proj.weight.grad is not None
        x = torch.randn(2, 3, 112, 112)
        with torch.no_grad():
            torch.testing.assert_close(m(x).fused, m.encode_image(x).pooled)
