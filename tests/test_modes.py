"""The algorithm's modes: multi-label, early stopping, incremental and transfer learning, precision, resume."""

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from helpers import BASE_HP, failure, make_multilabel, make_rec_split, run_job
from roost.algorithm.hyperparameters import parse_hyperparameters
from roost.algorithm.runtime import precision_plan
from roost.algorithm.train import train
from roost.data import im2rec
from roost.data.channels import ChannelData, recordio_samples
from roost.formats.artifact import read_members, read_meta
from roost.formats.lst import read_list


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    return make_rec_split(tmp_path_factory.mktemp("recs"), per_class=12)


def _hp(n, **extra):
    return {**BASE_HP, "num_training_samples": n, **extra}


def _log(job):
    return "\n".join(json.dumps(line) for line in (job / "output" / "data" / "metrics.jsonl").read_text().splitlines())


# --------------------------------------------------------------------------- multi-label


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi")
    train_root, train_lst = make_multilabel(tmp / "train", n=40, seed=1)
    val_root, val_lst = make_multilabel(tmp / "val", n=12, seed=2)
    return train_root, train_lst, val_root, val_lst


def test_multilabel_from_lst_with_weighted_loss(multi, tmp_path, caplog):
    train_root, train_lst, val_root, val_lst = multi
    status, job = run_job(
        tmp_path / "job",
        {"train": train_root, "train_lst": train_lst, "validation": val_root, "validation_lst": val_lst},
        _hp(40, multi_label=1, use_weighted_loss=1, epochs=3),
    )
    assert status == 0, failure(job)
    last = json.loads((job / "output" / "data" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= last["validation_accuracy"] <= 1 and last["validation_map"] is not None
    row = last["validation_per_class"][0]
    assert {"precision", "recall", "f1", "average_precision", "accuracy"} <= set(row)
    assert "use_weighted_loss: positive weights per class" in caplog.text
    assert read_meta(read_members(job / "model")).multi_label


def test_multilabel_recordio_and_label_count_mismatch(multi, tmp_path):
    train_root, train_lst, val_root, val_lst = multi
    for root, lst, stem in ((train_root, train_lst, "train"), (val_root, val_lst, "val")):
        shutil.copy(lst, tmp_path / f"{stem}.lst")
        im2rec.pack_list(tmp_path / f"{stem}.lst", root, im2rec.EncodeOptions(pack_label=True, encoding=".png"))
    status, job = run_job(
        tmp_path / "job", {"train": tmp_path / "train.rec", "validation": tmp_path / "val.rec"}, _hp(40, multi_label=1)
    )
    assert status == 0, failure(job)
    status, job = run_job(
        tmp_path / "job2",
        {"train": tmp_path / "train.rec", "validation": tmp_path / "val.rec"},
        _hp(40, multi_label=1, num_classes=4),
    )
    assert status == 1
    assert "Mismatch between number of labels in the multi-label data (3) and the num_classes parameter (4)" in failure(
        job
    )


def test_multilabel_class_id_manifest(multi, tmp_path):
    train_root, train_lst, val_root, val_lst = multi

    def manifest(path, root, lst):
        rows = [
            json.dumps({"source-ref": str(root / e.path), "labels": [i for i, v in enumerate(e.labels) if v]})
            for e in read_list(lst)
        ]
        path.write_text("\n".join(rows) + "\n")
        return path

    status, job = run_job(
        tmp_path / "job",
        {
            "train": manifest(tmp_path / "t.manifest", train_root, train_lst),
            "validation": manifest(tmp_path / "v.manifest", val_root, val_lst),
        },
        _hp(40, multi_label=1),
        content_types={
            "train": "application/x-recordio; label-format=class-id",
            "validation": "application/x-recordio; label-format=class-id",
        },
        attribute_names=["source-ref", "labels"],
    )
    assert status == 0, failure(job)


# --------------------------------------------------------------------------- early stopping


def test_early_stopping_stops_and_ships_the_best(recs, tmp_path, caplog):
    train_, val, n = recs
    status, job = run_job(
        tmp_path / "job",
        {"train": train_, "validation": val},
        _hp(
            n,
            epochs=12,
            early_stopping="True",
            early_stopping_min_epochs=2,
            early_stopping_patience=1,
            early_stopping_tolerance=0.9,
            learning_rate=0.01,
        ),
    )
    assert status == 0, failure(job)
    rows = (job / "output" / "data" / "metrics.csv").read_text().splitlines()[1:]
    assert 2 <= len(rows) < 12
    assert "Early stopping: validation accuracy has not improved by a relative 0.9" in caplog.text
    meta = read_meta(read_members(job / "model"))
    accs = [float(r.split(",")[4]) for r in rows]
    assert meta.checkpoints[0].validation_accuracy == max(accs)


# --------------------------------------------------------------------------- incremental and transfer learning


@pytest.fixture(scope="module")
def trained(recs, tmp_path_factory):
    train_, val, n = recs
    status, job = run_job(tmp_path_factory.mktemp("seed") / "job", {"train": train_, "validation": val}, _hp(n))
    assert status == 0, failure(job)
    from roost.formats.artifact import pack_model_dir

    return pack_model_dir(job / "model", job / "model.tar.gz")


def test_incremental_training(recs, trained, tmp_path, caplog):
    train_, val, n = recs
    status, job = run_job(
        tmp_path / "job", {"train": train_, "validation": val, "model": trained}, _hp(n, use_pretrained_model=1)
    )
    assert status == 0, failure(job)
    assert "Incremental training: starting from the weights in" in caplog.text
    assert "use_pretrained_model is ignored: a model channel was given" in caplog.text
    status, job = run_job(
        tmp_path / "job2",
        {"train": train_, "validation": val, "model": trained},
        _hp(n, image_shape="3,20,20", resize=24),
    )
    assert status == 1
    assert "these differ: image_shape (model: 3,16,16, this job: 3,20,20)" in failure(job)


def test_transfer_learning_from_converted_weights(recs, trained, tmp_path, monkeypatch, caplog):
    train_, val, n = recs
    weights = tmp_path / "pretrained"
    monkeypatch.setenv("ROOST_PRETRAINED_DIR", str(weights))
    status, job = run_job(tmp_path / "missing", {"train": train_, "validation": val}, _hp(n, use_pretrained_model=1))
    assert status == 1
    assert f"at {weights / 'resnet-8.safetensors'}" in failure(job) and "roost convert-weights" in failure(job)

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "convert-weights",
            str(trained),
            "--num-layers",
            "8",
            "--image-shape",
            "3,16,16",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "ROOST_PRETRAINED_DIR": str(weights)},
    )
    assert r.returncode == 0, r.stderr
    source = load_file(str(weights / "resnet-8.safetensors"))
    status, job = run_job(
        tmp_path / "job",
        {"train": train_, "validation": val},
        _hp(n, use_pretrained_model=1, epochs=1, learning_rate=0.0),
    )
    assert status == 0, failure(job)
    assert "Using pretrained model for initializing weights and transfer learning." in caplog.text
    meta = read_meta(read_members(job / "model"))
    assert meta.head == "fc"
    got = load_file(str(job / "model" / meta.model))
    # learning_rate 0: the body is exactly the pretrained one; the head is new
    assert torch.equal(got["stage2_unit1.conv1.weight"], source["stage2_unit1.conv1.weight"])
    assert "fc.weight" in got and "fc1.weight" not in got


def test_convert_mxnet_zoo_style_params(mxnet_fixtures, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "convert-weights",
            str(mxnet_fixtures / "model" / "resnet18_3x64x64" / "model.tar.gz"),
            "--num-layers",
            "18",
            "--image-shape",
            "3,64,64",
            "-o",
            str(tmp_path / "resnet-18.safetensors"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert load_file(str(tmp_path / "resnet-18.safetensors"))["conv0.weight"].shape == (64, 3, 7, 7)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "convert-weights",
            str(mxnet_fixtures / "model" / "resnet18_3x64x64" / "model.tar.gz"),
            "--num-layers",
            "34",
            "-o",
            str(tmp_path / "x.safetensors"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "is num_layers=34 right for these weights?" in r.stderr


# --------------------------------------------------------------------------- precision


def test_precision_plans():
    cpu = torch.device("cpu")
    assert precision_plan("float32", cpu).autocast_dtype is None
    assert precision_plan("float16", cpu, cpu_bf16=True).autocast_dtype == torch.bfloat16
    plan = precision_plan("float16", cpu, cpu_bf16=False)
    assert plan.autocast_dtype is None and "no native half precision" in plan.description


def test_mixed_precision_training_stays_finite(recs, tmp_path, caplog):
    train_, val, n = recs
    hp = parse_hyperparameters(_hp(n, precision_dtype="float16", epochs=2))
    files_t, files_v = [train_], [val]
    result = train(
        hp,
        ChannelData(recordio_samples(files_t, 3, False), files_t),
        ChannelData(recordio_samples(files_v, 3, False), files_v),
        tmp_path / "model",
        tmp_path / "out",
        workers=0,
        cpu_bf16=True,
    )
    assert "bfloat16 autocast" in caplog.text and "data type: <type 'numpy.float16'>" in caplog.text
    assert all(np.isfinite([m.train_loss, m.validation_loss]).all() for m in result.history)
    weights = load_file(str(tmp_path / "model" / result.model_file))
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


# --------------------------------------------------------------------------- resume


def _train_cmd(recs, job, *extra):
    train_, val, n = recs
    return [
        sys.executable,
        "-m",
        "roost",
        "train",
        "--train",
        str(train_),
        "--validation",
        str(val),
        "--output",
        str(job),
        "--workers",
        "0",
        *extra,
        *(f"{k}={v}" for k, v in _hp(n, epochs=6, learning_rate=0.02).items()),
    ]


def test_killed_run_resumes_where_it_stopped(recs, tmp_path):
    straight = subprocess.run(_train_cmd(recs, tmp_path / "straight"), capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr

    job = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(recs, job), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    state = job / "checkpoints" / "roost-training-state.pt"
    seen = ""
    for line in proc.stdout:  # kill it as soon as epoch 2 is checkpointed
        seen += line
        if "Epoch[2] Validation-accuracy" in line:
            deadline = time.time() + 30
            while time.time() < deadline and torch.load(state, weights_only=True)["progress"]["next_epoch"] < 3:
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and "Epoch[5]" not in seen
    resumed = subprocess.run(_train_cmd(recs, job, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in resumed.stdout and "Epoch[0] Train-accuracy" not in resumed.stdout
    assert "Epoch[5] Train-accuracy" in resumed.stdout

    a = read_meta(read_members(tmp_path / "straight" / "model.tar.gz"))
    b = read_meta(read_members(job / "model.tar.gz"))
    wa = load_file(str(tmp_path / "straight" / "model" / a.model))
    wb = load_file(str(job / "model" / b.model))
    assert a.model == b.model
    for k in wa:
        if wa[k].is_floating_point():
            assert torch.allclose(wa[k], wb[k], atol=1e-4, rtol=1e-3), k
    rows = (job / "output" / "data" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 7  # header + all six epochs, the first three from before the kill


def test_resume_refuses_other_hyperparameters(recs, tmp_path):
    job = tmp_path / "job"
    assert subprocess.run(_train_cmd(recs, job), capture_output=True).returncode == 0
    r = subprocess.run(_train_cmd(recs, job, "--resume") + ["learning_rate=0.5"], capture_output=True, text=True)
    assert r.returncode == 1 and "holds a run with other hyperparameters (learning_rate differ" in r.stderr
    r = subprocess.run(_train_cmd(recs, tmp_path / "fresh", "--resume"), capture_output=True, text=True)
    assert r.returncode == 2 and "holds no saved training state" in r.stderr
