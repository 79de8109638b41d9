"""Pretraining captions: the web style names age coarsely, states it exactly only rarely, never uses the
evaluation prompts' wording, and names the cues the renderer drew; the exact style is SynthAge's own caption."""

import re

import numpy as np
import pytest

from cilf.app.pretrain import PretrainConfig, training_caption
from cilf.data.captions import EXACT_AGE_PROB, HELD_OUT, age_phrase, visible_cues, web_caption
from cilf.model.config import DEFAULT_TEMPLATES


def _meta(sex="F", grey=0.0, recession=0.0, skin_age=20.0, beard=False, glasses=False):
    # as read back from the manifest CSV: every value a string
    return {
        "sex": sex,
        "grey": str(grey),
        "recession": str(recession),
        "skin_age": str(skin_age),
        "beard": str(beard),
        "glasses": str(glasses),
        "caption": "a photo of a 47-year-old woman.",
    }


def _draws(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    ages = rng.integers(0, 101, n)
    metas = [_meta(sex=rng.choice(["F", "M"]), grey=rng.random(), skin_age=float(a)) for a in ages]
    return ages, [web_caption(int(a), m, rng) for a, m in zip(ages, metas)]


def test_web_captions_never_hold_the_evaluation_prompts():
    _, caps = _draws()
    for c in caps:
        assert not any(h in c for h in HELD_OUT), c
        for t in DEFAULT_TEMPLATES:
            assert not c.startswith(t.split("{age}")[0]), c


def test_web_captions_state_the_exact_age_rarely():
    ages, caps = _draws()
    exact = np.mean([bool(re.search(rf"\b{a}\b", c)) for a, c in zip(ages, caps)])
    assert 0.01 < exact < 2 * EXACT_AGE_PROB, exact


def test_age_words_follow_the_age_bands():
    rng = np.random.default_rng(0)

    def words(age, sex="M"):
        return {age_phrase(age, sex, rng) for _ in range(50)}

    assert words(1, "F") == {"a baby", "an infant", "a toddler"}
    assert all("teen" in w for w in words(16))
    assert words(45) == {"a middle-aged man", "an adult man"}
    assert words(80, "F") == {"an elderly woman", "an old woman", "a grandmother"}
    assert not words(25) & words(60)  # no phrase names both a young and an old adult


def test_visible_cues_are_what_the_renderer_drew():
    assert visible_cues(_meta()) == []
    cues = visible_cues(_meta(grey=0.9, recession=0.7, skin_age=60, beard=True, glasses=True))
    assert cues == ["white hair", "a receding hairline", "wrinkles", "a beard", "glasses"]
    assert visible_cues(_meta(grey=0.5)) == ["grey hair"]


def test_the_style_picks_the_caption_and_is_kept_on_resume():
    rng = np.random.default_rng(0)
    meta = _meta()
    assert training_caption(meta, 47, rng, 0.0, "exact") == meta["caption"]
    assert "47-year-old" not in training_caption(meta, 47, rng, 1.0, "web")  # the person prompt is held out too
    with pytest.raises(ValueError, match="captions must be one of"):
        PretrainConfig(captions="tweets")
    from cilf.app.pretrain import RESUME_FIXED

    assert "captions" in RESUME_FIXED
