"""``python -m cilf``: early errors, help text, version."""

import pytest

import cilf


def test_cli_reports_a_bad_budget_before_any_work(tmp_path, capsys):
    from cilf.cli import main

    with pytest.raises(SystemExit) as e:  # refused by argparse: an integer option with a minimum
        main(["train", "--epochs", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "argument --epochs: 0 is too small: give an integer of at least 1" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as e:  # a positive float, checked as parsed too
        main(["train", "--lr", "-1", "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and "argument --lr: '-1' is not above 0" in capsys.readouterr().err
    assert main(["train", "--weight-decay", "-1", "--out", str(tmp_path / "run")]) == 2  # a range the dataclass checks
    assert "weight_decay must be at least 0" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_cli_help_explains_every_option_and_its_default():
    import argparse

    from cilf.cli import build_parser

    def commands(parser, path=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from commands(sub, path + (name,))
        if path:
            yield " ".join(path), parser

    seen = set()
    for name, parser in commands(build_parser()):
        seen.add(name)
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{name} {action.dest} has no help"
        text = parser.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name
    assert {"train", "predict", "bench", "bench-speed", "data check"} <= seen
    train = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "(default: 0)" in train and "(default: 30)" in train  # a zero default is shown too


def test_cli_version_matches_the_installed_package(capsys):
    from importlib.metadata import version

    from cilf.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"cilf {version('cilf')} ") and version("cilf") == cilf.__version__


def test_dataset_options_are_refused_when_they_do_not_fit(tmp_path, capsys):
    from cilf.cli import main

    assert main(["train", "--root", str(tmp_path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "pass --dataset NAME" in capsys.readouterr().err
    assert main(["eval", "--dataset", "morph2", "--data", "m.csv", "--checkpoint", str(tmp_path), "--quiet"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["train", "--dataset", "adience", "--val-frac", "1.5", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "val_frac" in capsys.readouterr().err
