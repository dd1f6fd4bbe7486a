"""Resumable training state: a killed run resumes where it stopped, and only with its own hyperparameters."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from helpers import BASE_HP
from roost.formats.artifact import read_members, read_meta

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


def _hp(n, **extra):
    return {**BASE_HP, "num_training_samples": n, **extra}


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
