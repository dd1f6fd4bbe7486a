"""Tuning jobs in-process: the API, every strategy, early stopping, completion, stop, restart, warm start.

The training jobs are fake (``fake_jobs``): each "learns" to the accuracy its
hyperparameters imply and logs one ``Validation-accuracy`` line per epoch, so a
test knows which job is best and which is hopeless without training anything.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from fake_jobs import FakeLauncher
from helpers import Api
from roost.aws import ServiceError
from roost.server import Settings, build
from roost.storage.database import open_database, optuna_storage
from roost.tuning.search import SearchSpace

#: how long a fake epoch takes; the tests of pruning slow them so the tuner sees a job before it ends
PACE = {"epoch": 0.03}


def learner(layout, emit, terminated: threading.Event) -> int:
    """Accuracy rises towards a ceiling set by learning_rate (best near 0.1) and optimizer; one line per epoch."""
    hp = layout.read_hyperparameters()
    lr = float(hp.get("learning_rate", "0.1"))
    # never below 0.05: a negative accuracy would match no metric regex, and the job's objective would count as
    # Failed (lr near 0.5 with adam did, in a few runs out of a hundred)
    ceiling = max(0.05, 0.95 - abs(lr - 0.1) * 2 - (0.2 if hp.get("optimizer") == "adam" else 0.0))
    epochs = int(hp.get("epochs", "5"))
    for epoch in range(epochs):
        if terminated.wait(PACE["epoch"]):
            emit("Stop requested (SIGTERM)")
            return 0
        accuracy = ceiling * (1 - 0.5 ** (epoch + 1))
        emit(f"Epoch[{epoch}] Train-accuracy={accuracy:f}")
        emit(f"Epoch[{epoch}] Validation-accuracy={accuracy:f}")
    layout.model.mkdir(parents=True, exist_ok=True)
    (layout.model / "weights.bin").write_bytes(b"w")
    return 0


class Env:
    """The server as ``roost server`` builds it (``roost.server.build``), with a fake launcher and fast polling."""

    def __init__(self, url, tmp_path):
        self.url, self.tmp = url, tmp_path
        self.sessions = open_database(url)
        self.storage = optuna_storage(url)
        self.launcher = FakeLauncher()
        self.launcher.default = learner
        self.start()

    def start(self):
        settings = Settings(
            data_dir=self.tmp / "data",
            database_url=self.url,
            data_roots=[self.tmp],
            poll=0.02,
            stop_grace=0.5,
            max_concurrent_jobs=4,
            keys={"test": "test"},
        )
        self.server = build(settings, launcher=self.launcher, console=False)
        self.runner, self.tuner, self.training = self.server.runner, self.server.tuner, self.server.training
        self.api = Api(*self.server.services)
        self.server.start()

    def stop(self):
        self.server.stop()
        self.server.release()

    def wait(self, name, timeout=60.0, statuses=("Completed", "Failed", "Stopped")) -> dict:
        deadline = time.time() + timeout
        while True:
            d = self.api("DescribeHyperParameterTuningJob", {"HyperParameterTuningJobName": name})
            if d["HyperParameterTuningJobStatus"] in statuses:
                return d
            assert time.time() < deadline, f"{name} is still {d['HyperParameterTuningJobStatus']}: {d}"
            time.sleep(0.05)

    def jobs(self, name, **extra) -> list[dict]:
        out, token = [], None
        while True:
            page = self.api(
                "ListTrainingJobsForHyperParameterTuningJob",
                {
                    "HyperParameterTuningJobName": name,
                    "MaxResults": 2,
                    **extra,
                    **({"NextToken": token} if token else {}),
                },
            )
            out += page["TrainingJobSummaries"]
            token = page.get("NextToken")
            if not token:
                return out


@pytest.fixture()
def env(database_url, tmp_path):
    (tmp_path / "channel").mkdir()
    (tmp_path / "channel" / "train.rec").write_bytes(b"x")
    e = Env(database_url, tmp_path)
    yield e
    e.stop()


def request(tmp_path, name="tune", strategy="Random", max_jobs=4, parallel=2, ranges=None, **config) -> dict:
    channel = str(tmp_path / "channel")
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
            "ResourceLimits": {
                **({"MaxNumberOfTrainingJobs": max_jobs} if max_jobs is not None else {}),
                "MaxParallelTrainingJobs": parallel,
            },
            "ParameterRanges": ranges
            or {
                "IntegerParameterRanges": [],
                "ContinuousParameterRanges": [
                    {"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.5", "ScalingType": "Auto"}
                ],
                "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam"]}],
            },
            "TrainingJobEarlyStoppingType": "Off",
            **config,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"num_classes": "2", "num_training_samples": "40", "epochs": "5"},
            "AlgorithmSpecification": {"TrainingImage": "image-classification", "TrainingInputMode": "File"},
            "RoleArn": "arn:aws:iam::123456789012:role/r",
            "InputDataConfig": [
                {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": channel}}},
                {
                    "ChannelName": "validation",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": channel}},
                },
            ],
            "OutputDataConfig": {"S3OutputPath": (tmp_path / "output").as_uri()},
            "HyperParameterTuningResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        "Tags": [{"Key": "team", "Value": "birds"}],
    }


def categorical(**values) -> dict:
    return {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [{"Name": k, "Values": v} for k, v in values.items()],
    }


def test_a_random_search_runs_its_jobs_and_names_the_best(env):
    arn = env.api("CreateHyperParameterTuningJob", request(env.tmp))["HyperParameterTuningJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:hyper-parameter-tuning-job/tune"
    d = env.wait("tune")
    assert d["HyperParameterTuningJobStatus"] == "Completed", d.get("FailureReason")
    assert d["TrainingJobStatusCounters"] == {
        "Completed": 4,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert d["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    jobs = env.jobs("tune")
    assert len(jobs) == 4 and [j["TrainingJobName"][:9] for j in jobs] == sorted(
        {f"tune-00{i}-" for i in range(1, 5)}, reverse=True
    )
    values = [j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in jobs]
    assert d["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == max(values)
    by_objective = env.jobs("tune", SortBy="FinalObjectiveMetricValue")
    assert [j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in by_objective] == sorted(
        values, reverse=True
    )
    best = env.api("DescribeTrainingJob", {"TrainingJobName": d["BestTrainingJob"]["TrainingJobName"]})
    assert best["TuningJobArn"] == arn
    assert best["HyperParameters"]["_tuning_objective_metric"] == "validation:accuracy"
    assert best["HyperParameters"]["learning_rate"] == d["BestTrainingJob"]["TunedHyperParameters"]["learning_rate"]
    assert 0.001 <= float(best["HyperParameters"]["learning_rate"]) <= 0.5
    tags = (
        env.api("ListTags", {"ResourceArn": best["TrainingJobArn"]}) if "SageMaker.ListTags" in env.api.table else None
    )
    assert tags is None or tags["Tags"] == [{"Key": "team", "Value": "birds"}]
    listed = env.api("ListHyperParameterTuningJobs", {})["HyperParameterTuningJobSummaries"]
    assert [
        (t["HyperParameterTuningJobName"], t["Strategy"], t["TrainingJobStatusCounters"]["Completed"]) for t in listed
    ] == [("tune", "Random", 4)]


def test_a_step_the_database_refuses_is_retried_not_a_failed_tuning_job(env, monkeypatch):
    """PostgreSQL breaks a deadlock by failing one transaction; the tuner's step was rolled back whole, so the
    next tick takes it up again instead of failing the tuning job."""
    from sqlalchemy.exc import OperationalError

    advance, refused = env.tuner.advance, []

    def refuse_twice(name):
        if len(refused) < 2:
            refused.append(name)
            raise OperationalError("UPDATE status_transitions", {}, Exception("deadlock detected"))
        return advance(name)

    monkeypatch.setattr(env.tuner, "advance", refuse_twice)
    env.api("CreateHyperParameterTuningJob", request(env.tmp))
    d = env.wait("tune")
    assert refused == ["tune", "tune"]
    assert d["HyperParameterTuningJobStatus"] == "Completed", d.get("FailureReason")


def test_the_same_seed_draws_the_same_points(env):
    for name in ("seeded-a", "seeded-b"):
        req = request(env.tmp, name, max_jobs=3, parallel=1, RandomSeed=7)
        env.api("CreateHyperParameterTuningJob", req)
        env.wait(name)
    drawn = [
        [j["TunedHyperParameters"] for j in env.jobs(n, SortBy="CreationTime", SortOrder="Ascending")]
        for n in ("seeded-a", "seeded-b")
    ]
    assert drawn[0] == drawn[1] and len({json.dumps(p) for p in drawn[0]}) == 3


def test_grid_runs_every_combination_once_even_in_parallel(env):
    ranges = categorical(learning_rate=["0.05", "0.1", "0.2"], optimizer=["sgd", "adam"])
    env.api("CreateHyperParameterTuningJob", request(env.tmp, "grid", "Grid", max_jobs=None, parallel=4, ranges=ranges))
    d = env.wait("grid")
    assert d["HyperParameterTuningJobStatus"] == "Completed"
    assert d["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 6
    points = sorted(tuple(sorted(j["TunedHyperParameters"].items())) for j in env.jobs("grid"))
    assert points == sorted(
        (("learning_rate", lr), ("optimizer", o)) for lr in ("0.05", "0.1", "0.2") for o in ("sgd", "adam")
    )
    assert d["BestTrainingJob"]["TunedHyperParameters"] == {"learning_rate": "0.1", "optimizer": "sgd"}


def test_auto_early_stopping_stops_a_hopeless_job(env):
    values = ["0.1", "0.12", "0.09", "0.5"]  # 0.5 is hopeless
    seed = next(
        s
        for s in range(100)
        if SearchSpace.parse(categorical(learning_rate=values), {}).grid(s, 750)[-1] == {"learning_rate": "0.5"}
    )
    req = request(
        env.tmp,
        "early",
        "Grid",
        max_jobs=None,
        parallel=1,
        ranges=categorical(learning_rate=values),
        RandomSeed=seed,
        TrainingJobEarlyStoppingType="Auto",
    )
    req["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] = "30"
    env.api("CreateHyperParameterTuningJob", req)
    d = env.wait("early")
    assert d["HyperParameterTuningJobStatus"] == "Completed"
    jobs = {j["TunedHyperParameters"]["learning_rate"]: j for j in env.jobs("early")}
    assert jobs["0.5"]["TrainingJobStatus"] == "Stopped", jobs["0.5"]
    assert all(jobs[v]["TrainingJobStatus"] == "Completed" for v in values[:3])
    assert d["TrainingJobStatusCounters"]["Stopped"] == 1 and d["ObjectiveStatusCounters"]["Succeeded"] == 4
    assert d["BestTrainingJob"]["TunedHyperParameters"]["learning_rate"] == "0.1"
    transitions = env.api("DescribeTrainingJob", {"TrainingJobName": jobs["0.5"]["TrainingJobName"]})[
        "SecondaryStatusTransitions"
    ]
    assert any(
        "Auto early stopping of tuning job early stopped it after epoch" in t["StatusMessage"] for t in transitions
    )


def test_resource_config_works_as_well_as_the_sdks_tuning_resource_config(env):
    req = request(env.tmp, "classic", max_jobs=1, parallel=1)
    definition = req["TrainingJobDefinition"]
    definition["ResourceConfig"] = {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5}
    del definition["HyperParameterTuningResourceConfig"]
    env.api("CreateHyperParameterTuningJob", req)
    assert env.wait("classic")["HyperParameterTuningJobStatus"] == "Completed"
    job = env.api("DescribeTrainingJob", {"TrainingJobName": env.jobs("classic")[0]["TrainingJobName"]})
    assert job["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"


def test_max_runtime_ends_the_tuning_job(env):
    from sqlalchemy import func, select

    from roost.storage.tables import TuningJob, TuningTrial

    req = request(env.tmp, "timed", max_jobs=50, parallel=1)
    req["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxRuntimeInSeconds"] = 120
    req["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] = "10000"
    env.api("CreateHyperParameterTuningJob", req)
    deadline = time.time() + 20
    while not env.sessions().scalar(select(func.max(TuningTrial.reported))):  # the first job's first epochs
        assert time.time() < deadline
        time.sleep(0.02)
    with env.sessions.begin() as s:  # two minutes pass
        s.get(TuningJob, "timed").creation_time -= 121
    d = env.wait("timed")
    assert d["HyperParameterTuningJobStatus"] == "Completed" and len(env.jobs("timed")) == 1
    assert d["TrainingJobStatusCounters"]["Stopped"] == 1 and d["BestTrainingJob"]
    assert d["ConsumedResources"]["RuntimeInSeconds"] >= 121


def test_convergence_ends_the_tuning_job_when_enabled(env):
    req = request(
        env.tmp,
        "converged",
        max_jobs=30,
        parallel=3,
        ranges=categorical(learning_rate=["0.1"]),
        TuningJobCompletionCriteria={"ConvergenceDetected": {"CompleteOnConvergence": "Enabled"}},
    )
    env.api("CreateHyperParameterTuningJob", req)
    d = env.wait("converged")
    assert (
        d["HyperParameterTuningJobStatus"] == "Completed"
        and "ConvergenceDetectedTime" in d["TuningJobCompletionDetails"]
    )
    assert 10 <= len(env.jobs("converged")) < 30


def test_hyperband_stops_low_fidelity_losers(env, monkeypatch):
    monkeypatch.setitem(PACE, "epoch", 0.1)
    req = request(
        env.tmp,
        "hb",
        "Hyperband",
        max_jobs=9,
        parallel=3,
        RandomSeed=3,
        StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}},
    )
    env.api("CreateHyperParameterTuningJob", req)
    d = env.wait("hb")
    assert d["HyperParameterTuningJobStatus"] == "Completed"
    jobs = env.jobs("hb")
    assert len(jobs) == 9 and d["TrainingJobStatusCounters"]["Stopped"] >= 1
    described = env.api("DescribeTrainingJob", {"TrainingJobName": jobs[0]["TrainingJobName"]})
    assert described["HyperParameters"]["epochs"] == "9"  # every job may go to MaxResource


def test_stopping_a_tuning_job_stops_its_training_jobs(env):
    req = request(env.tmp, "halt", max_jobs=10, parallel=2)
    req["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] = "10000"
    env.api("CreateHyperParameterTuningJob", req)
    deadline = time.time() + 20
    while not env.jobs("halt"):
        assert time.time() < deadline
        time.sleep(0.05)
    env.api("StopHyperParameterTuningJob", {"HyperParameterTuningJobName": "halt"})
    d = env.wait("halt")
    assert d["HyperParameterTuningJobStatus"] == "Stopped"
    assert d["TrainingJobStatusCounters"]["InProgress"] == 0 and d["TrainingJobStatusCounters"]["Stopped"] >= 1
    with pytest.raises(ServiceError) as err:
        env.api("StopHyperParameterTuningJob", {"HyperParameterTuningJobName": "halt"})
    assert err.value.code == "ValidationException"
    env.api("DeleteHyperParameterTuningJob", {"HyperParameterTuningJobName": "halt"})
    with pytest.raises(ServiceError) as err:
        env.api("DescribeHyperParameterTuningJob", {"HyperParameterTuningJobName": "halt"})
    assert err.value.code == "ResourceNotFound"
    # the training jobs, their artifacts and logs stay
    assert env.api("ListTrainingJobs", {"NameContains": "halt-"})["TrainingJobSummaries"]


def test_a_restarted_server_carries_the_tuning_job_on(env, monkeypatch):
    req = request(env.tmp, "again", max_jobs=3, parallel=1)
    req["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] = "200"
    env.api("CreateHyperParameterTuningJob", req)
    deadline = time.time() + 20
    while (
        not env.jobs("again")
        or env.api("DescribeTrainingJob", {"TrainingJobName": env.jobs("again")[0]["TrainingJobName"]})[
            "SecondaryStatus"
        ]
        != "Training"
    ):
        assert time.time() < deadline
        time.sleep(0.02)
    env.stop()  # the server goes down with a job running
    monkeypatch.setitem(PACE, "epoch", 0.002)
    env.start()
    d = env.wait("again")
    assert d["HyperParameterTuningJobStatus"] == "Completed", d.get("FailureReason")
    jobs = env.jobs("again", SortBy="CreationTime", SortOrder="Ascending")
    assert jobs[0]["TrainingJobStatus"] == "Failed" and d["TrainingJobStatusCounters"]["RetryableError"] == 1
    # the interrupted point runs again, and the budget of 3 evaluated jobs is kept
    assert jobs[1]["TunedHyperParameters"] == jobs[0]["TunedHyperParameters"]
    assert d["ObjectiveStatusCounters"]["Succeeded"] == 3 and len(jobs) == 4


def test_a_target_value_ends_the_tuning_job_early(env):
    req = request(
        env.tmp,
        "target",
        max_jobs=20,
        parallel=1,
        ranges=categorical(learning_rate=["0.1"]) | {},
        TuningJobCompletionCriteria={"TargetObjectiveMetricValue": 0.5},
    )
    env.api("CreateHyperParameterTuningJob", req)
    d = env.wait("target")
    assert d["HyperParameterTuningJobStatus"] == "Completed" and len(env.jobs("target")) < 20


def test_no_improvement_ends_the_tuning_job(env):
    req = request(
        env.tmp,
        "flat",
        max_jobs=20,
        parallel=1,
        ranges=categorical(learning_rate=["0.1"]),
        TuningJobCompletionCriteria={"BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 3}},
    )
    env.api("CreateHyperParameterTuningJob", req)
    d = env.wait("flat")
    assert d["HyperParameterTuningJobStatus"] == "Completed"
    assert (
        len(env.jobs("flat")) == 4 and d["TuningJobCompletionDetails"]["NumberOfTrainingJobsObjectiveNotImproving"] == 3
    )


def test_a_definition_every_job_fails_fails_the_tuning_job(env):
    env.launcher.default = lambda layout, emit, terminated: (layout.write_failure("ClientError: bad data"), 1)[1]
    env.api("CreateHyperParameterTuningJob", request(env.tmp, "doomed", max_jobs=10, parallel=1))
    d = env.wait("doomed")
    assert d["HyperParameterTuningJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("All training jobs failed.") and "ClientError: bad data" in d["FailureReason"]
    assert d["TrainingJobStatusCounters"]["NonRetryableError"] == 3 and len(env.jobs("doomed")) == 3


def test_warm_start_from_a_parent(env):
    env.api("CreateHyperParameterTuningJob", request(env.tmp, "parent", max_jobs=3, parallel=3))
    parent = env.wait("parent")
    child = request(env.tmp, "child", max_jobs=2, parallel=1)
    child["WarmStartConfig"] = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parent"}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    env.api("CreateHyperParameterTuningJob", child)
    d = env.wait("child")
    assert d["HyperParameterTuningJobStatus"] == "Completed" and len(env.jobs("child")) == 2
    overall = d["OverallBestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    values = [parent["BestTrainingJob"], d["BestTrainingJob"]]
    assert overall == max(v["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for v in values)
    assert d["WarmStartConfig"]["WarmStartType"] == "IdenticalDataAndAlgorithm"
    changed = request(env.tmp, "child2", max_jobs=2, parallel=1)
    changed["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"] = "6"
    changed["WarmStartConfig"] = child["WarmStartConfig"]
    with pytest.raises(ServiceError, match="TransferLearning"):
        env.api("CreateHyperParameterTuningJob", changed)
    changed["WarmStartConfig"] = {**child["WarmStartConfig"], "WarmStartType": "TransferLearning"}
    env.api("CreateHyperParameterTuningJob", changed)
    assert env.wait("child2")["HyperParameterTuningJobStatus"] == "Completed"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][0].update(
                MaxValue="2"
            ),
            "learning_rate allows '2.0'",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"].append(
                {"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "64"}
            ),
            "takes integers",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"].append(
                {"Name": "mini_batch_sise", "MinValue": "8", "MaxValue": "64"}
            ),
            "did you mean 'mini_batch_size'",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][0].update(
                MinValue="0", ScalingType="Logarithmic"
            ),
            "needs MinValue > 0",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][0].update(
                MinValue="0.3", MaxValue="0.1"
            ),
            "must not be larger",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"].append(
                {"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "64", "ScalingType": "ReverseLogarithmic"}
            ),
            "continuous ranges only",
        ),
        (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Grid"), "categorical ranges only"),
        (
            lambda r: r["HyperParameterTuningJobConfig"].update(
                ParameterRanges=categorical(optimizer=["sgd", "adam"]), Strategy="Grid"
            ),
            "combinations of the categorical values, 2",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"].update(
                Strategy="Hyperband", TrainingJobEarlyStoppingType="Auto"
            ),
            "must be Off for the Hyperband",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"].update(
                MetricName="validation:loss"
            ),
            "not one the training jobs emit",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"].update(
                ParameterRanges={
                    "IntegerParameterRanges": [],
                    "ContinuousParameterRanges": [],
                    "CategoricalParameterRanges": [],
                }
            ),
            "has no range",
        ),
        (lambda r: r["TrainingJobDefinition"]["StaticHyperParameters"].pop("num_classes"), "num_classes is required"),
        (
            lambda r: r["TrainingJobDefinition"]["InputDataConfig"][0]["DataSource"]["S3DataSource"].update(
                S3Uri=r["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"] + "/nowhere"
            ),
            "No S3 objects found",
        ),
        (
            lambda r: r["HyperParameterTuningJobConfig"]["ResourceLimits"].update(MaxParallelTrainingJobs=0),
            "greater than or equal to 1",
        ),
    ],
)
def test_bad_requests_are_refused_with_what_to_fix(env, change, words):
    req = request(env.tmp, "bad")
    change(req)
    with pytest.raises(ServiceError) as err:
        env.api("CreateHyperParameterTuningJob", req)
    assert err.value.code == "ValidationException" and words in err.value.message, err.value.message


def test_names_are_unique_and_unknown_ones_are_not_found(env):
    env.api("CreateHyperParameterTuningJob", request(env.tmp, "once", max_jobs=1, parallel=1))
    with pytest.raises(ServiceError) as err:
        env.api("CreateHyperParameterTuningJob", request(env.tmp, "once", max_jobs=1, parallel=1))
    assert err.value.code == "ResourceInUse" and "with the name, once, already exists" in err.value.message
    for op in (
        "DescribeHyperParameterTuningJob",
        "StopHyperParameterTuningJob",
        "ListTrainingJobsForHyperParameterTuningJob",
    ):
        with pytest.raises(ServiceError) as err:
            env.api(op, {"HyperParameterTuningJobName": "never"})
        assert err.value.code == "ResourceNotFound"
    with pytest.raises(ServiceError) as err:
        env.api("CreateHyperParameterTuningJob", request(env.tmp, "toomany", max_jobs=1, parallel=101))
    assert err.value.code == "ResourceLimitExceeded"
    env.wait("once")


def test_grid_points_left_waiting_by_a_crash_still_run_once(env):
    """A crash between enqueueing a grid point and asking for it leaves it waiting in the study; the point
    must not run twice when the tuner comes back."""
    import optuna

    env.tuner.shutdown()  # the test drives the tuner by hand
    values = ["0.05", "0.1", "0.2"]
    req = request(env.tmp, "leftover", "Grid", max_jobs=None, parallel=1, ranges=categorical(learning_rate=values))
    env.api("CreateHyperParameterTuningJob", req)
    study = optuna.create_study(study_name="leftover", storage=env.storage, direction="maximize", load_if_exists=True)
    first = SearchSpace.parse(categorical(learning_rate=values), {}).grid(None, 750)[0]
    for _ in range(2):
        study.enqueue_trial(first, skip_if_exists=False)
    deadline = time.time() + 60
    while (
        env.api("DescribeHyperParameterTuningJob", {"HyperParameterTuningJobName": "leftover"})[
            "HyperParameterTuningJobStatus"
        ]
        == "InProgress"
    ):
        assert time.time() < deadline
        env.tuner.tick()
        time.sleep(0.05)
    ran = sorted(j["TunedHyperParameters"]["learning_rate"] for j in env.jobs("leftover"))
    assert ran == sorted(values)
