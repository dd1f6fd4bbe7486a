import pytest

from roost.algorithm.hyperparameters import HyperParameters
from roost.aws.shapes import check_request
from roost.web.forms import enum, hyperparameter_rows, place_errors, request_from_form


def test_a_form_becomes_the_request_its_member_paths_describe():
    req = request_from_form(
        "CreateTrainingJob",
        [
            ("csrf", "token"),
            ("trainingJobName", " job "),
            ("resourceConfig.instanceCount", "2"),
            ("resourceConfig.volumeSizeInGB", "lots"),
            ("hyperParameters.epochs", "3"),
            ("hyperParameters.top_k", ""),
            ("inputDataConfig.2.member.channelName", "validation"),
            ("inputDataConfig.1.member.channelName", "train"),
            ("inputDataConfig.1.member.dataSource.s3DataSource.attributeNames.2.member", "class"),
            ("inputDataConfig.1.member.dataSource.s3DataSource.attributeNames.1.member", "source-ref"),
            ("tags.1.member.key", "team"),
            ("tags.1.member.value", "birds"),
            ("enableNetworkIsolation", "on"),
        ],
    )
    assert req == {
        "TrainingJobName": "job",
        "ResourceConfig": {"InstanceCount": 2, "VolumeSizeInGB": "lots"},  # not a number: the API says so
        "HyperParameters": {"epochs": "3"},
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"AttributeNames": ["source-ref", "class"]}}},
            {"ChannelName": "validation"},
        ],
        "Tags": [{"Key": "team", "Value": "birds"}],
        "EnableNetworkIsolation": True,
    }
    with pytest.raises(KeyError):
        request_from_form("CreateTrainingJob", [("resourceConfig.nosuch", "1")])
    with pytest.raises(KeyError):
        request_from_form("CreateTrainingJob", [("trainingJobName.deeper", "1")])


def test_the_apis_errors_name_the_fields_they_go_beside():
    req = request_from_form(
        "CreateTrainingJob",
        [("trainingJobName", "bad name"), ("stoppingCondition.maxRuntimeInSeconds", "0")],
    )
    with pytest.raises(Exception) as caught:
        check_request("sagemaker", "CreateTrainingJob", req)
    fields = caught.value.fields
    assert "Member must satisfy regular expression pattern" in fields["trainingJobName"]
    assert "greater than or equal to 1" in fields["stoppingCondition.maxRuntimeInSeconds"]
    assert "Member must not be null" in fields["roleArn"]
    names = ["trainingJobName", "roleArn", "resourceConfig.instanceType", "stoppingCondition.maxRuntimeInSeconds"]
    placed, rest = place_errors({**fields, "resourceConfig": "Value null at 'resourceConfig'", "x": "y"}, names)
    assert set(placed) == {
        "trainingJobName",
        "roleArn",
        "stoppingCondition.maxRuntimeInSeconds",
        "resourceConfig.instanceType",
    }
    assert "y" in rest


def test_the_hyperparameter_table_comes_from_the_schema():
    rows = hyperparameter_rows()
    assert [r.name for r in rows] == list(HyperParameters.model_fields)
    by_name = {r.name: r for r in rows}
    assert by_name["num_classes"].required and by_name["num_classes"].value == ""
    assert by_name["num_layers"].value == "152" and by_name["image_shape"].value == "3,224,224"
    assert by_name["epochs"].help == HyperParameters.model_fields["epochs"].description
    cloned = {r.name: r.value for r in hyperparameter_rows({"epochs": "7", "sagemaker_program": "x"})}
    assert cloned["epochs"] == "7" and cloned["sagemaker_program"] == "x"  # a clone keeps what it was given


def test_choices_come_from_botocores_model():
    assert "ml.p3.2xlarge" in enum("TrainingInstanceType")
    assert {"S3Prefix", "ManifestFile", "AugmentedManifestFile"} <= set(enum("S3DataType"))
