"""Counting what split lists do to the files found: shared subjects, unused images, duplicate names."""

from cilf.data.protocols import Fold
from cilf.data.split_warnings import duplicate_names, shared_subjects, split_warnings, unlisted_rows


def _rows():
    # subjects a, b, c, d; one row without a subject; two folders holding the same name in different case
    return [
        {"path": "A/a_1.jpg", "subject": "a"},
        {"path": "A/a_2.jpg", "subject": "a"},
        {"path": "A/b_1.jpg", "subject": "b"},
        {"path": "B/B_1.JPG", "subject": "b"},
        {"path": "A/c_1.jpg", "subject": "c"},
        {"path": "A/x.jpg", "subject": ""},
        {"path": "A/d_1.jpg", "subject": "d"},
    ]


def test_shared_subjects_counts_subjects_with_images_on_both_sides_and_ignores_blank_ones():
    rows = _rows()
    assert shared_subjects(rows, Fold("f", train=[0, 2, 5], test=[1, 3, 4])) == 2  # a and b
    assert shared_subjects(rows, Fold("f", train=[0, 1, 5], test=[2, 4, 5])) == 0  # a row without subject is no one


def test_unlisted_rows_are_those_no_split_of_any_fold_uses():
    rows = _rows()
    folds = [Fold("0", train=[0], test=[1], val=[2]), Fold("1", train=[1], test=[4])]
    assert unlisted_rows(rows, folds) == [3, 5, 6]


def test_duplicate_names_are_matched_without_case_and_reported_with_the_unused_copy():
    rows = _rows()
    assert duplicate_names(rows) == {"B_1.JPG": [2, 3]}
    w = split_warnings(rows, [Fold("S2->rest", train=[0, 2, 4], test=[1, 6])], "B2")
    assert (w.images_on_disk, w.images_used, w.unlisted) == (7, 5, 2)
    assert (w.duplicate_names, w.duplicate_files, w.duplicates_unused) == (1, 2, 1)
    assert w.shared == {"S2->rest": 1}
    text = "\n".join(w.lines())
    assert "1 subjects appear in both train and test (protocol B2:" in text
    assert "2 image(s) on disk are named by no list of protocol B2" in text
    assert "2 files share 1 file name(s)" in text and "1 of these files are not used" in text
    clean = split_warnings(rows[:3], [Fold("f", train=[0, 1], test=[2])], "80-20")
    assert clean.lines() == []
