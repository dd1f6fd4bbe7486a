"""Bad input to any ``roost`` command is one line naming the file, the line and the fix, with exit status 1:
never a traceback (the command group turns every user error into that line)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from helpers import make_class_tree
from roost.cli.main import cli
from roost.formats.lst import ListEntry, write_list


def _run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture()
def images(tmp_path):
    return make_class_tree(tmp_path / "img", {"bird": 2, "cat": 2})


def test_im2rec_repeated_index_and_non_utf8_list(images, tmp_path):
    write_list(tmp_path / "dup.lst", [ListEntry(0, "bird/000.png", (0.0,)), ListEntry(0, "cat/000.png", (1.0,))])
    _one_line_error(_run("im2rec", tmp_path / "dup", images), "dup.lst: index 0 is given to both", "im2rec --list")
    (tmp_path / "bin.lst").write_bytes(b"0\t0.000000\tbird/000.png\n1\t1.000000\tcat/\xff.png\n")
    _one_line_error(_run("im2rec", tmp_path / "bin", images), "bin.lst: line 2: not UTF-8 text (byte 0xff")


def test_explore_names_and_skips_entries_outside_the_root(images, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes((images / "bird" / "000.png").read_bytes())
    write_list(images / "esc.lst", [ListEntry(0, "bird/000.png", (0.0,)), ListEntry(1, "../secret.png", (1.0,))])
    result = _run("explore", images / "esc.lst", "--root", images, "--json")
    assert result.exit_code == 0, result.output
    assert "1 entry outside the image root" in result.output and "secret.png" in result.output
    os.symlink(secret, images / "cat" / "link.png")
    result = _run("explore", images, "--json")
    assert result.exit_code == 0 and "outside the folder" in result.output and "link.png" in result.output


def test_unreadable_inputs(tmp_path, images):
    (tmp_path / "train.rec").write_bytes(b"not a record")
    result = _run("explore", tmp_path / "train.rec", "--json")
    assert result.exit_code in (0, 1) and "Traceback" not in result.output
    (tmp_path / "m.lst").write_bytes(b"0\tzero\tbird/000.png\n")  # MXNet's rule: a malformed line is skipped
    result = _run("im2rec", tmp_path / "m", images)
    assert result.exit_code == 0 and "line 1: labels must be numbers" in result.output
