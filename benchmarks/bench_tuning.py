"""Tuning jobs on real data: Bayesian against Random with the same budget, and what Auto early stopping saves.

The data: animal-mnist's silhouettes (10 classes, 28x28; the demo's), packed with Roost's im2rec. A real
``roost server`` runs every job; boto3 creates three tuning jobs of the same budget (12 training jobs, 2 at a
time) over SageMaker's most influential hyperparameters, ResNet-20 at 3,28,28 for a few epochs:

* ``Bayesian`` (Optuna's TPE);
* ``Random`` (the baseline);
* ``Random`` with the same seed and ``TrainingJobEarlyStoppingType=Auto``: the same 12 draws as the baseline (a seeded
  random sampler does not depend on results), so the difference is what early stopping stopped.

Prints, for each: the best validation accuracy, the wall time, the training seconds of all its jobs and how
many were stopped early; the ratios are against Random in the same run.

    .venv/bin/python benchmarks/bench_tuning.py [--jobs 12] [--epochs 6] [--per-class 150]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from roost.data import im2rec  # noqa: E402
from roost.data.samples import ANIMAL_CLASSES, export_animal_shapes  # noqa: E402
from roost.formats.lst import write_list  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import Server  # noqa: E402

RANGES = {
    "IntegerParameterRanges": [{"Name": "mini_batch_size", "MinValue": "16", "MaxValue": "128"}],
    "ContinuousParameterRanges": [
        {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.5"},
        {"Name": "momentum", "MinValue": "0", "MaxValue": "0.99"},
    ],
    "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam", "rmsprop", "nag"]}],
}


def data(folder: Path, per_class: int) -> tuple[Path, int]:
    export_animal_shapes(folder / "images", per_class, list(ANIMAL_CLASSES))
    split = im2rec.split_class_folders(folder / "images", val_ratio=0.2)
    for name, entries in (("train", split.train), ("validation", split.val)):
        (folder / name).mkdir()
        write_list(folder / name / f"{name}.lst", entries)
        im2rec.pack_list(folder / name / f"{name}.lst", folder / "images")
        (folder / name / f"{name}.lst").unlink()
        (folder / name / f"{name}.idx").unlink()
    return folder, len(split.train)


def tuning_request(name, strategy, folder, samples, jobs, epochs, early, seed) -> dict:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": jobs, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": RANGES,
            "TrainingJobEarlyStoppingType": early,
            "RandomSeed": seed,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "num_layers": "20",
                "image_shape": "3,28,28",
                "num_classes": str(len(ANIMAL_CLASSES)),
                "num_training_samples": str(samples),
                "epochs": str(epochs),
                "augmentation_type": "crop",
            },
            "AlgorithmSpecification": {"TrainingImage": "image-classification", "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::123456789012:role/bench",
            "InputDataConfig": [
                {
                    "ChannelName": ch,
                    "ContentType": "application/x-recordio",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(folder / ch)}},
                }
                for ch in ("train", "validation")
            ],
            "OutputDataConfig": {"S3OutputPath": str(folder / "output")},
            "HyperParameterTuningResourceConfig": {
                "InstanceType": "ml.m5.xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    }


def run(sm, req) -> dict:
    name = req["HyperParameterTuningJobName"]
    tic = time.perf_counter()
    sm.create_hyper_parameter_tuning_job(**req)
    while (d := sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name))[
        "HyperParameterTuningJobStatus"
    ] in ("InProgress", "Stopping"):
        time.sleep(2)
    wall = time.perf_counter() - tic
    jobs = []
    for page in sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=name
    ):
        jobs += page["TrainingJobSummaries"]
    seconds = sum(
        (j["TrainingEndTime"] - j["TrainingStartTime"]).total_seconds() for j in jobs if "TrainingEndTime" in j
    )
    values = [
        j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        for j in jobs
        if "FinalHyperParameterTuningJobObjectiveMetric" in j
    ]
    return {
        "status": d["HyperParameterTuningJobStatus"],
        "best": d.get("BestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value"),
        "best_params": d.get("BestTrainingJob", {}).get("TunedHyperParameters"),
        "median": statistics.median(values) if values else None,
        "wall": wall,
        "train_seconds": seconds,
        "stopped": d["TrainingJobStatusCounters"]["Stopped"],
        "jobs": len(jobs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1, help="RandomSeed of all three tuning jobs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
        folder, samples = data(Path(tmp) / "data", args.per_class)
        server = Server(Path(tmp) / "roost", roots=[tmp], max_concurrent_jobs=2).start()
        try:
            sm = server.client()
            results = {}
            for label, strategy, early in (
                ("Bayesian", "Bayesian", "Off"),
                ("Random", "Random", "Off"),
                ("Random + Auto early stopping", "Random", "Auto"),
            ):
                name = label.split()[0].lower() + ("-auto" if early == "Auto" else "")
                req = tuning_request(name, strategy, folder, samples, args.jobs, args.epochs, early, args.seed)
                results[label] = r = run(sm, req)
                print(f"{label}: {r}", flush=True)
        finally:
            server.stop()
    base = results["Random"]
    print(
        f"\n{args.jobs} jobs, 2 at a time, ResNet-20 3,28,28, {args.epochs} epochs, {samples} training images, "
        f"seed {args.seed}"
    )
    print("| search | best validation accuracy | median | wall s | training s | stopped early |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, r in results.items():
        print(
            f"| {label} | {r['best']:.4f} | {r['median']:.4f} | {r['wall']:.0f} ({r['wall'] / base['wall']:.2f}x) | "
            f"{r['train_seconds']:.0f} ({r['train_seconds'] / base['train_seconds']:.2f}x) | {r['stopped']} |"
        )


if __name__ == "__main__":
    main()
