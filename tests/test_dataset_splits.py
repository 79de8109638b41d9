"""Splits of one fold of a dataset's protocol for train/eval: val carved from train subjects, labels, metrics."""

import numpy as np
import pytest

from cilf.data.splits import carve_val, dataset_metrics, open_splits, split_label
from cilf.metrics import age_group


def _rows(subjects: int, per: int = 3, blank: bool = False):
    return [
        {"path": f"{s}_{k}.jpg", "age": 20 + s, "subject": "" if blank else f"s{s}"}
        for s in range(subjects)
        for k in range(per)
    ]


def test_val_is_carved_from_training_subjects_seeded_and_subject_disjoint():
    rows = _rows(40)
    train_idx = list(range(0, 90))  # subjects 0-29; 30-39 stand for a test split never touched
    tr, va = carve_val(rows, train_idx, 0.1, seed=0)
    assert sorted(tr + va) == train_idx
    subj = lambda idx: {rows[i]["subject"] for i in idx}  # noqa: E731
    assert not subj(tr) & subj(va) and len(subj(va)) == 3
    assert carve_val(rows, train_idx, 0.1, seed=0) == (tr, va)
    assert carve_val(rows, train_idx, 0.1, seed=1)[1] != va
    tr, va = carve_val(_rows(10, blank=True), list(range(30)), 0.2, seed=0)  # no subjects: by image
    assert len(va) == 6 and len(tr) == 24
    with pytest.raises(ValueError, match="two or more subjects"):
        carve_val(_rows(1), [0, 1, 2], 0.1, seed=0)


def test_open_splits_carves_val_only_where_the_protocol_has_none(trees):
    d = open_splits("morph2", trees["morph2"], "B2")
    fold = d.splits
    assert d.label == "this run, MORPH-II B2" and d.info["val"].startswith("carved from train")
    assert {r["subject"] for r in fold["train"].rows}.isdisjoint(r["subject"] for r in fold["val"].rows)
    a = open_splits("appa-real", trees["appa-real"])
    assert a.info["val"] == "published with protocol official"
    assert {r["split"] for r in a.splits["val"].rows} == {"valid"}
    ad = open_splits("adience", trees["adience"], fold=2)
    assert ad.label == "this run, Adience 5-fold fold 2" and {r["fold"] for r in ad.splits["test"].rows} == {2}
    with pytest.raises(ValueError, match="has 5 fold"):
        open_splits("adience", trees["adience"], fold=5)
    assert split_label("FG-NET", "lopo", 0, 82) == "this run, FG-NET lopo fold 0"


def test_dataset_metrics_are_adience_group_accuracy_and_appa_epsilon_error():
    rows = [{"adience_group": age_group(a)} for a in (1, 5, 10, 30)]
    m = dataset_metrics(np.array([1.0, 10.0, 30.0, 30.0]), rows)  # exact, 1 off, 2 off, exact
    assert m == {"group_exact": 50.0, "group_1off": 75.0}
    rows = [{"apparent_mean": 30.0, "apparent_std": 2.0}, {"apparent_mean": 50.0, "apparent_std": 5.0}]
    m = dataset_metrics(np.array([30.0, 55.0]), rows)
    assert m["epsilon_error"] == pytest.approx((0 + 1 - np.exp(-0.5)) / 2)
    assert dataset_metrics(np.array([30.0]), [{"path": "x"}]) == {}
