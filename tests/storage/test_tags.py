"""Tags on every resource, through the operations' own checks: AddTags, ListTags, DeleteTags and Create*'s Tags."""

import pytest

from helpers import Api
from roost.aws import ServiceError
from roost.serving.endpoints import EndpointService
from roost.serving.transform import TransformJobService
from roost.storage.database import open_database
from roost.storage.tags import TagService
from roost.training.service import TrainingJobService


@pytest.fixture()
def api(database_url, tmp_path, recs):
    sessions = open_database(database_url)
    return Api(
        TrainingJobService(sessions),
        EndpointService(sessions, tmp_path),
        TransformJobService(sessions, tmp_path),
        TagService(sessions),
    )


def test_tags_of_creation_additions_listing_paging_and_deletion(api, mxnet_fixtures, tmp_path):
    url = str(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz")
    arn = api(
        "CreateModel",
        {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": url}, "Tags": [{"Key": "team", "Value": "birds"}]},
    )["ModelArn"]
    assert api("ListTags", {"ResourceArn": arn})["Tags"] == [{"Key": "team", "Value": "birds"}]
    api("AddTags", {"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "owls"}, {"Key": "stage", "Value": "dev"}]})
    assert api("ListTags", {"ResourceArn": arn})["Tags"] == [
        {"Key": "team", "Value": "owls"},
        {"Key": "stage", "Value": "dev"},
    ]
    api("AddTags", {"ResourceArn": arn, "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(48)]})
    first = api("ListTags", {"ResourceArn": arn, "MaxResults": 50})
    assert len(first["Tags"]) == 50 and "NextToken" not in first
    with pytest.raises(ServiceError, match="would have 51 tags; the limit is 50"):
        api("AddTags", {"ResourceArn": arn, "Tags": [{"Key": "one-more", "Value": "v"}]})
    api("DeleteTags", {"ResourceArn": arn, "TagKeys": [f"k{i}" for i in range(48)]})
    assert [t["Key"] for t in api("ListTags", {"ResourceArn": arn})["Tags"]] == ["team", "stage"]
    api("DeleteModel", {"ModelName": "m"})
    with pytest.raises(ServiceError, match="does not exist"):
        api("ListTags", {"ResourceArn": arn})


def test_training_jobs_carry_their_tags(api, recs, tmp_path):
    train, val, n = recs
    req = {
        "TrainingJobName": "tagged",
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "AlgorithmSpecification": {"TrainingImage": "image-classification", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": (tmp_path / "out").as_uri()},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "HyperParameters": {"num_classes": "3", "num_training_samples": str(n), "mini_batch_size": "8"},
        "InputDataConfig": [
            {"ChannelName": c, "DataSource": {"S3DataSource": {"S3Uri": str(p), "S3DataType": "S3Prefix"}}}
            for c, p in (("train", train), ("validation", val))
        ],
        "Tags": [{"Key": "project", "Value": "lab2"}],
    }
    arn = api("CreateTrainingJob", req)["TrainingJobArn"]
    assert api("ListTags", {"ResourceArn": arn})["Tags"] == [{"Key": "project", "Value": "lab2"}]
    with pytest.raises(ServiceError, match="arn:aws:sagemaker:us-east-1:000000000000:model/nothing does not exist"):
        api("AddTags", {"ResourceArn": "arn:aws:sagemaker:us-east-1:000000000000:model/nothing", "Tags": []})
