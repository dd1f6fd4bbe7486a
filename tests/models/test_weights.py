"""Starting weights: incremental training, transfer learning from converted weights, roost convert-weights."""

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from helpers import BASE_HP, failure, run_job
from roost.formats.artifact import read_members, read_meta


def _hp(n, **extra):
    return {**BASE_HP, "num_training_samples": n, **extra}


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


@pytest.mark.slow
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
