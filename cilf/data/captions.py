"""Captions for pretraining the micro-CLIP on SynthAge, in two styles.

``exact``: SynthAge's own caption, which states the exact age ("a photo of a 47-year-old woman with greying
hair"). A CLIP pretrained on it has been taught age on these very faces: its "language prior" is supervision.

``web``: what web alt-texts carry, so that the micro-CLIP's prior stands in for a web-trained CLIP's. Coarse age
words (baby, child, teenager, young woman, middle-aged man, elderly person), sometimes a decade ("in her
forties"), visible cues (grey or white hair, a receding hairline, wrinkles, a beard, glasses) and an exact age only
rarely (``EXACT_AGE_PROB``, as a news caption gives it: "a man, 47, ..."). The evaluation prompts
(``cilf.model.config.DEFAULT_TEMPLATES``: "-year-old", "years old", "person aged") never occur.
"""

from __future__ import annotations

import numpy as np

CAPTION_STYLES = ("exact", "web")
EXACT_AGE_PROB = 0.05  # share of web captions that state the exact age (news-caption style)
DECADE_PROB = 0.25  # share of adult web captions that name the decade ("in his fifties")
HELD_OUT = ("-year-old", "years old", "person aged")  # the evaluation prompts' wording, never in a web caption

_FRAMES = (
    "{s}",
    "portrait of {s}",
    "close-up of {s}",
    "headshot of {s}",
    "{s} looking at the camera",
    "{s} smiling",
    "stock photo of {s}",
    "picture of {s}",
)
_DECADES = {2: "twenties", 3: "thirties", 4: "forties", 5: "fifties", 6: "sixties", 7: "seventies", 8: "eighties"}


def _flag(value) -> bool:
    """A manifest switch as written to CSV ("True", "1") or as a bool."""
    return value is True or str(value).strip().lower() in ("true", "1")


def age_phrase(age: int, sex: str, rng: np.random.Generator) -> str:
    """A coarse noun phrase for a person of ``age`` ("a middle-aged man"), drawn among the words of its age band."""
    female = sex == "F"
    if age < 3:
        words = ("a baby", "an infant", "a toddler")
    elif age < 13:
        words = (
            ("a little girl", "a girl", "a child", "a kid") if female else ("a little boy", "a boy", "a child", "a kid")
        )
    elif age < 20:
        words = ("a teenage girl", "a teenager", "a teen") if female else ("a teenage boy", "a teenager", "a teen")
    elif age < 35:
        words = ("a young woman", "a young adult") if female else ("a young man", "a young adult")
    elif age < 55:
        words = ("a middle-aged woman", "an adult woman") if female else ("a middle-aged man", "an adult man")
    elif age < 70:
        words = (
            ("an older woman", "a senior woman", "a mature woman")
            if female
            else (
                "an older man",
                "a senior man",
                "a mature man",
            )
        )
    else:
        words = (
            ("an elderly woman", "an old woman", "a grandmother")
            if female
            else (
                "an elderly man",
                "an old man",
                "a grandfather",
            )
        )
    return str(rng.choice(words))


def visible_cues(meta: dict) -> list[str]:
    """What the renderer drew that a caption writer would name: hair colour, hairline, wrinkles, beard, glasses."""
    cues = []
    grey, recession, skin = float(meta["grey"]), float(meta["recession"]), float(meta["skin_age"])
    if grey > 0.75:
        cues.append("white hair")
    elif grey > 0.3:
        cues.append("grey hair")
    if recession > 0.6:
        cues.append("a receding hairline")
    if skin > 50:
        cues.append("wrinkles")
    if _flag(meta.get("beard")):
        cues.append("a beard")
    if _flag(meta.get("glasses")):
        cues.append("glasses")
    return cues


def web_caption(age: int, meta: dict, rng: np.random.Generator) -> str:
    """An alt-text-like caption of a SynthAge image (``meta``: its manifest row: sex, grey, recession, skin_age,
    beard, glasses), drawn with ``rng``."""
    age = int(age)
    female = meta.get("sex") == "F"
    subject = age_phrase(age, meta.get("sex", ""), rng)
    if age >= 20 and age // 10 in _DECADES and rng.random() < DECADE_PROB:
        subject += f" in {'her' if female else 'his'} {_DECADES[age // 10]}"
    elif rng.random() < EXACT_AGE_PROB:
        subject += f", {age},"
    cues = visible_cues(meta)
    if cues:
        picked = [c for c in cues if rng.random() < 0.7] or cues[:1]
        subject += " with " + (picked[0] if len(picked) == 1 else ", ".join(picked[:-1]) + " and " + picked[-1])
    return str(rng.choice(_FRAMES)).format(s=subject).replace(",, ", ", ").rstrip(",") + "."
