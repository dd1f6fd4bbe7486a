"""Training requests, built in one place for every face: the defaults (the labs' instance type, volume and run
time), the blank request and tuning definition the console's forms and ``roost tune`` start from, a training job
cloned into a new request or into a tuning job's definition, and the training requests a tuning job launches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from roost.algorithm.layout import ChannelConfig
from roost.training.service import artifact_location, instance_count, metric_definitions, stored_request

#: the algorithm's image, as SageMaker's console fills it in for the built-in algorithm (us-east-1)
TRAINING_IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1"
#: the role a request made by Roost's own faces names (Roost records it; nothing assumes it)
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/roost"
#: what the labs ask for (workshop seed 003): one ml.p3.2xlarge, 50 GB, 100 hours
DEFAULT_RESOURCES: Mapping[str, Any] = {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}
DEFAULT_STOPPING: Mapping[str, Any] = {"MaxRuntimeInSeconds": 360000}
#: SageMaker's channel names for this algorithm
CHANNEL_NAMES = ("train", "validation", "train_lst", "validation_lst", "model")

_ALGORITHM_KEYS = ("TrainingImage", "TrainingInputMode")
_RESOURCE_KEYS = ("InstanceType", "InstanceCount", "VolumeSizeInGB")


def algorithm() -> dict[str, Any]:
    return {"TrainingImage": TRAINING_IMAGE, "TrainingInputMode": "File"}


def channel(name: str, uri: str = "", content_type: str = "application/x-recordio") -> dict[str, Any]:
    """A channel of ``S3Prefix`` data (an ``s3://`` prefix, a local path or a ``file://`` URI on Roost)."""
    out: dict[str, Any] = {"ChannelName": name, "ContentType": content_type, "CompressionType": "None"}
    if uri:
        out["DataSource"] = {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
        }
    return out


def blank_request(channels: Iterable[str] = ("train", "validation")) -> dict[str, Any]:
    """The console's create form before anything is typed."""
    return {
        "AlgorithmSpecification": algorithm(),
        "RoleArn": DEFAULT_ROLE,
        "ResourceConfig": dict(DEFAULT_RESOURCES),
        "StoppingCondition": dict(DEFAULT_STOPPING),
        "InputDataConfig": [channel(name) for name in channels],
        "OutputDataConfig": {"S3OutputPath": ""},
        "HyperParameters": {},
    }


def blank_definition() -> dict[str, Any]:
    """A tuning job's ``TrainingJobDefinition`` before anything is typed (the console's tuning form)."""
    request = blank_request()
    return {
        "AlgorithmSpecification": request["AlgorithmSpecification"],
        "RoleArn": request["RoleArn"],
        "HyperParameterTuningResourceConfig": request["ResourceConfig"],
        "StoppingCondition": request["StoppingCondition"],
        "InputDataConfig": request["InputDataConfig"],
        "OutputDataConfig": request["OutputDataConfig"],
        "StaticHyperParameters": {},
    }


def clone_request(job: Mapping[str, Any]) -> dict[str, Any]:
    """A described training job as a new request, without a name: the console's Clone."""
    keep = (
        "RoleArn",
        "ResourceConfig",
        "StoppingCondition",
        "InputDataConfig",
        "OutputDataConfig",
        "HyperParameters",
        "CheckpointConfig",
    )
    req = {k: job[k] for k in keep if k in job}
    req["AlgorithmSpecification"] = {
        k: v for k, v in (job.get("AlgorithmSpecification") or {}).items() if k in _ALGORITHM_KEYS
    }
    return req


def definition_from_job(job: Mapping[str, Any], tuned: Iterable[str] = ()) -> dict[str, Any]:
    """A described training job as a tuning job's definition: its data, resources and hyperparameters (less the
    ``tuned`` ones and what SageMaker's tools add)."""
    tuned = set(tuned)
    static = {
        k: v
        for k, v in (job.get("HyperParameters") or {}).items()
        if k not in tuned and not k.startswith(("_tuning", "sagemaker_"))
    }
    return {
        "StaticHyperParameters": static,
        "AlgorithmSpecification": {
            k: v for k, v in (job.get("AlgorithmSpecification") or algorithm()).items() if k in _ALGORITHM_KEYS
        },
        "RoleArn": job.get("RoleArn") or DEFAULT_ROLE,
        "InputDataConfig": job.get("InputDataConfig") or [],
        "OutputDataConfig": {"S3OutputPath": (job.get("OutputDataConfig") or {}).get("S3OutputPath", "")},
        "ResourceConfig": {k: v for k, v in (job.get("ResourceConfig") or {}).items() if k in _RESOURCE_KEYS},
        "StoppingCondition": job.get("StoppingCondition") or dict(DEFAULT_STOPPING),
    }


def from_definition(
    definition: Mapping[str, Any], job_name: str, hyperparameters: Mapping[str, str], tags: list | None
) -> dict[str, Any]:
    """The CreateTrainingJob request of one training job of a tuning job, from its ``TrainingJobDefinition``."""
    d = definition
    resources = d.get("ResourceConfig") or d.get("HyperParameterTuningResourceConfig") or {}
    req: dict[str, Any] = {
        "TrainingJobName": job_name,
        "HyperParameters": dict(hyperparameters),
        "AlgorithmSpecification": {
            k: v
            for k, v in d["AlgorithmSpecification"].items()
            if k in ("TrainingImage", "AlgorithmName", "TrainingInputMode", "MetricDefinitions")
        },
        "RoleArn": d["RoleArn"],
        "InputDataConfig": d.get("InputDataConfig") or [],
        "OutputDataConfig": d["OutputDataConfig"],
        "ResourceConfig": {
            **DEFAULT_RESOURCES,
            **{k: v for k, v in resources.items() if k in (*_RESOURCE_KEYS, "VolumeKmsKeyId")},
        },
        "StoppingCondition": d["StoppingCondition"],
    }
    for key in (
        "VpcConfig",
        "EnableNetworkIsolation",
        "EnableInterContainerTrafficEncryption",
        "EnableManagedSpotTraining",
        "CheckpointConfig",
        "RetryStrategy",
        "Environment",
    ):
        if d.get(key) is not None:
            req[key] = d[key]
    if tags:
        req["Tags"] = tags
    return req


@dataclass(frozen=True)
class Channel:
    """One ``InputDataConfig`` member, as a job's hosts get it."""

    name: str
    uri: str  # the S3Uri: an s3:// prefix, a local path or a file:// URI
    sharded: bool  # ShardedByS3Key: each host its own objects
    config: ChannelConfig  # what inputdataconfig.json says of it


@dataclass(frozen=True)
class TrainingRequest:
    """A stored CreateTrainingJob request, typed: the members that running a job reads, named once here instead
    of looked up in nested dicts wherever they are needed. Made from a request already whole (``stored_request``)."""

    name: str
    channels: tuple[Channel, ...]
    hyperparameters: Mapping[str, str]
    environment: Mapping[str, str]
    instance_type: str
    instance_count: int
    checkpoint_uri: str | None  # CheckpointConfig.S3Uri
    resumable: bool  # a CheckpointConfig was given: a restart resumes from the last checkpoint
    max_runtime: int | None  # StoppingCondition.MaxRuntimeInSeconds
    metric_definitions: tuple[dict, ...]
    artifact: str | None  # where model.tar.gz goes: <S3OutputPath>/<job>/output/model.tar.gz

    @classmethod
    def of(cls, request: Mapping[str, Any], name: str | None = None) -> TrainingRequest:
        """The view of a stored request; ``name``: the job's (a stored row's own name wins over its request's)."""
        req = stored_request(request)
        input_mode = req["AlgorithmSpecification"].get("TrainingInputMode", "File")
        count = instance_count(req)
        channels = []
        for ch in req["InputDataConfig"]:
            source = (ch.get("DataSource") or {}).get("S3DataSource") or {}
            channels.append(
                Channel(
                    name=ch["ChannelName"],
                    uri=source.get("S3Uri", ""),
                    sharded=count > 1 and source.get("S3DataDistributionType") == "ShardedByS3Key",
                    config=ChannelConfig.from_request(ch, input_mode),
                )
            )
        checkpoint = req.get("CheckpointConfig")
        name = name or str(req.get("TrainingJobName", ""))
        return cls(
            name=name,
            channels=tuple(channels),
            hyperparameters=req["HyperParameters"],
            environment=req.get("Environment") or {},
            instance_type=req["ResourceConfig"].get("InstanceType", "local"),
            instance_count=count,
            checkpoint_uri=(checkpoint or {}).get("S3Uri"),
            resumable=checkpoint is not None,
            max_runtime=req["StoppingCondition"].get("MaxRuntimeInSeconds"),
            metric_definitions=tuple(metric_definitions(req)),
            artifact=artifact_location(req, name),
        )
