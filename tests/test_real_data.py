"""End to end on real images that ship in a package: animal-mnist silhouettes, 10 classes, bird among them."""

import json
import subprocess
import sys

import pytest

from roost.algorithm.metrics import load_curves
from roost.data.samples import export_animal_shapes

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


def _roost(*args, cwd):
    r = subprocess.run([sys.executable, "-m", "roost", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    return r


def test_small_resnet_learns_animal_shapes_far_above_chance(tmp_path):
    export_animal_shapes(tmp_path / "images", per_class=100)
    _roost("pack", "images", "data", cwd=tmp_path)
    _roost(
        "train",
        "--train",
        "data/train.rec",
        "--validation",
        "data/val.rec",
        "--output",
        "job",
        "num_classes=10",
        "num_training_samples=800",
        "epochs=8",
        "mini_batch_size=32",
        "num_layers=20",
        "image_shape=3,28,28",
        "learning_rate=0.1",
        "lr_scheduler_step=6",
        "augmentation_type=crop",
        cwd=tmp_path,
    )
    val = load_curves(tmp_path / "job").series["Validation-accuracy"]
    assert len(val) == 8
    assert max(val.values()) >= 0.6, val  # chance is 0.1
    meta = json.loads((tmp_path / "job" / "model" / "roost-model.json").read_text())
    assert meta["class_names"][1] == "bird"
    last = json.loads((tmp_path / "job" / "output" / "data" / "metrics.jsonl").read_text().splitlines()[-1])
    bird = last["validation_per_class"][1]
    assert bird["name"] == "bird" and bird["support"] == 20
    rep = json.loads(_roost("report", "job", "--json", cwd=tmp_path).stdout)
    assert rep["validation_accuracy"] == max(val.values()) and len(rep["validation_confusion"]) == 10
    assert "bird" in _roost("report", "job", cwd=tmp_path).stdout
    _roost("plot", "job", cwd=tmp_path)
    assert (tmp_path / "job" / "accuracy.png").stat().st_size > 10_000
