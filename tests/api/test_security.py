"""The server as an attacker and a careless client meet it: bounded bodies, no schema pages, private files,
one server per data folder, AWS-shaped answers to malformed requests, and no server paths in failure reasons."""

import http.client
import json
import os
import stat

import pytest
import requests
from botocore.exceptions import ClientError

from helpers import FAST, KEY, SECRET, Server, training_request

pytestmark = pytest.mark.slow  # starts servers and trains


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("srv") / "data").start()
    yield srv
    srv.stop()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_unsigned_bodies_are_bounded_before_they_are_read(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/")
    conn.putheader("X-Amz-Target", "SageMaker.ListTrainingJobs")
    conn.putheader("Content-Length", str(200 * 1024 * 1024))
    conn.endheaders()  # the 200 MB never follow: the answer must not wait for them
    r = conn.getresponse()
    body = json.loads(r.read())
    assert r.status == 413 and body["__type"] == "SerializationException" and "the limit is 2097152" in body["message"]
    conn.close()

    before = _rss_mb(server.proc.pid)

    def chunks():  # 200 MB without a Content-Length
        for _ in range(200):
            yield b"{" * (1024 * 1024)

    r = requests.post(server.url + "/", data=chunks(), headers={"X-Amz-Target": "SageMaker.ListTrainingJobs"})
    assert r.status_code == 413 and r.json()["__type"] == "SerializationException"
    assert _rss_mb(server.proc.pid) - before < 50
    r = requests.post(server.url + "/endpoints/x/invocations", data=b"\0" * (7 * 1024 * 1024))
    assert r.status_code == 400 and r.json()["__type"] == "ValidationError" and "6 MB" in r.json()["message"]


def test_no_schema_pages_and_private_files(server):
    for page in ("/openapi.json", "/docs", "/redoc"):
        assert requests.get(server.url + page).status_code == 404
    data = server.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "roost.db").stat().st_mode) == 0o600


def test_credentials_file_is_private_from_its_first_byte(tmp_path):
    # no keys in the environment: the server creates credentials.json
    srv = Server(tmp_path / "data", env={"ROOST_ACCESS_KEY_ID": "", "ROOST_SECRET_ACCESS_KEY": ""})
    try:
        srv.start()
        assert stat.S_IMODE((tmp_path / "data" / "credentials.json").stat().st_mode) == 0o600
    finally:
        srv.stop()


def test_a_second_server_on_the_same_data_folder_refuses_to_start(server):
    second = Server(server.data_dir)
    with pytest.raises(RuntimeError, match=f"is in use by another Roost server \\(pid {server.proc.pid}\\)"):
        second.start()


@pytest.mark.parametrize(
    "operation,body",
    [
        ("ListTrainingJobs", {"MaxResults": "abc"}),
        ("ListTrainingJobs", {"NextToken": 7}),
        ("ListTrainingJobs", {"CreationTimeAfter": {"x": 1}}),
        ("ListTrainingJobs", {"StatusEquals": "Sleeping"}),
        ("ListTrainingJobs", {"MaxResults": 1000}),
        ("DescribeTrainingJob", {"TrainingJobName": ["x"]}),
        ("DescribeTrainingJob", {}),
        ("StopTrainingJob", {"TrainingJobName": 5}),
        ("CreateTrainingJob", {"TrainingJobName": "x", "HyperParameters": "x"}),
        ("CreateTrainingJob", {"TrainingJobName": "x", "InputDataConfig": "s3://x"}),
        ("CreateTrainingJob", {"TrainingJobName": "x", "InputDataConfig": [{"ChannelName": 3}]}),
        ("CreateTrainingJob", {"TrainingJobName": "x", "ResourceConfig": {"InstanceCount": "two"}}),
        ("CreateTrainingJob", {"TrainingJobName": "x", "Environment": {"A": 1}}),
        ("CreateTrainingJob", {"TrainingJobName": "x", "EnableNetworkIsolation": "yes"}),
        ("CreateModel", {"ModelName": "m", "PrimaryContainer": "s3://x"}),
        ("CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": {"a": 1}}),
        ("CreateEndpoint", {"EndpointName": 1, "EndpointConfigName": "c"}),
        ("DescribeEndpoint", {"EndpointName": None}),
        ("CreateTransformJob", {"TransformJobName": "t", "TransformInput": []}),
        ("DeleteModel", {"ModelName": {"$ne": 1}}),
    ],
)
def test_malformed_requests_get_aws_errors_not_500(server, operation, body):
    with pytest.raises(ClientError) as err:
        _raw(server, f"SageMaker.{operation}", body)
    response = err.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response
    assert response["Error"]["Code"] in ("SerializationException", "ValidationException"), response


@pytest.mark.parametrize(
    "target,body",
    [
        (
            "Logs_20140328.GetLogEvents",
            {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamName": "x", "limit": "x"},
        ),
        ("Logs_20140328.FilterLogEvents", {"logGroupName": "/aws/sagemaker/TrainingJobs", "startTime": "soon"}),
        ("Logs_20140328.DescribeLogStreams", {"logGroupName": 5}),
    ],
)
def test_malformed_log_requests_get_aws_errors(server, target, body):
    with pytest.raises(ClientError) as err:
        _raw(server, target, body)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_deeply_nested_json_is_a_serialization_error(server):
    with pytest.raises(ClientError) as err:
        _raw(server, "SageMaker.ListTrainingJobs", None, raw=b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    assert err.value.response["Error"]["Code"] == "SerializationException"


def _raw(server, target: str, body, raw: bytes | None = None):
    """A signed request with any body, checked the way botocore checks a response."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    data = raw if raw is not None else json.dumps(body).encode()
    req = AWSRequest(
        method="POST",
        url=server.url + "/",
        data=data,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(KEY, SECRET), "sagemaker", "us-east-1").add_auth(req)
    r = requests.post(server.url + "/", data=data, headers=dict(req.headers.items()))
    if r.status_code >= 400:
        payload = r.json()
        raise ClientError(
            {
                "Error": {"Code": payload["__type"], "Message": payload["message"]},
                "ResponseMetadata": {"HTTPStatusCode": r.status_code},
            },
            target,
        )
    return r.json()


def test_failure_reasons_name_opt_ml_not_the_servers_folders(server, recs, tmp_path):
    sm = server.client()
    p = training_request(recs, tmp_path)
    p["HyperParameters"]["num_classes"] = "2"  # labels go to 2: the failure names the record
    sm.create_training_job(**p)
    with pytest.raises(Exception, match="terminal failure state"):
        sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)
    reason = sm.describe_training_job(TrainingJobName=p["TrainingJobName"])["FailureReason"]
    assert "/opt/ml/input/data/train/" in reason and str(server.data_dir) not in reason


def test_data_outside_the_roots_is_refused_by_the_api(server, recs, tmp_path):
    sm = server.client()
    p = training_request(recs, tmp_path)
    p["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "file:///etc"
    with pytest.raises(ClientError, match="is outside the folders this server reads and writes"):
        sm.create_training_job(**p)
    with pytest.raises(ClientError, match="Environment variable PYTHONWARNINGS not allowed"):
        sm.create_training_job(**training_request(recs, tmp_path, Environment={"PYTHONWARNINGS": "ignore"}))


def _without(request: dict, path: str, value=...) -> dict:
    """``request`` with the member at ``path`` (``A.B.0.C``) set to ``value``, or removed when no value is given."""
    import copy

    out = copy.deepcopy(request)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    key = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return out


@pytest.mark.parametrize(
    "path,value,member",
    [
        ("AlgorithmSpecification", None, "algorithmSpecification"),
        ("AlgorithmSpecification", ..., "algorithmSpecification"),
        ("ResourceConfig", None, "resourceConfig"),
        ("ResourceConfig.InstanceCount", ..., "resourceConfig.instanceCount"),
        ("InputDataConfig.0.DataSource", {}, "inputDataConfig.1.member.dataSource.s3DataSource"),
        ("InputDataConfig.0.DataSource.S3DataSource", None, "inputDataConfig.1.member.dataSource.s3DataSource"),
        ("InputDataConfig.0", None, "inputDataConfig.1.member"),
        ("HyperParameters.epochs", None, "hyperParameters.epochs"),
    ],
)
def test_null_and_missing_members_are_refused_naming_the_member(server, recs, tmp_path, path, value, member):
    """A member sent as null is a missing member (AWS's JSON protocols read it so); SageMaker's own required
    members are then refused by name, never stored to break a Describe or a page later."""
    request = _without(training_request(recs, tmp_path), path, value)
    with pytest.raises(ClientError) as err:
        _raw(server, "SageMaker.CreateTrainingJob", request)
    error = err.value.response["Error"]
    assert error["Code"] == "ValidationException" and f"'{member}'" in error["Message"], error
    assert _raw(server, "SageMaker.ListTrainingJobs", {"NameContains": request["TrainingJobName"]}) == {
        "TrainingJobSummaries": []
    }


def test_a_null_optional_member_is_left_out(server, recs, tmp_path):
    request = training_request(recs, tmp_path, CheckpointConfig=None, StoppingCondition=None, Tags=None)
    _raw(server, "SageMaker.CreateTrainingJob", request)
    job = server.client().describe_training_job(TrainingJobName=request["TrainingJobName"])
    assert "CheckpointConfig" not in job and job["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    server.client().stop_training_job(TrainingJobName=request["TrainingJobName"])


def test_a_grid_too_large_to_run_is_counted_not_built(server, recs, tmp_path):
    """Five categorical ranges of 30 values: 24 million combinations in a 3 KB request. The count is refused
    before a single combination is made; the server's memory does not grow."""
    from .test_tuning_server import tuning_request

    names = ("learning_rate", "momentum", "weight_decay", "beta_1", "beta_2")
    ranges = {"CategoricalParameterRanges": [{"Name": n, "Values": [f"0.{i}" for i in range(10, 40)]} for n in names]}
    request = tuning_request(recs, tmp_path, "huge-grid", "Grid", ranges)
    before = _rss_mb(server.proc.pid)
    with pytest.raises(ClientError) as err:
        server.client().create_hyper_parameter_tuning_job(**request)
    error = err.value.response["Error"]
    assert error["Code"] == "ResourceLimitExceeded" and "24300000 jobs" in error["Message"], error
    assert _rss_mb(server.proc.pid) - before < 20
    assert requests.get(server.url + "/ping").ok


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


@pytest.mark.parametrize("count", [100, 100_000])
def test_more_instances_than_the_server_runs_are_refused_up_front(server, recs, tmp_path, count):
    before = _children(server.proc.pid)
    request = training_request(recs, tmp_path)
    request["ResourceConfig"]["InstanceCount"] = count
    with pytest.raises(ClientError) as err:
        server.client().create_training_job(**request)
    error = err.value.response["Error"]
    assert error["Code"] == "ResourceLimitExceeded" and f"InstanceCount is {count}" in error["Message"]
    assert "--max-instances-per-job" in error["Message"]
    assert _children(server.proc.pid) == before
    with pytest.raises(ClientError, match="ResourceLimitExceeded"):
        server.client().create_endpoint_config(
            EndpointConfigName=f"many-{count}",
            ProductionVariants=[{"VariantName": "v", "ModelName": "m", "InitialInstanceCount": count}],
        )


def test_an_unreachable_s3_channel_says_which_store_and_what_to_set(server, recs, tmp_path):
    request = training_request(recs, tmp_path)
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://my-bucket/train/"
    with pytest.raises(ClientError) as err:
        server.client().create_training_job(**request)
    message = err.value.response["Error"]["Message"]
    assert "s3://my-bucket/train/: the bucket does not exist in this server's own S3 store" in message, message
    assert "aws s3 mb s3://my-bucket" in message and "--s3-endpoint" in message
