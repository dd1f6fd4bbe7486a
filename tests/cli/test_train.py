"""``roost train`` end to end: SageMaker's log lines, the job folder, checkpoints, bad hyperparameters."""

import csv
import json
import re
import subprocess
import sys

import pytest
import torch

from helpers import make_rec_split
from roost.formats.artifact import read_members, read_meta
from roost.models.artifact import load

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses

LINE = r"^\[\d\d/\d\d/\d{4} \d\d:\d\d:\d\d (INFO|WARNING|ERROR) \d+\] "


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_rec_split(tmp_path_factory.mktemp("data"))


def _run_cli(tmp_path, data, *hp, extra=()):
    train, val, n = data
    args = [
        sys.executable,
        "-m",
        "roost",
        "train",
        "--train",
        str(train),
        "--validation",
        str(val),
        "--output",
        str(tmp_path / "job"),
        "--workers",
        "1",
        *extra,
        "num_classes=3",
        f"num_training_samples={n}",
        "mini_batch_size=8",
        "num_layers=8",
        "image_shape=3,16,16",
        *hp,
    ]
    return subprocess.run(
        args, capture_output=True, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )


def test_roost_train_end_to_end(tmp_path, data):
    r = _run_cli(tmp_path, data, "epochs=3", "top_k=2", "learning_rate=0.05", "augmentation_type=crop_color_transform")
    assert r.returncode == 0, r.stderr + r.stdout
    job = tmp_path / "job"
    log = r.stdout
    # SageMaker's log lines, to the character
    for epoch in range(3):
        for pattern in (
            rf"Epoch\[{epoch}\] Train-accuracy=\d\.\d{{6}}$",
            rf"Epoch\[{epoch}\] Train-top_k_accuracy_2=\d\.\d{{6}}$",
            rf"Epoch\[{epoch}\] Time cost=\d+\.\d{{3}}$",
            rf"Epoch\[{epoch}\] Validation-accuracy=\d\.\d{{6}}$",
            rf"Epoch\[{epoch}\] Validation-top_k_accuracy_2=\d\.\d{{6}}$",
        ):
            assert re.search(LINE + pattern, log, re.M), pattern
    assert re.search(LINE + r"Storing the best model with validation accuracy: \d\.\d{6}$", log, re.M)
    assert re.search(LINE + r'Saved checkpoint to ".*image-classification-000\d\.safetensors"$', log, re.M)
    assert (
        re.search(LINE + r"---- Parameters ----$", log, re.M)
        and "checkpoint_frequency not set, will store the best model" in log
    )
    assert (job / "training.log").read_text().count("Train-accuracy=") == 3
    rows = list(csv.DictReader(open(job / "output" / "data" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] and float(rows[0]["images_per_second"]) > 0
    per_epoch = [json.loads(line) for line in open(job / "output" / "data" / "metrics.jsonl")]
    assert per_epoch[0]["validation_per_class"][0]["name"] == "class_0"
    assert len(per_epoch[0]["validation_confusion"]) == 3
    # model.tar.gz: one best checkpoint, SageMaker's model-shapes.json, Roost's description
    members = read_members(job / "model.tar.gz")
    assert json.loads(members["model-shapes.json"]) == [{"shape": [8, 3, 16, 16], "name": "data"}]
    meta = read_meta(members)
    assert [n for n in members if n.endswith(".safetensors")] == [meta.model]
    assert meta.class_names == ["class_0", "class_1", "class_2"] and meta.hyperparameters["epochs"] == "3"
    assert meta.preprocessing["resize"] == {
        "height": 16,
        "width": 16,
        "keep_aspect_ratio": False,
        "interpolation": "bilinear",
    }
    # loading it back rebuilds the network with identical outputs
    model, _ = load(job / "model.tar.gz")
    again, _ = load(job / "model")
    x = torch.rand(2, 3, 16, 16) * 255
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_a_host_of_two_processes_logs_and_shows_progress_as_one(tmp_path, data):
    """The process plan's processes send their log lines to ``roost train``'s own process: the log file has the
    epochs once, and the plan is stated."""
    import os

    env = {**os.environ, "ROOST_PROCESSES_PER_HOST": "2", "ROOST_THREADS": "2", "COLUMNS": "200"}
    train, val, n = data
    args = [sys.executable, "-m", "roost", "train", "--train", str(train), "--validation", str(val)]
    args += ["--output", str(tmp_path / "job"), "num_classes=3", f"num_training_samples={n}", "mini_batch_size=8"]
    args += ["num_layers=8", "image_shape=3,16,16", "epochs=2"]
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr + r.stdout
    log = (tmp_path / "job" / "training.log").read_text()
    assert "Process plan: 2 processes x 1 thread: set by ROOST_PROCESSES_PER_HOST" in log
    assert "algo-1 is rank 0 of 2 (1 host(s) x 2 process(es))" in log
    assert log.count("Validation-accuracy=") == 2 and r.stdout.count("Validation-accuracy=") == 2
    assert "Setting number of threads: 1" in log  # each process its share of the cores
    assert (tmp_path / "job" / "model.tar.gz").is_file()
    one = _run_cli(tmp_path / "one", data, "epochs=1")  # a short run: one process, and the plan says why
    assert re.search(r"Process plan: 1 process x \d threads?: .* \(ROOST_PROCESSES_PER_HOST overrides\)", one.stdout)


def test_checkpoint_frequency_keeps_every_nth(tmp_path, data):
    r = _run_cli(tmp_path, data, "epochs=4", "checkpoint_frequency=2")
    assert r.returncode == 0, r.stderr
    names = sorted(n for n in read_members(tmp_path / "job" / "model.tar.gz") if n.endswith(".safetensors"))
    assert names == ["image-classification-0002.safetensors", "image-classification-0004.safetensors"]
    assert "checkpoint_frequency: 2" in r.stdout and "Storing the best model" not in r.stdout


def test_bad_hyperparameters_fail_before_any_work(tmp_path, data):
    r = _run_cli(tmp_path, data, "epochs=0", "learnin_rate=0.1")
    assert r.returncode == 2
    assert "epochs='0' is not valid: expected an integer >= 1" in r.stderr
    assert "did you mean 'learning_rate'" in r.stderr
    assert not (tmp_path / "job").exists()


def test_a_seed_changes_the_run_and_repeats_it(tmp_path, data):
    """--seed is the way in for several-seed comparisons (benchmarks' parity runs); the default stays 0."""

    def first_weights(folder, seed):
        r = _run_cli(folder, data, "epochs=1", extra=("--seed", str(seed), "--workers", "0"))
        assert r.returncode == 0, r.stderr
        assert (f"Random seed {seed} (ROOST_SEED)" in r.stdout) == (seed != 0)
        model, _ = load(folder / "job" / "model.tar.gz")
        return next(w for w in model.state_dict().values() if w.ndim > 1)  # the first convolution's weights

    one, other, again = (first_weights(tmp_path / name, seed) for name, seed in (("a", 1), ("b", 2), ("c", 1)))
    assert not torch.equal(one, other) and torch.equal(one, again)
    r = _run_cli(tmp_path / "d", data, "epochs=1", extra=("--seed", "-1"))
    assert r.returncode == 2 and "--seed" in r.stderr
