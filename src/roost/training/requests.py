"""Training requests, built in one place for every face: the defaults (the labs' instance type, volume and run
time), the blank request and tuning definition the console's forms and ``roost tune`` start from, a training job
cloned into a new request or into a tuning job's definition, and the training requests a tuning job launches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
