"""Hosting in-process: models, endpoint configs, endpoints and invocations, without HTTP (and batch transform where
it meets them: data roots, lists)."""

from __future__ import annotations

import json
import re
import tarfile
import time

import numpy as np
import pytest

from helpers import Api
from roost.aws import ServiceError
from roost.cloudwatch.logs import LogService
from roost.serving.endpoints import EndpointService
from roost.serving.transform import TransformJobService
from roost.storage.database import open_database
from roost.storage.uri import DataRoots

ROLE = "arn:aws:iam::123456789012:role/r"


@pytest.fixture()
def hosting(database_url, tmp_path):
    service = EndpointService(open_database(database_url), tmp_path / "data")
    yield service
    service.close()


def deploy(h: EndpointService, name: str, url: str, instances: int = 1) -> None:
    h.create_model({"ModelName": name, "ExecutionRoleArn": ROLE, "PrimaryContainer": {"ModelDataUrl": url}})
    h.create_endpoint_config(
        {
            "EndpointConfigName": f"{name}-config",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": instances}],
        }
    )
    h.create_endpoint({"EndpointName": name, "EndpointConfigName": f"{name}-config"})


def wait_status(h: EndpointService, name: str, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = h.describe_endpoint({"EndpointName": name})
        if d["EndpointStatus"] in ("InService", "Failed"):
            return d
        time.sleep(0.05)
    raise AssertionError(f"endpoint {name} stayed {d['EndpointStatus']}")


def error(fn, *args) -> ServiceError:
    with pytest.raises(ServiceError) as err:
        fn(*args)
    return err.value


def test_endpoint_serves_with_as_many_workers_as_instances(hosting, model):
    folder, url, expected = model
    deploy(hosting, "birds", url, instances=2)
    d = wait_status(hosting, "birds")
    assert d["EndpointStatus"] == "InService" and d["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    assert len(hosting.hosted["birds"].model._threads) == 2
    payload, media, variant = hosting.invoke("birds", (folder / "test_0.png").read_bytes(), "image/png", "", None)
    assert (media, variant) == ("application/json", "AllTraffic")
    np.testing.assert_allclose(json.loads(payload), expected["test_0.png"], atol=1e-4)


def test_invocation_errors_have_the_runtime_apis_shapes(hosting, model):
    folder, url, _ = model
    deploy(hosting, "birds", url)
    wait_status(hosting, "birds")
    err = error(hosting.invoke, "birds", b"not an image", "image/png", "", None)
    assert (err.code, err.status, err.members["OriginalStatusCode"]) == ("ModelError", 424, 400)
    assert "cannot be decoded as an image" in err.message
    err = error(hosting.invoke, "birds", b"x", "text/csv", "", None)
    assert (err.code, err.members["OriginalStatusCode"]) == ("ModelError", 415)
    err = error(hosting.invoke, "birds", b"\0" * (6 * 1024 * 1024 + 1), "image/png", "", None)
    assert err.code == "ValidationError" and "6 MB" in err.message
    assert error(hosting.invoke, "nowhere", b"x", "image/png", "", None).code == "ValidationError"
    payload, _, _ = hosting.invoke("birds", (folder / "test_1.png").read_bytes(), "image/png", "", None)
    assert len(json.loads(payload)) == 4  # still serving


def test_each_instance_logs_to_its_stream_of_the_endpoints_group(hosting, model):
    folder, url, _ = model
    deploy(hosting, "birds", url, instances=2)
    wait_status(hosting, "birds")
    for _ in range(2):
        error(hosting.invoke, "birds", b"not an image", "image/png", "", None)
    hosting.delete_endpoint({"EndpointName": "birds"})
    hosting.logs.flush()
    logs = LogService(hosting.sessions)
    group = "/aws/sagemaker/Endpoints/birds"
    assert [
        g["logGroupName"] for g in logs.describe_log_groups({"logGroupNamePrefix": "/aws/sagemaker/"})["logGroups"]
    ] == [group]
    streams = [s["logStreamName"] for s in logs.describe_log_streams({"logGroupName": group})["logStreams"]]
    assert len(streams) == 2 and all(re.fullmatch(r"AllTraffic/i-[0-9a-f]{17}", s) for s in streams)
    for stream in streams:
        lines = [
            e["message"]
            for e in logs.get_log_events({"logGroupName": group, "logStreamName": stream, "startFromHead": True})[
                "events"
            ]
        ]
        assert lines[0] == f"Loading model birds from {url}"
        assert lines[1].startswith("Model loaded: ResNet-20, 4 classes, image shape 3,28,28")
        # the two refused requests went one to each instance, as a load balancer spreads them
        assert "Refused an invocation (400): the 12-byte body cannot be decoded" in lines[2]
        assert lines[-1] == "Stopping the serving worker: the endpoint was deleted"
    # the log outlives the endpoint, as CloudWatch's does
    assert len(logs.filter_log_events({"logGroupName": group, "filterPattern": '"Refused"'})["events"]) == 2


def test_model_and_config_validation(hosting, model, tmp_path):
    folder, url, _ = model
    api = Api(hosting)
    assert "regular expression pattern" in error(api, "CreateModel", {"ModelName": "bad_name!"}).message
    err = error(hosting.create_model, {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": str(folder)}})
    assert "must point to a tar.gz file" in err.message
    err = error(
        hosting.create_model, {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": str(tmp_path / "x.tar.gz")}}
    )
    assert "Could not find model data" in err.message
    hosting.create_model({"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": url}})
    assert (
        "Cannot create already existing model"
        in error(hosting.create_model, {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": url}}).message
    )
    err = error(
        hosting.create_endpoint_config,
        {"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "v", "ModelName": "missing"}]},
    )
    assert 'Could not find model "arn:aws:sagemaker:us-east-1:000000000000:model/missing"' in err.message
    two = [{"VariantName": v, "ModelName": "m", "InitialInstanceCount": 1} for v in ("A", "B")]
    err = error(hosting.create_endpoint_config, {"EndpointConfigName": "ab", "ProductionVariants": two})
    assert "one production variant per endpoint; this configuration has 2 (A, B)" in err.message
    assert [m["ModelName"] for m in hosting.list_models({})["Models"]] == ["m"]


def test_a_model_that_cannot_load_fails_its_endpoint(hosting, model, tmp_path):
    folder, url, _ = model
    junk = tmp_path / "junk.tar.gz"
    with tarfile.open(junk, "w:gz") as tar:
        tar.add(folder / "test_0.png", arcname="test_0.png")
    deploy(hosting, "broken", str(junk))
    d = wait_status(hosting, "broken")
    assert d["EndpointStatus"] == "Failed" and "Failed to load the model" in d["FailureReason"]
    hosting.logs.flush()
    found = LogService(hosting.sessions).filter_log_events({"logGroupName": "/aws/sagemaker/Endpoints/broken"})
    assert [e["message"] for e in found["events"]][-1] == d["FailureReason"]
    deploy(hosting, "orphan", url)  # its model goes away before the endpoint loads it again
    wait_status(hosting, "orphan")
    hosting.delete_model({"ModelName": "orphan"})
    hosting.update_endpoint({"EndpointName": "orphan", "EndpointConfigName": "orphan-config"})
    d = wait_status(hosting, "orphan")
    assert d["EndpointStatus"] == "Failed" and "which no longer exists" in d["FailureReason"]


def test_update_delete_and_restore_after_a_restart(hosting, model, mxnet_fixtures, database_url, tmp_path):
    folder, url, _ = model
    deploy(hosting, "cards", url)
    wait_status(hosting, "cards")
    other = mxnet_fixtures / "model" / "resnet18_3x64x64"
    hosting.create_model({"ModelName": "other", "PrimaryContainer": {"ModelDataUrl": str(other / "model.tar.gz")}})
    hosting.create_endpoint_config(
        {
            "EndpointConfigName": "other-config",
            "ProductionVariants": [{"VariantName": "v2", "ModelName": "other", "InitialInstanceCount": 1}],
        }
    )
    hosting.update_endpoint({"EndpointName": "cards", "EndpointConfigName": "other-config"})
    assert wait_status(hosting, "cards")["EndpointConfigName"] == "other-config"
    img = (folder / "test_5.png").read_bytes()
    payload, _, variant = hosting.invoke("cards", img, "image/png", "", None)
    expected = json.loads((other / "predictions.json").read_text())["probabilities"]["test_5.png"]
    assert variant == "v2"
    np.testing.assert_allclose(json.loads(payload), expected, atol=1e-4)

    restarted = EndpointService(open_database(database_url), tmp_path / "data")
    restarted.restore()
    assert wait_status(restarted, "cards")["EndpointStatus"] == "InService"
    np.testing.assert_allclose(
        json.loads(restarted.invoke("cards", img, "image/png", "", None)[0]), expected, atol=1e-4
    )
    restarted.delete_endpoint({"EndpointName": "cards"})
    assert "cards" not in restarted.hosted
    assert error(restarted.describe_endpoint, {"EndpointName": "cards"}).code == "ValidationException"
    restarted.delete_endpoint_config({"EndpointConfigName": "cards-config"})
    assert (
        "Could not find endpoint configuration"
        in error(restarted.describe_endpoint_config, {"EndpointConfigName": "cards-config"}).message
    )


def test_models_and_batch_data_only_from_below_the_data_roots(database_url, model, tmp_path):
    folder, url, _ = model
    roots = DataRoots([folder, tmp_path])
    hosting = EndpointService(open_database(database_url), tmp_path / "data", roots=roots)
    transform = TransformJobService(open_database(database_url), tmp_path / "data", roots=roots)
    err = error(
        hosting.create_model, {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "file:///etc/passwd#.tar.gz"}}
    )
    assert "no host, query or fragment" in err.message
    (tmp_path / "evil.tar.gz").symlink_to("/etc/passwd")
    err = error(
        hosting.create_model, {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": str(tmp_path / "evil.tar.gz")}}
    )
    assert "is outside the folders this server reads and writes" in err.message
    hosting.create_model({"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": url}})
    for source, output in (("file:///etc/ssh", (tmp_path / "out").as_uri()), (str(folder), "file:///etc/cron.d")):
        err = error(
            transform.create_transform_job,
            {
                "TransformJobName": "t",
                "ModelName": "m",
                "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}}},
                "TransformOutput": {"S3OutputPath": output},
            },
        )
        assert "is outside the folders" in err.message


def test_lists_filter_sort_and_page_and_transforms_stop(database_url, model, tmp_path):
    folder, url, _ = model
    sessions = open_database(database_url)
    api = Api(EndpointService(sessions, tmp_path / "data"), TransformJobService(sessions, tmp_path / "data"))
    for name in ("owl", "crow", "owlet"):
        api("CreateModel", {"ModelName": name, "PrimaryContainer": {"ModelDataUrl": url}})
        api(
            "CreateEndpointConfig",
            {
                "EndpointConfigName": f"{name}-config",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1}],
            },
        )
        time.sleep(0.01)
    names = [m["ModelName"] for m in api("ListModels")["Models"]]
    assert names == ["owlet", "crow", "owl"]  # newest first, SageMaker's default
    assert [m["ModelName"] for m in api("ListModels", {"SortBy": "Name", "SortOrder": "Ascending"})["Models"]] == [
        "crow",
        "owl",
        "owlet",
    ]
    page = api(
        "ListEndpointConfigs", {"NameContains": "owl", "MaxResults": 1, "SortBy": "Name", "SortOrder": "Ascending"}
    )
    assert [c["EndpointConfigName"] for c in page["EndpointConfigs"]] == ["owl-config"]
    rest = api(
        "ListEndpointConfigs",
        {
            "NameContains": "owl",
            "MaxResults": 1,
            "SortBy": "Name",
            "SortOrder": "Ascending",
            "NextToken": page["NextToken"],
        },
    )
    assert [c["EndpointConfigName"] for c in rest["EndpointConfigs"]] == ["owlet-config"] and "NextToken" not in rest

    images = tmp_path / "images"
    images.mkdir()
    for i in range(30):
        (images / f"{i:02d}.png").write_bytes((folder / "test_0.png").read_bytes())
    api(
        "CreateTransformJob",
        {
            "TransformJobName": "long",
            "ModelName": "owl",
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": images.as_uri()}}},
            "TransformOutput": {"S3OutputPath": (tmp_path / "out").as_uri()},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        },
    )
    api("StopTransformJob", {"TransformJobName": "long"})
    deadline = time.time() + 60
    while (status := api("DescribeTransformJob", {"TransformJobName": "long"})["TransformJobStatus"]) == "Stopping":
        assert time.time() < deadline
        time.sleep(0.05)
    assert status == "Stopped"
    jobs = api("ListTransformJobs", {"StatusEquals": "Stopped"})["TransformJobSummaries"]
    assert [j["TransformJobName"] for j in jobs] == ["long"] and jobs[0]["TransformEndTime"]
    with pytest.raises(ServiceError, match="cannot be stopped"):
        api("StopTransformJob", {"TransformJobName": "long"})
