"""The training loop: early stopping and mixed precision."""

import numpy as np
import torch
from safetensors.torch import load_file

from helpers import BASE_HP, failure, run_job
from roost.algorithm.hyperparameters import parse_hyperparameters
from roost.algorithm.metrics import EpochMetrics
from roost.algorithm.train import should_stop_early, train
from roost.data.channels import ChannelData, recordio_samples
from roost.formats.artifact import read_members, read_meta


def _hp(n, **extra):
    return {**BASE_HP, "num_training_samples": n, **extra}


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
