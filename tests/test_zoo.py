"""The notebooks' demo models (cilf.notebook.zoo): trained once, then reused; quiet, since nbval compares
every output stream of the notebook cells that call them."""

import pytest

pytestmark = pytest.mark.slow


def test_quick_model_trains_quietly_once_then_reuses(tmp_path, monkeypatch, capfd):
    from cilf.notebook import zoo

    monkeypatch.setenv("CILF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CILF_DATA", str(tmp_path / "data"))
    monkeypatch.setitem(zoo.BUDGETS, True, dict(n_images=200, epochs=2))
    model, report = zoo.quick_model(fast=True)
    out, err = capfd.readouterr()
    assert err == "" and out == "", (out, err)  # a cold cache must not add output to the committed notebooks
    again, report2 = zoo.quick_model(fast=True)
    assert report2["model"]["mae"] == report["model"]["mae"]  # read back from the cache, not retrained
    assert capfd.readouterr() == ("", "")
