"""classes.json read and written in one place, and a hostile one named instead of crashing a reader."""

import pytest

from roost.formats import classes


def test_round_trip_and_the_object_form(tmp_path):
    classes.write(tmp_path / classes.FILE, ["bird", "cat"])
    assert classes.read(tmp_path / classes.FILE) == ["bird", "cat"]
    assert classes.beside(tmp_path) == tmp_path / classes.FILE
    assert classes.beside(tmp_path / "train.rec") == tmp_path / classes.FILE
    (tmp_path / "o.json").write_text('{"1": "cat", "0": "bird", "10": "owl"}')
    assert classes.read(tmp_path / "o.json") == ["bird", "cat", "owl"]
    assert classes.read(tmp_path / "missing.json") is None


@pytest.mark.parametrize("text", ['{"a": "cat"}', "[[1]]", "not json", '"bird"', "\xff"])
def test_a_file_that_names_no_classes_is_a_clear_error(tmp_path, text):
    path = tmp_path / classes.FILE
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(classes.ClassNamesError, match="classes.json"):
        classes.read(path)
