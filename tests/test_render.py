"""The tables' renderer (mdl_utils.tables.render): columns folded into captions."""

from mdl_utils.tables import render


def test_a_caption_column_names_the_rows_of_each_value():
    rows = [["a", "1", "x"], ["b", "2", "y"], ["c", "3", "x"]]
    header, kept, notes = render._fold(["model", "kbits", "numerics"], rows, [False, False, "caption"], None,
                                       ["a", "b", "c"])
    assert header == ["model", "kbits"] and kept == [["a", "1"], ["b", "2"], ["c", "3"]]
    assert notes == ["numerics: x for a, c; y for b"]


def test_a_constant_column_folds_to_one_phrase_and_a_varying_fold_column_stays():
    rows = [["a", "x", "p"], ["b", "x", "q"]]
    header, kept, notes = render._fold(["model", "numerics", "scale"], rows, [False, "caption", "fold"])
    assert header == ["model", "scale"] and kept == [["a", "p"], ["b", "q"]] and notes == ["numerics: x"]
