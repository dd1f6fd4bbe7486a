"""Tuning jobs through a real ``roost server`` and boto3, training real (tiny) models: Grid in parallel, stop,
bad ranges, and a server killed in the middle of a tuning job that carries on when it is back."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from helpers import Server, training_request

pytestmark = pytest.mark.slow


def tuning_request(recs, tmp_path, name, strategy, ranges, max_jobs=None, parallel=2, epochs=2, **config) -> dict:
    job = training_request(recs, tmp_path, epochs=epochs)
    static = {
        k: v for k, v in job["HyperParameters"].items() if k not in {r["Name"] for rs in ranges.values() for r in rs}
    }
    limits = {"MaxParallelTrainingJobs": parallel} | ({"MaxNumberOfTrainingJobs": max_jobs} if max_jobs else {})
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
            "ResourceLimits": limits,
            "ParameterRanges": {
                "IntegerParameterRanges": [],
                "ContinuousParameterRanges": [],
                "CategoricalParameterRanges": [],
                **ranges,
            },
            **config,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            **{
                k: job[k]
                for k in (
                    "AlgorithmSpecification",
                    "RoleArn",
                    "InputDataConfig",
                    "OutputDataConfig",
                    "StoppingCondition",
                )
            },
            "ResourceConfig": job["ResourceConfig"],
        },
    }


def wait(sm, name, timeout=300) -> dict:
    deadline = time.time() + timeout
    while (d := sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name))[
        "HyperParameterTuningJobStatus"
    ] in ("InProgress", "Stopping"):
        assert time.time() < deadline, d
        time.sleep(0.5)
    return d


def jobs(sm, name) -> list[dict]:
    pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=name, SortBy="CreationTime", SortOrder="Ascending"
    )
    return [j for p in pages for j in p["TrainingJobSummaries"]]


def test_grid_stop_and_bad_ranges_with_boto3(recs, tmp_path):
    srv = Server(tmp_path / "srv", max_concurrent_jobs=2).start()
    try:
        sm = srv.client()
        grid = {"CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam", "nag"]}]}
        sm.create_hyper_parameter_tuning_job(**tuning_request(recs, tmp_path, "grid", "Grid", grid, parallel=3))
        d = wait(sm, "grid")
        assert d["HyperParameterTuningJobStatus"] == "Completed"
        assert d["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 3
        assert sorted(j["TunedHyperParameters"]["optimizer"] for j in jobs(sm, "grid")) == ["adam", "nag", "sgd"]
        assert {j["TrainingJobStatus"] for j in jobs(sm, "grid")} == {"Completed"}

        lr = {"ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.01", "MaxValue": "0.1"}]}
        long = tuning_request(recs, tmp_path, "halted", "Random", lr, max_jobs=5, epochs=500)
        sm.create_hyper_parameter_tuning_job(**long)
        deadline = time.time() + 60
        while not any(j["TrainingJobStatus"] == "InProgress" for j in jobs(sm, "halted")):
            assert time.time() < deadline
            time.sleep(0.3)
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="halted")
        assert sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="halted")[
            "HyperParameterTuningJobStatus"
        ] in ("Stopping", "Stopped")
        d = wait(sm, "halted")
        assert d["HyperParameterTuningJobStatus"] == "Stopped" and d["TrainingJobStatusCounters"]["InProgress"] == 0
        summaries = sm.list_hyper_parameter_tuning_jobs(SortBy="Name", SortOrder="Ascending")
        assert [t["HyperParameterTuningJobName"] for t in summaries["HyperParameterTuningJobSummaries"]] == [
            "grid",
            "halted",
        ]

        bad = tuning_request(
            recs,
            tmp_path,
            "bad",
            "Random",
            {"IntegerParameterRanges": [{"Name": "mini_batch_size", "MinValue": "4", "MaxValue": "100"}]},
            max_jobs=2,
        )
        with pytest.raises(ClientError) as err:
            sm.create_hyper_parameter_tuning_job(**bad)
        e = err.value.response["Error"]
        assert e["Code"] == "ValidationException" and "mini_batch_size allows '100'" in e["Message"]
        assert "num_training_samples" in e["Message"]  # the rule that refuses it, in the schema's words
        with pytest.raises(ClientError) as err:
            sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="bad")
        assert err.value.response["Error"]["Code"] == "ResourceNotFound"
    finally:
        srv.stop()


def test_a_server_killed_mid_tuning_carries_on_after_a_restart(recs, tmp_path):
    srv = Server(tmp_path / "srv").start()
    lr = {"ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.01", "MaxValue": "0.1"}]}
    try:
        sm = srv.client()
        sm.create_hyper_parameter_tuning_job(
            **tuning_request(
                recs, tmp_path, "survivor", "Bayesian", lr, max_jobs=2, parallel=1, epochs=30, RandomSeed=5
            )
        )
        deadline = time.time() + 120
        while not (
            (listed := jobs(sm, "survivor"))
            and sm.describe_training_job(TrainingJobName=listed[0]["TrainingJobName"])["SecondaryStatus"] == "Training"
        ):
            assert time.time() < deadline
            time.sleep(0.3)
        srv.kill()  # no goodbye: the training job's process goes with it
    finally:
        srv.stop()
    again = Server(tmp_path / "srv").start()
    try:
        sm = again.client()
        d = wait(sm, "survivor", timeout=600)
        assert d["HyperParameterTuningJobStatus"] == "Completed", d.get("FailureReason")
        listed = jobs(sm, "survivor")
        assert (
            listed[0]["TrainingJobStatus"] == "Failed"
            and "server stopped while this job was running" in listed[0]["FailureReason"]
        )
        assert (
            d["TrainingJobStatusCounters"]["RetryableError"] == 1 and d["TrainingJobStatusCounters"]["Completed"] == 2
        )
        assert listed[1]["TunedHyperParameters"] == listed[0]["TunedHyperParameters"]  # the interrupted point again
    finally:
        again.stop()
