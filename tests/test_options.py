"""Command-line options generated from the parameter dataclasses (cilf/options.py): every field once, its range
checked as parsed and when the dataclass is built, and the correction-fit settings as training options."""

import dataclasses
import json
from dataclasses import dataclass

import pytest

from cilf.app.params import Budget, CorrectionFit, TrainConfig
from cilf.bench.curve import CurveConfig
from cilf.bench.runner import BenchConfig
from cilf.cli import _tcfg, build_parser, main
from cilf.model.config import CILFConfig, parse_overrides
from cilf.options import add_options, check_options, cli_flag, field_meta, from_args, option


def _flags(command: str) -> set[str]:
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {s for a in sub._actions for s in a.option_strings}


@pytest.mark.parametrize("command", ["train", "bench", "curve"])
def test_every_budget_and_correction_fit_field_is_an_option(command):
    flags = _flags(command)
    names = [f.name for f in dataclasses.fields(Budget) if f.name not in ("device",)]
    names += [f.name for f in dataclasses.fields(CorrectionFit) if f.name != "correction_gate"]
    assert {"--" + n.replace("_", "-") for n in names} <= flags
    assert "--no-correction-gate" in flags and "--device" in flags


def test_parsed_options_build_the_dataclass():
    args = build_parser().parse_args(
        ["train", "--crossfit-folds", "3", "--no-correction-gate", "--weight-decay", "0.01", "--no-cache", "--quiet"]
    )
    tcfg = _tcfg(args)
    assert (tcfg.crossfit_folds, tcfg.correction_gate, tcfg.weight_decay) == (3, False, 0.01)
    assert tcfg.cache_features is False and tcfg.progress is False
    assert tcfg.error_epochs == CorrectionFit.error_epochs  # a field not given keeps its default


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train", "--crossfit-folds", "1"], "--crossfit-folds"),
        (["bench", "--error-epochs", "0"], "--error-epochs"),
        (["curve", "--warmup-steps", "0"], "--warmup-steps"),
        (["train", "--error-lr", "nan"], "--error-lr"),
    ],
)
def test_a_range_is_checked_as_the_option_is_parsed(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and flag in capsys.readouterr().err


def test_the_dataclass_checks_the_same_ranges():
    with pytest.raises(ValueError, match="error_lr must be positive"):
        TrainConfig(error_lr=0.0)
    with pytest.raises(ValueError, match="crossfit_folds must be at least 2"):
        BenchConfig(crossfit_folds=1)
    with pytest.raises(ValueError, match="error_epochs must be at least 1"):
        CurveConfig(error_epochs=0)


def test_a_subclass_that_only_changes_a_default_keeps_the_help_and_range_of_its_base():
    assert field_meta(BenchConfig, "weight_decay") == field_meta(Budget, "weight_decay")
    assert "every trained method" in field_meta(BenchConfig, "epochs")["help"]
    assert field_meta(BenchConfig, "epochs")["low"] == 1


def test_a_new_field_needs_no_cli_code():
    @dataclass
    class Extra:
        steps: int = option(10, "steps to take", low=3)
        ratio: float = option(0.5, "a ratio", positive=True)
        fast: bool = option(False, "go fast")
        mode: str = option("a", "a mode", choices=("a", "b"))

        def __post_init__(self):
            check_options(self)

    import argparse

    p = argparse.ArgumentParser()
    add_options(p, Extra, ["steps", "ratio", "fast", "mode"])
    assert from_args(Extra, p.parse_args(["--steps", "4", "--fast", "--mode", "b"])) == Extra(4, 0.5, True, "b")
    with pytest.raises(SystemExit):
        p.parse_args(["--steps", "2"])
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "c"])
    with pytest.raises(ValueError, match="ratio must be positive"):
        Extra(ratio=0.0)


@pytest.mark.parametrize("name", ["crossfit_folds", "error_epochs", "error_lr", "correction_gate"])
def test_the_correction_fit_is_not_a_model_field_and_the_error_says_where_it_went(name):
    assert name not in {f.name for f in dataclasses.fields(CILFConfig)}
    with pytest.raises(ValueError, match="training option"):
        parse_overrides([f"{name}=3"])
    with pytest.raises(ValueError, match="training option"):
        CILFConfig.from_dict({name: 3})
    with pytest.raises(ValueError, match=cli_flag(CorrectionFit, name)):  # the flag that exists
        BenchConfig(model={name: 3})
    assert cli_flag(CorrectionFit, name) in _flags("bench")


def test_a_config_saved_before_the_move_still_loads_and_says_how_its_correction_was_fitted(tmp_path):
    old = {**CILFConfig().to_dict(), "crossfit_folds": 3, "correction_gate": False}
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg, moved = CILFConfig.load_saved(tmp_path / "config.json")
    assert cfg == CILFConfig() and moved == {"crossfit_folds": 3, "correction_gate": False}
    with pytest.raises(ValueError, match="training option"):  # a hand-written --config is refused
        CILFConfig.load(tmp_path / "config.json")


def test_saved_runs_keep_their_keys():
    from cilf.app.crossfit import GATE_RULE
    from cilf.bench.runner import config_key

    bcfg = BenchConfig(crossfit_folds=2)
    key = config_key(CILFConfig(), bcfg)
    fit = dataclasses.asdict(CorrectionFit(crossfit_folds=2))
    # the fit settings sit beside the model fields, as before they became options; a gated fit names its gate
    # rule, so a run saved under an earlier rule is recomputed rather than reused
    assert key == {**CILFConfig().to_dict(), **fit, "gate_rule": GATE_RULE}
    ungated = config_key(CILFConfig(), BenchConfig(crossfit_folds=2, correction_gate=False))
    assert ungated == {**CILFConfig().to_dict(), **fit, "correction_gate": False}
    assert config_key(CILFConfig(correction=False), bcfg) == {**CILFConfig(correction=False).to_dict(), **fit}


def test_fields_an_option_cannot_hold_are_refused_when_the_parser_is_built():
    import argparse

    @dataclass
    class Odd:
        ks: tuple[int, ...] = (1, 2)
        either: int | str = 1
        on: bool = option(True, "a switch", metavar="X")

    for name in ("ks", "either", "on"):
        with pytest.raises(TypeError):
            add_options(argparse.ArgumentParser(), Odd, [name])


def test_a_positive_option_is_checked_as_parsed(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--error-lr", "0"])
    assert "--error-lr" in capsys.readouterr().err


def test_resuming_a_run_saved_before_the_move_keeps_its_correction_fit(tmp_path, monkeypatch, capsys):
    import cilf.app.runfolder as runfolder
    import cilf.app.train as train

    out = tmp_path / "run"
    (out / "last").mkdir(parents=True)
    (out / "run.json").write_text("{}")
    (out / "last" / "config.json").write_text(json.dumps({**CILFConfig().to_dict(), "crossfit_folds": 3}))
    state = {"tcfg": {}}
    monkeypatch.setattr(runfolder, "load_train_state", lambda d: state)
    monkeypatch.setattr(train, "load_train_state", lambda d: state)
    monkeypatch.setattr(train, "moved_weights", lambda d, pretrained: False)  # no weights record in this stub
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 2
    assert "started with crossfit_folds=3, not crossfit_folds=5" in capsys.readouterr().err
