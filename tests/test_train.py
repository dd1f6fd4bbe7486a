"""The training loop and the container contract, on tiny data made in code."""

import csv
import json
import re
import subprocess
import sys

import pytest
import torch

from helpers import BASE_HP, make_rec_split, single_entry_rec
from roost.algorithm.container import run_training
from roost.algorithm.hyperparameters import parse_hyperparameters
from roost.algorithm.layout import prepare_local_job
from roost.algorithm.metrics import EpochMetrics
from roost.algorithm.optim import MultiFactorSchedule, make_optimizer
from roost.algorithm.tasks import per_class_report
from roost.algorithm.train import should_stop_early
from roost.formats.artifact import read_members, read_meta
from roost.models.artifact import load
from roost.models.resnet import ResNet


def _job_hp(n: int, **overrides) -> dict:
    """One-epoch hyperparameters for the tiny test data set, as strings."""
    return {k: str(v) for k, v in {**BASE_HP, "num_training_samples": n, "epochs": 1, **overrides}.items()}


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


def test_container_writes_client_error_failure(tmp_path, data):
    train, val, n = data
    job = tmp_path / "job"
    prepare_local_job(job, {"train": train, "validation": val}, _job_hp(n, num_classes="2", mini_batch_size="4"))
    assert run_training(job, workers=0) == 1
    failure = (job / "output" / "failure").read_text()
    assert failure.startswith("ClientError: ") and "is outside 0..1 (num_classes=2)" in failure


def test_container_missing_channel_and_wrong_content_type(tmp_path, data):
    train, val, n = data
    job = tmp_path / "job"
    hp = _job_hp(n, mini_batch_size="4")
    prepare_local_job(job, {"train": train}, hp)
    assert run_training(job, workers=0) == 1
    assert "'validation' channel" in (job / "output" / "failure").read_text()
    prepare_local_job(job, {"train": train, "validation": val}, hp)
    cfg = job / "input" / "config" / "inputdataconfig.json"
    cfg.write_text(json.dumps({"train": {"ContentType": "application/x-image"}}))
    assert run_training(job, workers=0) == 1
    assert "no images in class sub-folders" in (job / "output" / "failure").read_text()
    cfg.write_text(json.dumps({"train": {"ContentType": "text/csv"}}))
    assert run_training(job, workers=0) == 1
    assert "has ContentType 'text/csv'; use application/x-recordio" in (job / "output" / "failure").read_text()


def test_lr_schedule_steps_at_epoch_boundaries():
    hp = parse_hyperparameters(
        {
            "num_classes": "2",
            "num_training_samples": "100",
            "mini_batch_size": "32",
            "learning_rate": "0.1",
            "lr_scheduler_step": "2,4",
            "lr_scheduler_factor": "0.5",
        }
    )
    sched = MultiFactorSchedule(hp)  # epoch_size = 100 // 32 = 3 (Python 2 division, as in the container)
    lrs = [sched.lr(u) for u in range(1, 15)]
    assert lrs[:6] == [0.1] * 6 and lrs[6:12] == [0.05] * 6 and lrs[12:] == [0.025] * 2


@pytest.mark.parametrize(
    "name,cls",
    [("sgd", torch.optim.SGD), ("nag", torch.optim.SGD), ("adam", torch.optim.Adam), ("rmsprop", torch.optim.RMSprop)],
)
def test_optimizer_wiring(name, cls):
    hp = parse_hyperparameters(
        {
            "num_classes": "2",
            "num_training_samples": "10",
            "mini_batch_size": "2",
            "optimizer": name,
            "momentum": "0.8",
            "weight_decay": "0.01",
            "beta_1": "0.7",
            "gamma": "0.95",
            "eps": "1e-6",
        }
    )
    opt = make_optimizer(ResNet(2, 8, (3, 16, 16)), hp)
    assert isinstance(opt, cls)
    decay, no_decay = opt.param_groups
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert decay["weight_decay"] == (0.01 if name in ("sgd", "nag") else 0.0) and no_decay["weight_decay"] == 0
    if name == "nag":
        assert decay["nesterov"] and decay["momentum"] == 0.8
    if name == "adam":
        assert decay["betas"] == (0.7, 0.999) and decay["eps"] == 1e-6
    if name == "rmsprop":
        assert decay["alpha"] == 0.95


def test_early_stopping_relative_rule():
    hp = parse_hyperparameters(
        {
            "num_classes": "2",
            "num_training_samples": "10",
            "mini_batch_size": "2",
            "early_stopping": "True",
            "early_stopping_min_epochs": "3",
            "early_stopping_patience": "2",
            "early_stopping_tolerance": "0.1",
        }
    )

    def hist(accs):
        return [
            EpochMetrics(
                epoch=i,
                train_accuracy=0,
                train_top_k=None,
                train_loss=0,
                validation_accuracy=a,
                validation_top_k=None,
                validation_loss=None,
                learning_rate=0.1,
                time_cost=1,
                images_per_second=1,
            )
            for i, a in enumerate(accs)
        ]

    assert not should_stop_early(hist([0.5, 0.5]), hp)  # before min epochs
    assert should_stop_early(hist([0.5, 0.52, 0.54]), hp)  # +4% and +8% relative: not improvements at tolerance 0.1
    assert not should_stop_early(hist([0.5, 0.52, 0.56]), hp)  # 0.56 is +12%: an improvement


def test_per_class_report():
    import numpy as np

    rep = per_class_report(np.array([[3, 1], [0, 2]]))
    assert rep[0] == {"class": 0, "precision": 1.0, "recall": 0.75, "f1": pytest.approx(6 / 7), "support": 4}
    assert rep[1]["precision"] == pytest.approx(2 / 3) and rep[1]["recall"] == 1.0


def test_label_outside_num_classes(tmp_path):
    from roost.algorithm.train import load_channel
    from roost.data.channels import ChannelError

    rec = single_entry_rec(tmp_path, 5.0)
    hp = parse_hyperparameters({"num_classes": "3", "num_training_samples": "1", "mini_batch_size": "1"})
    with pytest.raises(ChannelError, match="label 5 is outside 0..2"):
        load_channel([rec], hp, train=True)


def test_container_entry_point_on_an_opt_ml_folder(tmp_path, data):
    train, val, n = data
    job = tmp_path / "opt_ml"
    prepare_local_job(job, {"train": train, "validation": val}, _job_hp(n))
    r = subprocess.run(
        [sys.executable, "-m", "roost", "container", "train", "--root", str(job)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.match(
        LINE + re.escape("Docker entrypoint called with argument(s): train") + "$", r.stdout.splitlines()[0]
    )
    assert "Searching for .rec files in" in r.stdout
    assert (job / "model" / "roost-model.json").is_file() and not (job / "output" / "failure").exists()
    # SageMaker packs /opt/ml/model itself; the container leaves no tarball
    assert not list(job.rglob("*.tar.gz"))
