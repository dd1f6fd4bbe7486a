"""Batch transform in-process, without HTTP: one output per image, the job's request answered back."""

from __future__ import annotations

import json
import time

import numpy as np

from roost.serving.endpoints import EndpointService
from roost.serving.transform import TransformJobService
from roost.storage.database import open_database


def test_batch_transform_writes_one_output_per_image(database_url, model, tmp_path):
    folder, url, expected = model
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        (images / f"test_{i}.png").write_bytes((folder / f"test_{i}.png").read_bytes())
    (images / "notes.txt").write_text("not an image")
    sessions = open_database(database_url)
    EndpointService(sessions, tmp_path / "data").create_model(
        {"ModelName": "batch", "PrimaryContainer": {"ModelDataUrl": url}}
    )
    transform = TransformJobService(sessions, tmp_path / "data")
    transform.create_transform_job(
        {
            "TransformJobName": "birds-batch",
            "ModelName": "batch",
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": images.as_uri()}}},
            "TransformOutput": {"S3OutputPath": (tmp_path / "out").as_uri()},
            "TransformResources": {"InstanceCount": 1, "InstanceType": "ml.m5.large"},
            "BatchStrategy": "SingleRecord",
            "MaxPayloadInMB": 6,
            "Environment": {"STAGE": "test"},
        }
    )
    deadline = time.time() + 60
    while (d := transform.describe_transform_job({"TransformJobName": "birds-batch"}))[
        "TransformJobStatus"
    ] == "InProgress":
        assert time.time() < deadline
        time.sleep(0.05)
    assert d["TransformJobStatus"] == "Failed" and "notes.txt" in d["FailureReason"]
    # what the job was given comes back, as Transformer.attach reads it
    assert (d["BatchStrategy"], d["MaxPayloadInMB"], d["Environment"]) == ("SingleRecord", 6, {"STAGE": "test"})
    assert d["TransformResources"]["InstanceType"] == "ml.m5.large" and d["ModelName"] == "batch"
    assert d["FailureReason"].startswith("ClientError: ")
    for i in range(2):
        out = json.loads((tmp_path / "out" / f"test_{i}.png.out").read_text())
        np.testing.assert_allclose(out["prediction"], expected[f"test_{i}.png"], atol=1e-4)
