"""``roost predict`` on model files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


def test_predict_command(mxnet_fixtures):
    folder = mxnet_fixtures / "model"
    images = [str(folder / f"test_{i}.png") for i in range(3)]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "predict",
            str(folder / "resnet20_3x28x28" / "model.tar.gz"),
            *images,
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    expected = json.loads((folder / "resnet20_3x28x28" / "predictions.json").read_text())["probabilities"]
    assert [os.path.basename(row["image"]) for row in rows] == ["test_0.png", "test_1.png", "test_2.png"]
    for row in rows:
        np.testing.assert_allclose(row["probabilities"], expected[os.path.basename(row["image"])], atol=1e-4)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "predict",
            str(folder / "resnet20_3x28x28" / "model.tar.gz"),
            images[0],
            "--top-k",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "test_0.png" in r.stdout and "#2" in r.stdout


def test_a_table_through_a_pipe_keeps_every_number(mxnet_fixtures, tmp_path):
    """Through a pipe (capture_output), a wide table prints whole rows instead of cutting them at 80 columns."""
    folder = mxnet_fixtures / "model"
    deep = tmp_path / ("a-folder-with-a-long-name-" * 3)
    deep.mkdir()
    image = deep / "test_0.png"
    image.write_bytes((folder / "test_0.png").read_bytes())
    model = folder / "resnet20_3x28x28" / "model.tar.gz"
    r = subprocess.run(
        [sys.executable, "-m", "roost", "predict", str(model), str(image), "--top-k", "5"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if "test_0.png" in line)
    assert str(image) in row and "…" not in r.stdout
    probabilities = json.loads(
        subprocess.run(
            [sys.executable, "-m", "roost", "predict", str(model), str(image), "--json", "--top-k", "5"],
            capture_output=True,
            text=True,
        ).stdout
    )["top_k"]
    for top in probabilities:
        assert f"{top['label']} {top['probability']:.3f}" in row
