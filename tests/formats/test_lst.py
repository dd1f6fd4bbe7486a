"""MXNet .lst image lists: written as MXNet writes them, bad lines named by file and line."""

import pytest

from roost.formats.lst import ListEntry, LstError, format_entry, iter_list, read_list, write_list


def test_format_matches_mxnet():
    assert format_entry(ListEntry(7, "a/b c.jpg", (1.0,))) == "7\t1.000000\ta/b c.jpg\n"
    assert format_entry(ListEntry(0, "x.png", (1, 0, 0.5))) == "0\t1.000000\t0.000000\t0.500000\tx.png\n"


def test_roundtrip_fixture_lists(mxnet_fixtures, tmp_path):
    for src in sorted((mxnet_fixtures / "im2rec" / "lists").glob("*.lst")) + [
        mxnet_fixtures / "im2rec" / "rec" / "pack_label" / "multi.lst"
    ]:
        entries = read_list(src)
        assert entries
        write_list(tmp_path / src.name, entries)
        assert (tmp_path / src.name).read_bytes() == src.read_bytes()
    multi = read_list(mxnet_fixtures / "im2rec" / "rec" / "pack_label" / "multi.lst")
    assert multi[0] == ListEntry(0, "american_goldfinch/AGOLD_07.JPG", (1.0, 0.0, 1.0))


def test_reads_mxnet2_style_and_spaces(tmp_path):
    p = tmp_path / "m.lst"
    p.write_text("3\t1.0\tdir/with space.jpg\n\n4\t2\tb.jpg\n")
    assert read_list(p) == [ListEntry(3, "dir/with space.jpg", (1.0,)), ListEntry(4, "b.jpg", (2.0,))]


@pytest.mark.parametrize(
    "line,message",
    [
        ("0\tpath.jpg", "expected at least 3 tab-separated fields"),
        ("zero\t1\tp.jpg", "the first field must be an integer index"),
        ("0\tcat\tp.jpg", "labels must be numbers"),
        ("0 1 p.jpg", "expected at least 3 tab-separated fields"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    p = tmp_path / "bad.lst"
    p.write_text("0\t1\tok.jpg\n" + line + "\n")
    with pytest.raises(LstError, match=rf"bad.lst: line 2: {message}"):
        read_list(p)
    errors = []
    assert [e.path for e in iter_list(p, errors=errors)] == ["ok.jpg"]
    assert len(errors) == 1 and errors[0].lineno == 2
