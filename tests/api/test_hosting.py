"""Lab 3 through the server: models, endpoint configs, endpoints, InvokeEndpoint, batch transform, with real boto3."""

import json
import shutil
import tarfile

import numpy as np
import pytest
from botocore.exceptions import ClientError

from helpers import FAST, Server

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses

ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("srv")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def fixtures(mxnet_fixtures):
    folder = mxnet_fixtures / "model"
    expected = json.loads((folder / "resnet20_3x28x28" / "predictions.json").read_text())["probabilities"]
    return folder, expected


def _deploy(sm, name, model_url, instances=1):
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "image-classification:1", "ModelDataUrl": model_url},
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": instances,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


def test_endpoint_serves_a_sagemaker_artifact(server, fixtures):
    folder, expected = fixtures
    sm, rt = server.client(), server.client("sagemaker-runtime")
    _deploy(sm, "birds", str(folder / "resnet20_3x28x28" / "model.tar.gz"), instances=2)
    assert sm.describe_endpoint(EndpointName="birds")["EndpointStatus"] in ("Creating", "InService")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="birds", WaiterConfig=FAST)
    d = sm.describe_endpoint(EndpointName="birds")
    assert d["EndpointStatus"] == "InService" and d["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    img = (folder / "test_0.png").read_bytes()
    r = rt.invoke_endpoint(EndpointName="birds", ContentType="image/png", Body=img)
    assert r["ContentType"] == "application/json" and r["InvokedProductionVariant"] == "AllTraffic"
    np.testing.assert_allclose(json.loads(r["Body"].read()), expected["test_0.png"], atol=1e-4)
    r = rt.invoke_endpoint(
        EndpointName="birds", ContentType="application/x-image", Accept="application/jsonlines", Body=img
    )
    assert list(json.loads(r["Body"].read())) == ["prediction"]
    r = rt.invoke_endpoint(EndpointName="birds", ContentType="image/jpeg", Body=img, CustomAttributes="top_k=2")
    assert json.loads(r["Body"].read())["top_k"][0]["class"] == int(np.argmax(expected["test_0.png"]))


def test_invocation_errors(server, fixtures):
    folder, _ = fixtures
    sm, rt = server.client(), server.client("sagemaker-runtime")
    if "birds" not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]:
        _deploy(sm, "birds", str(folder / "resnet20_3x28x28" / "model.tar.gz"))
    sm.get_waiter("endpoint_in_service").wait(EndpointName="birds", WaiterConfig=FAST)
    with pytest.raises(rt.exceptions.ModelError) as err:
        rt.invoke_endpoint(EndpointName="birds", ContentType="image/png", Body=b"not an image")
    assert (
        err.value.response["OriginalStatusCode"] == 400
        and "cannot be decoded" in err.value.response["Error"]["Message"]
    )
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="birds", ContentType="image/png", Body=b"\0" * (6 * 1024 * 1024 + 10))
    assert err.value.response["Error"]["Code"] == "ValidationError" and "6 MB" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        rt.invoke_endpoint(EndpointName="nowhere", ContentType="image/png", Body=b"x")
    assert err.value.response["Error"]["Code"] == "ValidationError"
    # the endpoint still answers
    r = rt.invoke_endpoint(EndpointName="birds", ContentType="image/png", Body=(folder / "test_1.png").read_bytes())
    assert len(json.loads(r["Body"].read())) == 4


def test_failed_update_delete_and_restart(fixtures, tmp_path):
    folder, expected = fixtures
    srv = Server(tmp_path / "srv").start()
    try:
        sm, rt = srv.client(), srv.client("sagemaker-runtime")
        junk = tmp_path / "junk.tar.gz"
        with tarfile.open(junk, "w:gz") as tar:
            tar.add(folder / "test_0.png", arcname="test_0.png")
        _deploy(sm, "broken", str(junk))
        with pytest.raises(Exception, match="Failed"):
            sm.get_waiter("endpoint_in_service").wait(EndpointName="broken", WaiterConfig=FAST)
        assert "Failed to load the model" in sm.describe_endpoint(EndpointName="broken")["FailureReason"]

        _deploy(sm, "cards", str(folder / "resnet20_3x28x28" / "model.tar.gz"))
        sm.get_waiter("endpoint_in_service").wait(EndpointName="cards", WaiterConfig=FAST)
        sm.create_model(
            ModelName="other",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": "x", "ModelDataUrl": str(folder / "resnet18_3x64x64" / "model.tar.gz")},
        )
        sm.create_endpoint_config(
            EndpointConfigName="other-config",
            ProductionVariants=[
                {"VariantName": "v2", "ModelName": "other", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
            ],
        )
        sm.update_endpoint(EndpointName="cards", EndpointConfigName="other-config")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="cards", WaiterConfig=FAST)
        img = (folder / "test_5.png").read_bytes()
        r = rt.invoke_endpoint(EndpointName="cards", ContentType="image/png", Body=img)
        assert r["InvokedProductionVariant"] == "v2"
        other = json.loads((folder / "resnet18_3x64x64" / "predictions.json").read_text())["probabilities"]
        np.testing.assert_allclose(json.loads(r["Body"].read()), other["test_5.png"], atol=1e-4)

        srv.kill()  # endpoints come back after a restart
        srv.start()
        sm, rt = srv.client(), srv.client("sagemaker-runtime")
        sm.get_waiter("endpoint_in_service").wait(EndpointName="cards", WaiterConfig=FAST)
        r = rt.invoke_endpoint(EndpointName="cards", ContentType="image/png", Body=img)
        np.testing.assert_allclose(json.loads(r["Body"].read()), other["test_5.png"], atol=1e-4)

        sm.delete_endpoint(EndpointName="cards")
        sm.get_waiter("endpoint_deleted").wait(EndpointName="cards", WaiterConfig=FAST)
        sm.delete_endpoint_config(EndpointConfigName="cards-config")
        sm.delete_model(ModelName="cards")
        assert "cards" not in [m["ModelName"] for m in sm.list_models()["Models"]]
        with pytest.raises(ClientError, match="Could not find model"):
            sm.describe_model(ModelName="cards")
    finally:
        srv.stop()


def test_model_errors(server, fixtures, tmp_path):
    folder, _ = fixtures
    sm = server.client()
    with pytest.raises(ClientError, match="must point to a tar.gz file"):
        sm.create_model(
            ModelName="bad", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "x", "ModelDataUrl": str(folder)}
        )
    with pytest.raises(ClientError, match="Could not find model data"):
        sm.create_model(
            ModelName="bad",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": "x", "ModelDataUrl": str(tmp_path / "none.tar.gz")},
        )
    with pytest.raises(ClientError, match="Could not find model"):
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {"VariantName": "v", "ModelName": "missing", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
            ],
        )


def test_batch_transform(server, fixtures, tmp_path):
    folder, expected = fixtures
    sm = server.client()
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        shutil.copy(folder / f"test_{i}.png", images / f"test_{i}.png")
    sm.create_model(
        ModelName="batch-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "x", "ModelDataUrl": str(folder / "resnet20_3x28x28" / "model.tar.gz")},
    )
    sm.create_transform_job(
        TransformJobName="birds-batch",
        ModelName="batch-model",
        MaxConcurrentTransforms=16,
        MaxPayloadInMB=6,
        BatchStrategy="SingleRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": images.as_uri()}},
            "ContentType": "application/x-image",
            "SplitType": "None",
            "CompressionType": "None",
        },
        TransformOutput={"S3OutputPath": (tmp_path / "out").as_uri()},
        TransformResources={"InstanceCount": 1, "InstanceType": "ml.m5.large"},
    )
    sm.get_waiter("transform_job_completed_or_stopped").wait(TransformJobName="birds-batch", WaiterConfig=FAST)
    assert sm.describe_transform_job(TransformJobName="birds-batch")["TransformJobStatus"] == "Completed"
    for i in range(3):
        out = json.loads((tmp_path / "out" / f"test_{i}.png.out").read_text())
        np.testing.assert_allclose(out["prediction"], expected[f"test_{i}.png"], atol=1e-4)
