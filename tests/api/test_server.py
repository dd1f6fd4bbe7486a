"""The SageMaker-compatible server, driven by real boto3 clients as seed 003 drives SageMaker."""

import json
import os
import re
import tarfile
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError, WaiterError

from helpers import FAST, Server, free_port, training_request

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url):
    srv = Server(tmp_path_factory.mktemp("srv"), database_url=module_database_url).start()
    yield srv
    srv.stop()


def _wait_for(client, name, secondary, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = client.describe_training_job(TrainingJobName=name)
        if d["SecondaryStatus"] == secondary or d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return d
        time.sleep(0.3)
    raise AssertionError(f"{name} never reached {secondary}")


def test_seed_003_flow(server, recs, tmp_path):
    sm = server.client()
    p = training_request(recs, tmp_path)
    arn = sm.create_training_job(**p)["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:000000000000:training-job/{p['TrainingJobName'].lower()}"
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)
    d = sm.describe_training_job(TrainingJobName=p["TrainingJobName"])
    assert d["TrainingJobStatus"] == "Completed" and d["SecondaryStatus"] == "Completed"
    artifact = d["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact.endswith(f"{p['TrainingJobName']}/output/model.tar.gz") and os.path.isfile(artifact)
    # the channels are .rec files: their classes.json came along, so the model names its classes (issue 26)
    with tarfile.open(artifact) as tar:
        meta = json.load(tar.extractfile("roost-model.json"))
    assert meta["class_names"] == json.loads((recs[0].parent / "classes.json").read_text())
    names = {m["MetricName"]: m["Value"] for m in d["FinalMetricDataList"]}
    assert set(names) == {"train:accuracy", "validation:accuracy"} and 0 <= names["validation:accuracy"] <= 1
    statuses = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert statuses[0] == "Starting" and statuses[-3:] == ["Training", "Uploading", "Completed"]
    assert "Downloading" in statuses
    assert d["TrainingTimeInSeconds"] >= 1 and d["HyperParameters"]["epochs"] == "2"
    # the log, as CloudWatch serves it
    logs = server.client("logs")
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=p["TrainingJobName"]
    )["logStreams"]
    assert len(streams) == 1
    events = logs.filter_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamNames=[streams[0]["logStreamName"]],
        filterPattern='"Validation-accuracy"',
    )["events"]
    assert len(events) == 2 and all("Validation-accuracy=" in e["message"] for e in events)
    got = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=streams[0]["logStreamName"], startFromHead=True
    )
    assert "Docker entrypoint called with argument(s): train" in got["events"][0]["message"]


def test_the_server_runs_training_jobs_without_loading_pytorch(server, recs, tmp_path):
    """PyTorch is most of a process's start-up (about 2.5 of 6 s measured here); the server loads it with the
    first endpoint or transform job, and no test in this module creates one."""
    sm = server.client()
    p = training_request(recs, tmp_path, epochs=1)
    sm.create_training_job(**p)
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)
    sm.list_training_jobs()
    maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
    assert "libtorch" not in maps


def test_errors_have_sagemaker_shapes(server, recs, tmp_path):
    sm = server.client()
    p = training_request(recs, tmp_path, epochs=1)
    sm.create_training_job(**p)
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**p)
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as err:
        sm.describe_training_job(TrainingJobName="no-such-job")
    assert err.value.response["Error"] == {"Code": "ValidationException", "Message": "Requested resource not found."}
    bad = training_request(recs, tmp_path)
    bad["HyperParameters"]["learning_rate"] = "fast"
    with pytest.raises(ClientError) as err:
        sm.create_training_job(**bad)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "learning_rate='fast' is not valid" in err.value.response["Error"]["Message"]
    missing = training_request(recs, tmp_path)
    missing["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = str(tmp_path / "nothing")
    with pytest.raises(ClientError, match="No S3 objects found under S3 URL"):
        sm.create_training_job(**missing)
    with pytest.raises(ClientError, match="failed to satisfy constraint"):
        sm.create_training_job(**training_request(recs, tmp_path, name="bad_name!"))
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)


def test_authentication(server):
    with pytest.raises(ClientError) as err:
        server.client(secret="wrong").list_training_jobs()
    assert err.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as err:
        server.client(key="AKIAUNKNOWN").list_training_jobs()
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
    r = requests.post(server.url + "/", data="{}", headers={"X-Amz-Target": "SageMaker.ListTrainingJobs"})
    assert r.status_code == 403 and r.json()["__type"] == "MissingAuthenticationTokenException"


def test_failing_job_has_a_readable_reason(server, recs, tmp_path):
    sm = server.client()
    p = training_request(recs, tmp_path)
    p["HyperParameters"]["num_classes"] = "2"  # the data have labels 0..2
    sm.create_training_job(**p)
    waiter = sm.get_waiter("training_job_completed_or_stopped")
    with pytest.raises(WaiterError, match="terminal failure state"):
        waiter.wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)
    d = sm.describe_training_job(TrainingJobName=p["TrainingJobName"])
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("ClientError: ") and "is outside 0..1 (num_classes=2)" in d["FailureReason"]


def test_stop_and_max_runtime(server, recs, tmp_path):
    sm = server.client()
    p = training_request(recs, tmp_path, epochs=200)
    sm.create_training_job(**p)
    _wait_for(sm, p["TrainingJobName"], "Training")
    deadline = time.time() + 60  # stop it mid-training, once its loader workers are up
    while "Epoch[0] Train-accuracy" not in _log_text(server, p["TrainingJobName"]):
        assert time.time() < deadline
        time.sleep(0.2)
    sm.stop_training_job(TrainingJobName=p["TrainingJobName"])
    assert sm.describe_training_job(TrainingJobName=p["TrainingJobName"])["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)
    d = sm.describe_training_job(TrainingJobName=p["TrainingJobName"])
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "Stopped"
    assert "Stopping" in [t["Status"] for t in d["SecondaryStatusTransitions"]]
    # the algorithm kept what it had trained, and it was uploaded
    assert os.path.isfile(d["ModelArtifacts"]["S3ModelArtifacts"])
    assert "Stop requested (SIGTERM)" in _log_text(server, p["TrainingJobName"])

    q = training_request(recs, tmp_path, epochs=200, StoppingCondition={"MaxRuntimeInSeconds": 4})
    sm.create_training_job(**q)
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=q["TrainingJobName"], WaiterConfig=FAST)
    d = sm.describe_training_job(TrainingJobName=q["TrainingJobName"])
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_list_paginates_and_filters(server, recs, tmp_path):
    sm = server.client()
    pages = list(sm.get_paginator("list_training_jobs").paginate(PaginationConfig={"PageSize": 2}))
    names = [s["TrainingJobName"] for page in pages for s in page["TrainingJobSummaries"]]
    assert len(pages) >= 2 and len(names) == len(set(names)) >= 3
    done = sm.list_training_jobs(StatusEquals="Completed", SortBy="Name", SortOrder="Descending")
    got = [s["TrainingJobName"] for s in done["TrainingJobSummaries"]]
    assert got == sorted(got, reverse=True) and all(
        s["TrainingJobStatus"] == "Completed" for s in done["TrainingJobSummaries"]
    )


def _log_text(server, name):
    """The job's log so far; empty until the job starts and its stream appears, as on SageMaker."""
    logs = server.client("logs")
    try:
        streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=name)[
            "logStreams"
        ]
    except logs.exceptions.ResourceNotFoundException:
        return ""
    if not streams:
        return ""
    stream = streams[0]["logStreamName"]
    return "\n".join(
        e["message"]
        for e in logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream, startFromHead=True
        )["events"]
    )


def test_server_restart_fails_or_resumes_running_jobs(recs, tmp_path, database_url):
    srv = Server(tmp_path / "srv", database_url=database_url).start()
    try:
        sm = srv.client()
        plain = training_request(recs, tmp_path, epochs=200)
        resumable = training_request(
            recs, tmp_path, epochs=40, CheckpointConfig={"S3Uri": (tmp_path / "ckpt").as_uri()}
        )
        sm.create_training_job(**plain)
        _wait_for(sm, plain["TrainingJobName"], "Training")
        time.sleep(1)
        srv.kill()  # the server dies mid-job
        srv.start()
        sm = srv.client()
        d = sm.describe_training_job(TrainingJobName=plain["TrainingJobName"])
        assert (
            d["TrainingJobStatus"] == "Failed"
            and "Roost server stopped while this job was running" in d["FailureReason"]
        )

        sm.create_training_job(**resumable)
        deadline = time.time() + 90
        while "Epoch[2] Validation-accuracy" not in _log_text(srv, resumable["TrainingJobName"]):
            assert time.time() < deadline
            time.sleep(0.5)
        srv.kill()
        srv.start()
        sm = srv.client()
        sm.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName=resumable["TrainingJobName"], WaiterConfig=FAST
        )
        d = sm.describe_training_job(TrainingJobName=resumable["TrainingJobName"])
        assert d["TrainingJobStatus"] == "Completed"
        assert "Restarting" in [t["Status"] for t in d["SecondaryStatusTransitions"]]
        text = _log_text(srv, resumable["TrainingJobName"])
        done = int(re.search(r"Resuming from .*: (\d+) epoch\(s\) done", text).group(1))
        assert 3 <= done < 40 and "Epoch[39] Validation-accuracy" in text
    finally:
        srv.stop()


def test_jobs_wait_their_turn_and_custom_metrics(server, recs, tmp_path):
    sm = server.client()
    first = training_request(recs, tmp_path, epochs=3)
    second = training_request(recs, tmp_path, epochs=1)
    second["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": "validation:top1", "Regex": r"Validation-accuracy=([0-9.]+)"},
        {"Name": "time", "Regex": r"Time cost=([0-9.]+)"},
    ]
    sm.create_training_job(**first)
    sm.create_training_job(**second)
    # while it waits, its one Starting step says why (SageMaker updates a step's message in place)
    deadline = time.time() + 60
    while True:
        d = sm.describe_training_job(TrainingJobName=second["TrainingJobName"])
        if (
            d["SecondaryStatusTransitions"][-1].get("StatusMessage")
            == "Waiting for a free slot (1 job(s) run at a time)"
        ):
            break
        assert time.time() < deadline and d["SecondaryStatus"] == "Starting", d["SecondaryStatusTransitions"]
        time.sleep(0.1)
    waiter = sm.get_waiter("training_job_completed_or_stopped")
    for p in (first, second):
        waiter.wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)
    d = sm.describe_training_job(TrainingJobName=second["TrainingJobName"])
    statuses = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert len(statuses) == len(set(statuses)) and statuses[0] == "Starting", statuses
    names = {m["MetricName"] for m in d["FinalMetricDataList"]}
    assert {"validation:top1", "time", "train:accuracy", "validation:accuracy"} <= names


def test_s3_channels_and_artifact_through_an_s3_compatible_store(recs, tmp_path):
    from moto.server import ThreadedMotoServer

    s3_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port)
    moto.start()
    s3_env = {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    srv = Server(tmp_path / "srv", env=s3_env).start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_env["AWS_ENDPOINT_URL_S3"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="birds")
        train, val, _ = recs
        for channel, rec in (("train", train), ("validation", val)):
            for f in (rec, rec.with_suffix(".idx")):
                s3.upload_file(str(f), "birds", f"data/{channel}/{f.name}")
        sm = srv.client()
        p = training_request(recs, tmp_path, OutputDataConfig={"S3OutputPath": "s3://birds/sagemaker/output"})
        p["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://birds/data/train"
        p["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://birds/data/validation/"
        sm.create_training_job(**p)
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)
        d = sm.describe_training_job(TrainingJobName=p["TrainingJobName"])
        assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
        key = f"sagemaker/output/{p['TrainingJobName']}/output/model.tar.gz"
        assert d["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://birds/{key}"
        assert s3.head_object(Bucket="birds", Key=key)["ContentLength"] > 1000

        missing = training_request(recs, tmp_path, OutputDataConfig={"S3OutputPath": "s3://birds/out"})
        missing["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://birds/nothing/here"
        with pytest.raises(ClientError, match="No S3 objects found under S3 URL 's3://birds/nothing/here'"):
            sm.create_training_job(**missing)
    finally:
        srv.stop()
        moto.stop()


def test_a_two_instance_job_trains_on_two_hosts(server, recs, tmp_path):
    if "postgresql" in str(server.flags.get("database_url")):
        pytest.skip("runs once, on SQLite: the hosts of a job use the database as one host does")
    sm, logs = server.client(), server.client("logs")
    resources = {"InstanceCount": 2, "InstanceType": "ml.p3.2xlarge", "VolumeSizeInGB": 50}
    req = training_request(recs, tmp_path, epochs=2, ResourceConfig=resources)
    name = req["TrainingJobName"]
    sm.create_training_job(**req)
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=FAST)
    d = sm.describe_training_job(TrainingJobName=name)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert {m["MetricName"] for m in d["FinalMetricDataList"]} >= {"train:accuracy", "validation:accuracy"}
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=name + "/")
    texts = {}
    for s in streams["logStreams"]:
        host = s["logStreamName"].split("/")[1].rsplit("-", 1)[0]
        events = logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=s["logStreamName"], startFromHead=True
        )["events"]
        texts[host] = "\n".join(e["message"] for e in events)
    assert sorted(texts) == ["algo-1", "algo-2"]
    assert "Epoch[1] Validation-accuracy" in texts["algo-1"] and "is rank 0 of 2" in texts["algo-1"]
    assert "Epoch[" not in texts["algo-2"] and "algo-2 (rank 1) finished its share of 2 epochs" in texts["algo-2"]
