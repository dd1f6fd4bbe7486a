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
