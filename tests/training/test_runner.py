"""The job runner in-process, with a fake launcher: statuses, logs, artifacts, stop, max runtime, queueing, restart.

No algorithm runs here: each fake job is a small script that writes what the
container would (log lines, model files, output/failure) and ends the way the
test needs, so a runner failure shows as exactly that.
"""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest

from fake_jobs import FakeLauncher, Script
from helpers import wait_until_ended
from roost.algorithm.layout import JobLayout
from roost.cloudwatch.logs import LogService
from roost.storage.database import open_database
from roost.storage.tables import TrainingJob
from roost.training.runner import JobRunner
from roost.training.service import TrainingJobService


def trains(accuracy: float = 0.75) -> Script:
    def script(layout: JobLayout, emit, terminated) -> int:
        emit("Epoch[0] Train-accuracy=0.500000")
        emit(f"Epoch[0] Validation-accuracy={accuracy:f}")
        layout.model.mkdir(parents=True, exist_ok=True)
        (layout.model / "weights.bin").write_bytes(b"w")
        return 0

    return script


def quiet(layout: JobLayout, emit, terminated) -> int:
    emit("algo-2 (rank 1) finished its share")
    return 0


def fails_with(reason: str | None, rc: int = 1) -> Script:
    def script(layout: JobLayout, emit, terminated) -> int:
        emit("something went wrong")
        if reason is not None:
            layout.write_failure(reason)
        return rc

    return script


def runs_until_stopped(honours_sigterm: bool = True) -> Script:
    def script(layout: JobLayout, emit, terminated) -> int:
        emit("training")
        layout.model.mkdir(parents=True, exist_ok=True)
        while not terminated.wait(0.02):
            pass
        if not honours_sigterm:
            time.sleep(60)  # only kill() ends this one (the runner ignores what it does after)
        (layout.model / "weights.bin").write_bytes(b"kept")
        emit("Stop requested (SIGTERM)")
        return 0

    return script


@pytest.fixture()
def env(database_url, tmp_path):
    sessions = open_database(database_url)
    launcher = FakeLauncher()
    runner = JobRunner(sessions, tmp_path / "data", poll=0.02, stop_grace=0.3, launcher=launcher)
    service = TrainingJobService(sessions)
    (tmp_path / "channel").mkdir()
    (tmp_path / "channel" / "train.rec").write_bytes(b"x")
    yield runner, service, launcher, tmp_path
    runner.shutdown()


def create(service, launcher, tmp_path, name, script, **extra) -> str:
    launcher.scripts[name] = script
    channel = str(tmp_path / "channel")
    req = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "image-classification", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "OutputDataConfig": {"S3OutputPath": (tmp_path / "output").as_uri()},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {"num_classes": "2", "num_training_samples": "40", "epochs": "1"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "application/x-recordio",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": channel}},
            },
            {"ChannelName": "validation", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": channel}}},
        ],
    }
    req.update(extra)
    service.create_training_job(req)
    return name


def wait_done(service, name, timeout=20.0) -> dict:
    return wait_until_ended(service, name, timeout)


def wait_secondary(service, name, secondary, timeout=20.0) -> None:
    deadline = time.time() + timeout
    while service.describe_training_job({"TrainingJobName": name})["SecondaryStatus"] != secondary:
        assert time.time() < deadline, f"{name} never reached {secondary}"
        time.sleep(0.02)


def test_a_job_runs_to_completion_with_its_artifact_metrics_and_log(env):
    runner, service, launcher, tmp_path = env
    create(service, launcher, tmp_path, "ok", trains(0.75))
    runner.start()
    d = wait_done(service, "ok")
    assert d["TrainingJobStatus"] == "Completed" and d["SecondaryStatus"] == "Completed"
    assert [(t["Status"], t["StatusMessage"]) for t in d["SecondaryStatusTransitions"]] == [
        ("Starting", "Preparing the instances for training"),  # one Starting step, its latest message
        ("Downloading", "Downloading input data"),
        ("Training", "Training image download completed. Training in progress."),
        ("Uploading", "Uploading generated training model"),
        ("Completed", "Training job completed"),
    ]
    artifact = Path(d["ModelArtifacts"]["S3ModelArtifacts"])
    assert artifact == tmp_path / "output" / "ok" / "output" / "model.tar.gz" and artifact.is_file()
    metrics = {m["MetricName"]: m["Value"] for m in d["FinalMetricDataList"]}
    assert metrics == {"train:accuracy": 0.5, "validation:accuracy": 0.75}

    root, job_env = launcher.launched["ok"]
    layout = JobLayout(root)
    assert job_env["TRAINING_JOB_ARN"] == d["TrainingJobArn"] and int(job_env["ROOST_THREADS"]) >= 1
    assert layout.read_hyperparameters()["epochs"] == "1"
    channels = layout.read_channels()
    assert channels["train"].content_type == "application/x-recordio" and channels["train"].s3_data_type == "S3Prefix"
    assert channels["validation"].content_type is None and channels["validation"].training_input_mode == "File"
    assert (layout.channel("train") / "train.rec").is_file()
    assert (root.parent / "training.log").read_text().splitlines()[-1] == "Epoch[0] Validation-accuracy=0.750000"


def test_failures_carry_the_algorithms_reason_or_say_how_it_ended(env):
    runner, service, launcher, tmp_path = env
    create(service, launcher, tmp_path, "client", fails_with("ClientError: label 3 is outside 0..1"))
    create(service, launcher, tmp_path, "crash", fails_with(None, rc=-11))
    runner.start()
    assert wait_done(service, "client")["FailureReason"] == "ClientError: label 3 is outside 0..1"
    d = wait_done(service, "crash")
    assert d["TrainingJobStatus"] == "Failed" and not Path(d["ModelArtifacts"]["S3ModelArtifacts"]).exists()
    assert d["FailureReason"].startswith("AlgorithmError: the algorithm was killed by signal 11")


def test_missing_data_fails_as_a_client_error(env):
    runner, service, launcher, tmp_path = env
    create(service, launcher, tmp_path, "gone", trains())
    (tmp_path / "channel" / "train.rec").unlink()
    runner.start()
    d = wait_done(service, "gone")
    assert d["TrainingJobStatus"] == "Failed" and d["FailureReason"].startswith("ClientError: ")
    assert "gone" not in launcher.launched


def test_stop_keeps_what_was_trained(env):
    runner, service, launcher, tmp_path = env
    create(service, launcher, tmp_path, "stopped", runs_until_stopped())
    runner.start()
    wait_secondary(service, "stopped", "Training")
    service.stop_training_job({"TrainingJobName": "stopped"})
    d = wait_done(service, "stopped")
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "Stopped"
    assert Path(d["ModelArtifacts"]["S3ModelArtifacts"]).is_file()


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(env):
    runner, service, launcher, tmp_path = env
    create(service, launcher, tmp_path, "stubborn", runs_until_stopped(honours_sigterm=False))
    runner.start()
    wait_secondary(service, "stubborn", "Training")
    service.stop_training_job({"TrainingJobName": "stubborn"})
    d = wait_done(service, "stubborn")
    # killed before it saved: the artifact's location is named (as SageMaker does), nothing is there
    assert d["TrainingJobStatus"] == "Stopped" and not Path(d["ModelArtifacts"]["S3ModelArtifacts"]).exists()


def test_max_runtime_stops_the_job(env):
    runner, service, launcher, tmp_path = env
    create(service, launcher, tmp_path, "slow", runs_until_stopped(), StoppingCondition={"MaxRuntimeInSeconds": 1})
    runner.start()
    d = wait_done(service, "slow")
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_jobs_beyond_the_limit_wait_their_turn(env):
    runner, service, launcher, tmp_path = env
    create(service, launcher, tmp_path, "first", runs_until_stopped())
    create(service, launcher, tmp_path, "second", trains())
    runner.start()
    wait_secondary(service, "first", "Training")
    time.sleep(0.2)
    d = service.describe_training_job({"TrainingJobName": "second"})
    assert d["SecondaryStatus"] == "Starting" and "second" not in launcher.launched
    assert "Waiting for a free slot (1 job(s) run at a time)" in d["SecondaryStatusTransitions"][-1]["StatusMessage"]
    service.stop_training_job({"TrainingJobName": "first"})
    assert wait_done(service, "second")["TrainingJobStatus"] == "Completed"


def test_a_job_waits_for_its_instances_and_the_ones_behind_it_wait_too(database_url, tmp_path):
    sessions = open_database(database_url)
    launcher = FakeLauncher(capacity=3)
    runner = JobRunner(sessions, tmp_path / "data", poll=0.02, max_concurrent=3, launcher=launcher)
    service = TrainingJobService(sessions, max_instances=runner.max_instances)
    (tmp_path / "channel").mkdir()
    (tmp_path / "channel" / "train.rec").write_bytes(b"x")
    two = {"ResourceConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}}
    try:
        create(service, launcher, tmp_path, "big-1", runs_until_stopped(), **two)
        create(service, launcher, tmp_path, "big-2", trains(), **two)
        create(service, launcher, tmp_path, "small", trains())  # would fit, but comes after big-2
        runner.start()
        wait_secondary(service, "big-1", "Training")
        time.sleep(0.2)
        d = service.describe_training_job({"TrainingJobName": "big-2"})
        assert d["SecondaryStatus"] == "Starting" and "big-2/algo-1" not in launcher.launched
        message = d["SecondaryStatusTransitions"][-1]["StatusMessage"]
        assert message == "Waiting for 2 instance(s): 2 of the 3 this server runs at once are in use"
        assert "small" not in launcher.launched
        service.stop_training_job({"TrainingJobName": "big-1"})
        assert wait_done(service, "big-2")["TrainingJobStatus"] == "Completed"
        assert wait_done(service, "small")["TrainingJobStatus"] == "Completed"
    finally:
        runner.shutdown()


def test_restart_fails_running_jobs_or_resumes_them_from_checkpoints(env):
    runner, service, launcher, tmp_path = env
    for name in ("plain", "resumable", "stopping", "queued"):
        extra = {"CheckpointConfig": {"S3Uri": (tmp_path / "ckpt").as_uri()}} if name == "resumable" else {}
        create(service, launcher, tmp_path, name, trains(), **extra)
    with runner.sessions.begin() as s:  # as a server that died mid-way left them
        for name in ("plain", "resumable"):
            job = s.get(TrainingJob, name)
            job.training_start_time, job.secondary_status = time.time(), "Training"
        s.get(TrainingJob, "stopping").status = "Stopping"
    runner.recover()
    assert sorted(launcher.reaped) == ["plain", "queued", "resumable", "stopping"]
    d = service.describe_training_job({"TrainingJobName": "plain"})
    assert d["TrainingJobStatus"] == "Failed" and "no CheckpointConfig to resume from" in d["FailureReason"]
    assert service.describe_training_job({"TrainingJobName": "stopping"})["TrainingJobStatus"] == "Stopped"
    assert service.describe_training_job({"TrainingJobName": "resumable"})["SecondaryStatus"] == "Restarting"
    assert service.describe_training_job({"TrainingJobName": "queued"})["SecondaryStatus"] == "Starting"
    runner.start()
    for name in ("resumable", "queued"):
        assert wait_done(service, name)["TrainingJobStatus"] == "Completed"


def test_a_queued_job_that_is_stopped_ends_at_once_and_frees_its_place(env):
    runner, service, launcher, tmp_path = env
    create(service, launcher, tmp_path, "first", runs_until_stopped())
    create(service, launcher, tmp_path, "queued", trains())
    create(service, launcher, tmp_path, "third", trains())
    runner.start()
    wait_secondary(service, "first", "Training")
    service.stop_training_job({"TrainingJobName": "queued"})
    deadline = time.time() + 5
    while service.describe_training_job({"TrainingJobName": "queued"})["TrainingJobStatus"] != "Stopped":
        assert time.time() < deadline, "a queued job stayed Stopping"
        time.sleep(0.02)
    assert "queued" not in launcher.launched
    service.stop_training_job({"TrainingJobName": "first"})
    assert wait_done(service, "third")["TrainingJobStatus"] == "Completed"


def test_jobs_never_see_the_servers_secrets_and_failures_show_opt_ml_paths(env, monkeypatch):
    runner, service, launcher, tmp_path = env
    monkeypatch.setenv("ROOST_SECRET_ACCESS_KEY", "server-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")

    def fails_naming_its_channel(layout, emit, terminated) -> int:
        layout.write_failure(f"ClientError: {layout.channel('train')}/train.rec record at byte 0: broken")
        return 1

    create(service, launcher, tmp_path, "secretive", fails_naming_its_channel, Environment={"TZ": "UTC"})
    runner.start()
    d = wait_done(service, "secretive")
    _, job_env = launcher.launched["secretive"]
    assert "ROOST_SECRET_ACCESS_KEY" not in job_env and "AWS_SECRET_ACCESS_KEY" not in job_env
    assert job_env["TZ"] == "UTC"
    assert d["FailureReason"] == "ClientError: /opt/ml/input/data/train/train.rec record at byte 0: broken"


# --------------------------------------------------------------------------- several instances


def test_a_job_of_two_instances_runs_two_hosts_and_ships_the_first_ones_model(env):
    runner, service, launcher, tmp_path = env
    resources = {"InstanceCount": 2, "InstanceType": "ml.p3.2xlarge", "VolumeSizeInGB": 5}
    create(service, launcher, tmp_path, "two", trains(0.75), ResourceConfig=resources)
    launcher.scripts["two/algo-2"] = quiet  # the other hosts print no metrics and ship nothing
    runner.start()
    d = wait_done(service, "two")
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    (root1, env1), (root2, env2) = launcher.launched["two/algo-1"], launcher.launched["two/algo-2"]
    assert root1 == tmp_path / "data" / "jobs" / "two" / "opt_ml" and root2.parent.name == "algo-2"
    for root, host in ((root1, "algo-1"), (root2, "algo-2")):
        rc = JobLayout(root).read_resources()
        assert rc.current_host == host and rc.hosts == ["algo-1", "algo-2"]
        assert rc.current_instance_type == "ml.p3.2xlarge"
    assert env1["MASTER_ADDR"] == "127.0.0.1" and env1["MASTER_PORT"] == env2["MASTER_PORT"]
    assert (JobLayout(root2).channel("train") / "train.rec").is_file()  # the first host's copy, linked
    streams = LogService(runner.sessions).describe_log_streams(
        {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamNamePrefix": "two/"}
    )["logStreams"]
    assert sorted(s["logStreamName"].rsplit("-", 1)[0] for s in streams) == ["two/algo-1", "two/algo-2"]
    with tarfile.open(d["ModelArtifacts"]["S3ModelArtifacts"]) as tar:
        assert tar.getnames() == ["weights.bin"]
    assert {m["MetricName"]: m["Value"] for m in d["FinalMetricDataList"]}["validation:accuracy"] == 0.75


def test_one_failing_host_ends_the_others_and_names_itself(env):
    runner, service, launcher, tmp_path = env
    resources = {"InstanceCount": 3, "InstanceType": "ml.p3.2xlarge", "VolumeSizeInGB": 5}
    create(service, launcher, tmp_path, "bad", runs_until_stopped(), ResourceConfig=resources)
    launcher.scripts["bad/algo-3"] = fails_with("AlgorithmError: out of memory")
    runner.start()
    d = wait_done(service, "bad")
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"] == "AlgorithmError: out of memory (on algo-3; the job's other hosts were stopped)"


def test_stop_and_max_runtime_end_every_host(env):
    runner, service, launcher, tmp_path = env
    resources = {"InstanceCount": 2, "InstanceType": "ml.p3.2xlarge", "VolumeSizeInGB": 5}
    create(service, launcher, tmp_path, "stopped", runs_until_stopped(), ResourceConfig=resources)
    create(
        service,
        launcher,
        tmp_path,
        "slow",
        runs_until_stopped(),
        ResourceConfig=resources,
        StoppingCondition={"MaxRuntimeInSeconds": 1},
    )
    runner.max_concurrent = 2
    runner.start()
    wait_secondary(service, "stopped", "Training")
    service.stop_training_job({"TrainingJobName": "stopped"})
    assert wait_done(service, "stopped")["TrainingJobStatus"] == "Stopped"
    d = wait_done(service, "slow")
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_sharded_by_key_channels_give_each_host_its_own_objects(env):
    runner, service, launcher, tmp_path = env
    shards = tmp_path / "shards"
    shards.mkdir()
    for i in range(4):
        (shards / f"part-{i}.rec").write_bytes(b"x")
    channels = [
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": str(shards),
                    "S3DataDistributionType": "ShardedByS3Key",
                }
            },
        },
        {
            "ChannelName": "validation",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(tmp_path / "channel")}},
        },
    ]
    resources = {"InstanceCount": 2, "InstanceType": "ml.p3.2xlarge", "VolumeSizeInGB": 5}
    create(service, launcher, tmp_path, "sharded", trains(), ResourceConfig=resources, InputDataConfig=channels)
    launcher.scripts["sharded/algo-2"] = quiet
    runner.start()
    assert wait_done(service, "sharded")["TrainingJobStatus"] == "Completed"
    parts = [
        sorted(p.name for p in JobLayout(launcher.launched[f"sharded/{h}"][0]).channel("train").iterdir())
        for h in ("algo-1", "algo-2")
    ]
    assert parts == [["part-0.rec", "part-2.rec"], ["part-1.rec", "part-3.rec"]]
    config = JobLayout(launcher.launched["sharded/algo-2"][0]).read_channels()["train"]
    assert config.s3_distribution_type == "ShardedByS3Key"


def test_checkpoints_are_mirrored_to_their_uri_and_restored_into_the_next_job(env):
    runner, service, launcher, tmp_path = env
    saved = tmp_path / "saved-checkpoints"
    config = {"CheckpointConfig": {"S3Uri": saved.as_uri()}}

    def writes_checkpoints(layout: JobLayout, emit, terminated) -> int:
        (layout.checkpoints / "state.pt").write_bytes(b"epoch 3")
        (layout.checkpoints / "old.pt").write_bytes(b"x")
        (layout.checkpoints / "half.pt.partial").write_bytes(b"being written")
        time.sleep(0.3)
        (layout.checkpoints / "old.pt").unlink()  # deleted here, deleted there (as SageMaker syncs)
        return trains()(layout, emit, terminated)

    def finds_them(layout: JobLayout, emit, terminated) -> int:
        emit("found " + ",".join(sorted(p.name for p in layout.checkpoints.iterdir())))
        return trains()(layout, emit, terminated)

    create(service, launcher, tmp_path, "first", writes_checkpoints, **config)
    runner.start()
    assert wait_done(service, "first")["TrainingJobStatus"] == "Completed"
    assert sorted(p.name for p in saved.iterdir()) == ["state.pt"] and (saved / "state.pt").read_bytes() == b"epoch 3"
    create(service, launcher, tmp_path, "second", finds_them, **config)
    assert wait_done(service, "second")["TrainingJobStatus"] == "Completed"
    log = (tmp_path / "data" / "jobs" / "second" / "training.log").read_text()
    assert "found state.pt" in log


def test_a_restart_reaps_every_host_and_resumes_them_all(env):
    runner, service, launcher, tmp_path = env
    resources = {"InstanceCount": 2, "InstanceType": "ml.p3.2xlarge", "VolumeSizeInGB": 5}
    checkpoints = {"CheckpointConfig": {"S3Uri": (tmp_path / "ckpt2").as_uri()}}
    create(service, launcher, tmp_path, "pair", trains(), ResourceConfig=resources, **checkpoints)
    launcher.scripts["pair/algo-2"] = quiet
    with runner.sessions.begin() as s:  # as a server that died while both hosts trained left it
        job = s.get(TrainingJob, "pair")
        job.training_start_time, job.secondary_status = time.time(), "Training"
    runner.recover()
    assert sorted(launcher.reaped) == ["algo-2", "pair"]  # <job> (algo-1's folder) and <job>/algo-2
    assert service.describe_training_job({"TrainingJobName": "pair"})["SecondaryStatus"] == "Restarting"
    runner.start()
    assert wait_done(service, "pair")["TrainingJobStatus"] == "Completed"
    assert {"pair/algo-1", "pair/algo-2"} <= set(launcher.launched)
