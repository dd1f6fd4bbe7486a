"""``roost pack`` and ``roost explore`` from the command line."""

import json
import shutil
import subprocess
import sys

import pytest

from helpers import make_class_tree
from roost.formats import recordio

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


def _roost(*args, cwd):
    return subprocess.run([sys.executable, "-m", "roost", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_cli_pack(tmp_path):
    root = make_class_tree(tmp_path / "img", {"bird": 6, "cat": 4})
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    r = _roost("pack", root, tmp_path / "out", "--resize", "16", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "out" / "classes.json").read_text()) == ["bird", "cat"]
    n_train = len(recordio.read_index(tmp_path / "out" / "train.idx"))
    n_val = len(recordio.read_index(tmp_path / "out" / "val.idx"))
    assert n_train + n_val == 10 and n_val == 2
    assert "broken.jpg" in r.stderr and f"num_training_samples={n_train}" in r.stderr
    r = _roost("pack", tmp_path / "out", tmp_path / "out2", cwd=tmp_path)
    assert r.returncode == 1 and "no images found" in r.stderr


@pytest.fixture()
def birds(mxnet_fixtures, tmp_path):
    shutil.copytree(mxnet_fixtures / "im2rec" / "images", tmp_path / "images")
    return tmp_path / "images"


def test_cli(birds, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "roost", "explore", str(birds), "--json", "--grid", str(tmp_path / "s.png")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["images"] == 24 and (tmp_path / "s.png").is_file()
    r = subprocess.run(
        [sys.executable, "-m", "roost", "explore", str(birds), "--image-shape", "3,300,300"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "northern_cardinal" in r.stdout and "smaller than 300x300" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "roost", "explore", str(birds), "--image-shape", "224"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "expected 'channels,height,width', e.g. '3,224,224'" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([sys.executable, "-m", "roost", "explore", str(empty)], capture_output=True, text=True)
    assert r.returncode == 1 and "no images found" in r.stderr


def test_explore_through_a_pipe_prints_whole_rows(tmp_path):
    """Piped (not a terminal), explore's class table keeps every name and count whole instead of cutting it
    at 80 columns (issue 26)."""
    long = {f"{'a-very-long-class-name-' * 3}{k}": 2 for k in range(3)}
    folder = make_class_tree(tmp_path / "imgs", long)
    r = subprocess.run([sys.executable, "-m", "roost", "explore", str(folder)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    for name in long:
        row = next(line for line in r.stdout.splitlines() if name in line)
        assert " 2 " in f"{row} ", row
