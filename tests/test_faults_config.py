"""Configs typed by their dataclass: a switch written "false", an integer written 64.5, a list written as
one string. Each is refused naming the field, the value and what is accepted; never read as something
else (a non-empty string is truthy) and never a traceback from deep inside torch."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from cilf.model.config import CILFConfig, parse_overrides
from cilf.typecheck import coerce_fields, coerce_value


def test_json_switches_must_be_json_booleans(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"correction expects true or false, got 'false' \(a string: write true or "
        r"false without quotes\)",
    ):
        CILFConfig.from_dict({"correction": "false", "contrastive": "no"})
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"correction": False, "contrastive": False}))
    cfg = CILFConfig.load(path)
    assert cfg.correction is False and cfg.contrastive is False
    with pytest.raises(ValueError, match="dwconv expects true or false, got 1"):
        CILFConfig.from_dict({"dwconv": 1})


def test_integers_refuse_fractions_and_accept_integral_floats(tmp_path):
    with pytest.raises(ValueError, match=r"width expects an integer, got 64\.5"):
        CILFConfig.from_dict({"width": 64.5})
    width = CILFConfig.from_dict({"width": 64.0}).width
    assert width == 64 and type(width) is int
    with pytest.raises(ValueError, match=r"width expects an integer, got 64\.5"):
        CILFConfig(width=64.5)  # python callers too: no TypeError from torch later
    with pytest.raises(ValueError, match="depth expects an integer, got True"):
        CILFConfig.from_dict({"depth": True})
    assert CILFConfig.from_dict({"tau": 1}).tau == 1.0  # an int is a fine float
    with pytest.raises(ValueError, match="templates expects a list of strings, got 'a {age}'"):
        CILFConfig.from_dict({"templates": "a {age}"})
    with pytest.raises(ValueError, match="mixer expects one of"):
        CILFConfig.from_dict({"mixer": "conv"})


def test_the_train_command_refuses_a_mistyped_config_in_one_line(tmp_path, capsys):
    from cilf.cli import main

    for bad, field_name in (({"correction": "false", "contrastive": "no"}, "correction"), ({"width": 64.5}, "width")):
        path = tmp_path / "c.json"
        path.write_text(json.dumps(bad))
        out = tmp_path / "run"
        assert main(["train", "--config", str(path), "--out", str(out), "--quiet", "--epochs", "1"]) == 2
        err = capsys.readouterr().err
        assert f"c.json: not a valid CILF config ({field_name} expects" in err
        assert "Traceback" not in err and err.count("\n") == 1
        assert not out.exists()  # refused before anything was written


def test_overrides_from_text():
    assert parse_overrides(
        ["correction=False", "contrastive=true", "pretrained=none", "width=64.0", "templates=a {age}|b {age}"]
    ) == {
        "correction": False,
        "contrastive": True,
        "pretrained": None,
        "width": 64,
        "templates": ("a {age}", "b {age}"),
    }
    for pair, match in (
        ("correction=yes", "correction expects true or false, got 'yes'"),
        ("width=64.5", "width expects an integer, got '64.5'"),
        ("mixer=conv", "mixer expects one of 'fourier'"),
        ("eps=half", "eps expects a number, got 'half'"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_overrides([pair])


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Example:
    on: bool = True
    n: int = 1
    x: float = 0.5
    name: str | None = None
    tags: tuple[str, ...] = ()
    mode: Literal["a", "b"] = "a"
    colour: Colour = Colour.RED
    limit: int | None = None
    kind: str = field(default="p", metadata={"choices": ("p", "q")})


def test_coerce_fields_is_generic_over_dataclasses():
    typed = coerce_fields(
        Example,
        {
            "on": False,
            "n": 3.0,
            "x": 2,
            "name": None,
            "tags": ["u", "v"],
            "mode": "b",
            "colour": "blue",
            "limit": None,
            "kind": "q",
        },
    )
    assert typed == {
        "on": False,
        "n": 3,
        "x": 2.0,
        "name": None,
        "tags": ("u", "v"),
        "mode": "b",
        "colour": Colour.BLUE,
        "limit": None,
        "kind": "q",
    }
    text = coerce_fields(
        Example, {"on": "TRUE", "n": "7", "x": "1e-3", "name": "null", "tags": "u|v", "limit": "3"}, text=True
    )
    assert text == {"on": True, "n": 7, "x": 0.001, "name": None, "tags": ("u", "v"), "limit": 3}
    for values, match in (
        ({"on": "false"}, "on expects true or false, got 'false'"),
        ({"n": 2.5}, "n expects an integer, got 2.5"),
        ({"x": True}, "x expects a number, got True"),
        ({"name": 3}, "name expects a string or none, got 3"),
        ({"mode": "c"}, "mode expects one of 'a', 'b', got 'c'"),
        ({"colour": "green"}, "colour expects one of 'red', 'blue'"),
        ({"kind": "z"}, "kind expects one of 'p', 'q', got 'z'"),
        ({"limit": 1.5}, "limit expects an integer or none, got 1.5"),
        ({"nope": 1}, r"unknown Example field\(s\) \['nope'\]"),
    ):
        with pytest.raises(ValueError, match=match):
            coerce_fields(Example, values, source="e.json: ")
    with pytest.raises(ValueError, match="^e.json: n expects"):
        coerce_fields(Example, {"n": "x"}, text=True, source="e.json: ")
    assert coerce_value("k", "3", int, text=True) == 3


def test_the_training_config_can_use_the_same_gate():
    from cilf.app.params import TrainConfig

    typed = coerce_fields(TrainConfig, {"epochs": "3", "flip": "true", "root": "none", "lr": "1e-3"}, text=True)
    assert typed == {"epochs": 3, "flip": True, "root": None, "lr": 0.001}
    with pytest.raises(ValueError, match="flip expects true or false, got 'no'"):
        coerce_fields(TrainConfig, {"flip": "no"})
