"""``roost im2rec``: MXNet's command line, end to end on the MXNet fixtures."""

import shutil
import subprocess
import sys

import pytest

from roost.formats import recordio

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


@pytest.fixture(scope="module")
def im2rec_dir(mxnet_fixtures):
    return mxnet_fixtures / "im2rec"


def _roost(*args, cwd):
    return subprocess.run([sys.executable, "-m", "roost", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_cli_end_to_end_on_fixtures(im2rec_dir, tmp_path):
    shutil.copytree(im2rec_dir / "images", tmp_path / "images")
    r = _roost(
        "im2rec",
        "--list",
        "--recursive",
        "--train-ratio",
        "0.75",
        "--test-ratio",
        "0.1",
        "birds",
        "images",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "american_goldfinch 0\nblue_jay 1\nnorthern_cardinal 2\n"
    for part in ("train", "val", "test"):
        assert (tmp_path / f"birds_{part}.lst").read_bytes() == (
            im2rec_dir / "lists" / f"birds_{part}.lst"
        ).read_bytes()
    r = _roost("im2rec", "--num-thread", "2", "--resize", "64", "birds", "images", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Creating .rec file from") == 3
    assert "ncard_08_corrupt.jpg" in r.stderr and "1 skipped" in r.stderr
    total = sum(len(recordio.read_index(tmp_path / f"birds_{p}.idx")) for p in ("train", "val", "test"))
    assert total == 23
    r = _roost("im2rec", "--strict", "birds_val", "images", cwd=tmp_path)
    assert r.returncode == (1 if "ncard_08" in (tmp_path / "birds_val.lst").read_text() else 0)


def test_cli_usage_errors(tmp_path):
    r = _roost("im2rec", "nothing", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and "Did not find and list file with prefix" in r.stderr and "--list" in r.stderr
    r = _roost("im2rec", "--list", "x", str(tmp_path / "missing"), cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = _roost("im2rec", "--list", "--train-ratio", "0.9", "--test-ratio", "0.2", "x", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "must not exceed 1" in r.stderr
    r = _roost("im2rec", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--pack-label" in r.stdout and "--no-shuffle" in r.stdout
