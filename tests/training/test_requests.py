"""Training requests built in one place, and the typed view the runner reads."""

from roost.training.requests import (
    DEFAULT_RESOURCES,
    TrainingRequest,
    blank_definition,
    blank_request,
    channel,
    clone_request,
    definition_from_job,
    from_definition,
)


def _job() -> dict:
    return {
        "TrainingJobName": "birds",
        "AlgorithmSpecification": {"TrainingImage": "ic", "TrainingInputMode": "File", "MetricDefinitions": []},
        "RoleArn": "arn:aws:iam::1:role/r",
        "HyperParameters": {"epochs": "3", "learning_rate": "0.1", "_tuning_objective_metric": "x"},
        "InputDataConfig": [
            channel("train", "s3://b/train/"),
            {**channel("validation", "/data/val"), "ContentType": "application/x-image"},
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "CheckpointConfig": {"S3Uri": "s3://b/ckpt"},
    }


def test_the_view_names_what_running_a_job_reads():
    job = _job()
    job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "ShardedByS3Key"
    view = TrainingRequest.of(job)
    assert (view.name, view.instance_count, view.instance_type, view.max_runtime) == ("birds", 2, "ml.m5.large", 60)
    assert view.checkpoint_uri == "s3://b/ckpt" and view.resumable
    assert view.artifact == "s3://b/out/birds/output/model.tar.gz"
    assert [(c.name, c.uri, c.sharded) for c in view.channels] == [
        ("train", "s3://b/train/", True),
        ("validation", "/data/val", False),
    ]
    assert view.channels[1].config.content_type == "application/x-image"
    assert view.metric_definitions[0]["Name"] == "train:accuracy"
    odd = TrainingRequest.of({"AlgorithmSpecification": None}, "odd")
    assert (odd.name, odd.channels, odd.resumable, odd.artifact) == ("odd", (), False, None)


def test_clones_and_definitions_start_from_the_same_defaults():
    assert blank_request()["ResourceConfig"] == dict(DEFAULT_RESOURCES)
    assert blank_definition()["HyperParameterTuningResourceConfig"] == dict(DEFAULT_RESOURCES)
    clone = clone_request(_job())
    assert "TrainingJobName" not in clone and clone["AlgorithmSpecification"] == {
        "TrainingImage": "ic",
        "TrainingInputMode": "File",
    }
    definition = definition_from_job(_job(), tuned={"learning_rate"})
    assert definition["StaticHyperParameters"] == {"epochs": "3"}
    request = from_definition(definition, "birds-001", {"learning_rate": "0.2"}, [{"Key": "k", "Value": "v"}])
    assert request["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 5}
    assert request["TrainingJobName"] == "birds-001" and request["Tags"] == [{"Key": "k", "Value": "v"}]
