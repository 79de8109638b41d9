"""Configuration dataclasses: validation, overrides from the command line, JSON round trip."""

import pytest

from cilf.app.params import TrainConfig
from cilf.app.pretrain import PretrainConfig
from cilf.bench.runner import BenchConfig
from cilf.model.config import CILFConfig, parse_overrides


def test_config_validation_overrides_and_json_round_trip(tmp_path):
    with pytest.raises(ValueError, match="mixer"):
        CILFConfig(mixer="conv")
    with pytest.raises(ValueError, match="age"):
        CILFConfig(templates=("a photo of a person",))
    ch = parse_overrides(["mixer=attention", "width=32", "correction=false", "eps=0.25", "pretrained=none"])
    assert ch == {"mixer": "attention", "width": 32, "correction": False, "eps": 0.25, "pretrained": None}
    with pytest.raises(ValueError, match="unknown config field"):
        parse_overrides(["widht=3"])
    with pytest.raises(ValueError, match="width expects an integer, got 'abc'"):
        parse_overrides(["width=abc"])
    with pytest.raises(ValueError, match="eps expects a number"):
        parse_overrides(["eps=half"])
    cfg = CILFConfig().replace(**ch)
    cfg.save(tmp_path / "c.json")
    assert CILFConfig.load(tmp_path / "c.json") == cfg
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        CILFConfig.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: CILFConfig(ensemble_size=0), "ensemble_size must be at least 1, got 0"),
        (lambda: CILFConfig(tau=0.0), "tau must be positive"),
        (lambda: TrainConfig(epochs=0), "epochs must be at least 1"),
        (lambda: TrainConfig(lr=-1e-3), "lr must be positive"),
        (lambda: BenchConfig(seeds=0), "seeds must be at least 1"),
        (lambda: BenchConfig(peers=("dexx",)), "unknown peer"),
        (lambda: PretrainConfig(batch_size=1), "batch_size"),
    ],
)
def test_configs_refuse_values_that_would_fail_deep_inside_a_run(make, match):
    with pytest.raises(ValueError, match=match):
        make()
