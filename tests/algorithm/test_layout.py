"""The /opt/ml layout: config files as SageMaker writes them, channels described from requests and from files."""

import json

import pytest

from roost.algorithm.layout import (
    MAX_PROCESSES,
    ChannelConfig,
    JobLayout,
    ResourceConfig,
    describe_local_channel,
    parse_float32_math,
    parse_processes,
    prepare_local_job,
)


def test_config_files_round_trip_in_sagemakers_shapes(tmp_path):
    layout = JobLayout(tmp_path)
    channels = {"train": ChannelConfig("application/x-recordio"), "model": ChannelConfig()}
    layout.write_config({"epochs": "3"}, channels, ResourceConfig.for_host(1, 3, "ml.p3.2xlarge"))
    data_config = json.loads(layout.input_data_config_file.read_text())
    assert data_config["train"] == {
        "ContentType": "application/x-recordio",
        "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated",
        "RecordWrapperType": "None",
    }
    assert "ContentType" not in data_config["model"]
    resources = json.loads(layout.resource_config_file.read_text())
    assert resources["current_host"] == "algo-2" and resources["hosts"] == ["algo-1", "algo-2", "algo-3"]
    assert resources["instance_groups"][0]["instance_group_name"] == resources["current_group_name"]
    assert layout.read_hyperparameters() == {"epochs": "3"}
    assert layout.read_channels() == channels
    assert layout.read_resources() == ResourceConfig.for_host(1, 3, "ml.p3.2xlarge")


def test_hosts_sort_as_strings_as_sagemaker_sorts_them():
    assert ResourceConfig.for_host(0, 10).hosts[:3] == ["algo-1", "algo-10", "algo-2"]


def test_a_request_channel_becomes_its_config_entry():
    channel = {
        "ChannelName": "train",
        "ContentType": "application/x-recordio",
        "RecordWrapperType": "RecordIO",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": "s3://b/m",
                "S3DataDistributionType": "ShardedByS3Key",
                "AttributeNames": ["source-ref", "class"],
            }
        },
    }
    config = ChannelConfig.from_request(channel, "Pipe")
    assert config.to_json() == {
        "ContentType": "application/x-recordio",
        "TrainingInputMode": "Pipe",
        "S3DistributionType": "ShardedByS3Key",
        "RecordWrapperType": "RecordIO",
        "S3DataType": "AugmentedManifestFile",
        "AttributeNames": ["source-ref", "class"],
    }
    assert config.is_augmented_manifest


def test_content_types_from_the_files(tmp_path):
    (tmp_path / "images" / "a").mkdir(parents=True)
    (tmp_path / "recs").mkdir()
    (tmp_path / "recs" / "x.rec").write_bytes(b"")
    (tmp_path / "m.manifest").write_text("{}\n")
    assert describe_local_channel("train", tmp_path / "images").content_type == "application/x-image"
    assert describe_local_channel("train", tmp_path / "recs").content_type == "application/x-recordio"
    manifest = describe_local_channel("train", tmp_path / "m.manifest", attribute_names=["source-ref", "class"])
    assert manifest.s3_data_type == "AugmentedManifestFile" and manifest.attribute_names == ["source-ref", "class"]
    assert describe_local_channel("model", tmp_path / "recs").content_type == "application/x-sagemaker-model"
    assert ChannelConfig(s3_data_type="AugmentedManifestFile").media_type(tmp_path / "images") == (
        "application/x-recordio",
        {},
    )
    assert ChannelConfig("application/x-recordio; label-format=class-id").media_type(tmp_path) == (
        "application/x-recordio",
        {"label-format": "class-id"},
    )


def test_a_local_job_links_its_channels_and_clears_stale_state(tmp_path):
    (tmp_path / "data").mkdir()
    rec = tmp_path / "data" / "train.rec"
    rec.write_bytes(b"")
    (tmp_path / "data" / "train.idx").write_text("")
    (tmp_path / "data" / "classes.json").write_text("[]")
    job = tmp_path / "job"
    (job / "input" / "data" / "old").mkdir(parents=True)
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "state").write_text("x")
    layout = prepare_local_job(job, {"train": rec}, {"epochs": "1"})
    assert sorted(p.name for p in layout.channel("train").iterdir()) == ["classes.json", "train.idx", "train.rec"]
    assert not (layout.data / "old").exists() and list(layout.checkpoints.iterdir()) == []
    (layout.checkpoints / "state").write_text("x")
    prepare_local_job(job, {"train": rec}, {"epochs": "1"}, keep_state=True)
    assert (layout.checkpoints / "state").is_file()


def test_the_environment_settings_are_read_by_one_rule():
    """The server checks a job's Environment and the container reads it with the same two functions."""
    assert parse_processes("cores") is None and parse_processes(" 2 ") == 2
    assert parse_processes(str(MAX_PROCESSES)) == MAX_PROCESSES
    for bad in ("0", "-1", "+2", "1.5", "many", str(MAX_PROCESSES + 1), "", "²", "٣"):
        with pytest.raises(ValueError, match="give a number of processes per host"):
            parse_processes(bad)
    assert parse_float32_math(" BF16 ") == "bf16" and parse_float32_math("") == "ieee"
    with pytest.raises(ValueError, match="ROOST_FLOAT32_MATH='tf32': give one of ieee, bf16"):
        parse_float32_math("tf32")
