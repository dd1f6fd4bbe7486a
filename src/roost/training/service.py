"""SageMaker's training-job operations on Roost's job database.

``CreateTrainingJob``, ``DescribeTrainingJob``, ``ListTrainingJobs`` and
``StopTrainingJob`` take and return the same shapes as SageMaker (docs/sagemaker.md, "The API"),
and fail with SageMaker's error codes and messages (:class:`ServiceError`). The
runner (``roost.training.runner``) moves the jobs through their statuses.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from roost.algorithm.hyperparameters import HyperparameterError, parse_hyperparameters
from roost.algorithm.layout import FLOAT32_MATH_ENV, PROCS_ENV, SEED_ENV, parse_float32_math, parse_processes
from roost.algorithm.metrics import METRIC_VALUE
from roost.aws import (
    Account,
    Service,
    ServiceError,
    camel,
    operation,
    validation,
)
from roost.aws.shapes import conforming, echoed
from roost.storage.database import inserting
from roost.storage.listing import list_page, with_token
from roost.storage.tables import ACTIVE, TERMINAL, SecondaryStatus, StatusTransition, TrainingJob, TrainingJobStatus
from roost.storage.tags import set_tags
from roost.storage.uri import DataRoots, Location, StorageError, exists

#: SageMaker's built-in metrics for this algorithm (their regexes are not published; these match its log lines).
#: DescribeTrainingJob lists them in AlgorithmSpecification.MetricDefinitions, as the SDK's analytics expect.
BUILTIN_METRICS = [
    {"Name": "train:accuracy", "Regex": rf"Epoch\[\d+\] Train-accuracy=({METRIC_VALUE})"},
    {"Name": "validation:accuracy", "Regex": rf"Epoch\[\d+\] Validation-accuracy=({METRIC_VALUE})"},
    {"Name": "train:top_k_accuracy", "Regex": rf"Epoch\[\d+\] Train-top_k_accuracy_\d+=({METRIC_VALUE})"},
    {"Name": "validation:top_k_accuracy", "Regex": rf"Epoch\[\d+\] Validation-top_k_accuracy_\d+=({METRIC_VALUE})"},
]


def metric_definitions(request: dict) -> list[dict]:
    """The built-in definitions, then the job's own (``AlgorithmSpecification.MetricDefinitions``)."""
    own = _list(_dict(request.get("AlgorithmSpecification")).get("MetricDefinitions"))
    names = {d["Name"] for d in BUILTIN_METRICS}
    return BUILTIN_METRICS + [d for d in own if isinstance(d, dict) and d.get("Name") not in names]


def artifact_location(request: dict, name: str) -> str | None:
    """Where the job's model.tar.gz is (or will be) uploaded: ``<S3OutputPath>/<job>/output/model.tar.gz``; None
    for a stored request without an output path (no request accepted today lacks one)."""
    path = _dict(request.get("OutputDataConfig")).get("S3OutputPath")
    if not isinstance(path, str) or not path:
        return None
    try:
        return Location.parse(path).join(name, "output", "model.tar.gz")
    except StorageError:
        return None


#: what SageMaker fills in when a CreateTrainingJob leaves it out (its API reference: one day of training)
DEFAULT_STOPPING_CONDITION = {"MaxRuntimeInSeconds": 86400}


def _required(explanation: str, field: str) -> ServiceError:
    """A member SageMaker requires and the request leaves out (or sends as null), named as AWS names it."""
    message = (
        f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be "
        f"null. {explanation}"
    )
    return validation(message, {field: explanation})


def _check_request(req: dict) -> None:
    """The request rules botocore's model does not state (it checks names, types, patterns and lengths before a
    handler runs, and leaves these optional for kinds of job this algorithm is not): the algorithm and the
    instances must be named, and there is nothing to train on without channels of S3 data (local paths and
    ``file://`` too, on a Roost server). Each missing member is named as AWS names it."""
    if not req.get("AlgorithmSpecification"):
        raise _required(
            "AlgorithmSpecification is required: give the algorithm's TrainingImage (image-classification) and a "
            "TrainingInputMode (File or Pipe)",
            "algorithmSpecification",
        )
    resources = req.get("ResourceConfig")
    if not resources:
        raise _required(
            "ResourceConfig is required: give InstanceType, InstanceCount and VolumeSizeInGB", "resourceConfig"
        )
    if not resources.get("InstanceGroups"):
        for member in ("InstanceType", "InstanceCount"):
            if member not in resources:
                raise _required(
                    f"ResourceConfig.{member} is required (or InstanceGroups)", f"resourceConfig.{camel(member)}"
                )
        if resources["InstanceCount"] < 1:
            message = (
                f"ResourceConfig.InstanceCount is {resources['InstanceCount']}; a training job needs at least 1 "
                "instance"
            )
            raise validation(message, {"resourceConfig.instanceCount": message})
    if not req.get("InputDataConfig"):
        raise validation(
            "InputDataConfig is required: the image-classification algorithm reads its data from a 'train' "
            "channel (and 'validation', or the _lst and model channels of image mode)"
        )
    for i, channel in enumerate(req["InputDataConfig"], 1):
        source = channel["DataSource"]
        if not source.get("S3DataSource"):
            other = next(iter(source), None)
            raise _required(
                f"InputDataConfig channel {channel['ChannelName']!r} has no DataSource.S3DataSource"
                + (f" ({other} is not supported by Roost)" if other else "")
                + ": give its S3Uri (s3://, file:// or a local path) and S3DataType",
                f"inputDataConfig.{i}.member.dataSource.s3DataSource",
            )


def instance_count(req: dict) -> int:
    """The hosts a training job runs on: ResourceConfig's InstanceCount, or its instance groups' together."""
    resources = _dict(req.get("ResourceConfig"))
    groups = _list(resources.get("InstanceGroups"))
    count = sum(_dict(g).get("InstanceCount", 1) for g in groups) if groups else resources.get("InstanceCount", 1)
    return max(1, count) if isinstance(count, int) else 1


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def stored_request(raw: Any) -> dict:
    """A stored CreateTrainingJob request as every reader may use it: what no longer fits its shape (a row an older
    Roost or a past bug left: nulls, a missing member, a member of the wrong kind) read as SageMaker's defaults, so
    that one odd row never breaks a Describe, a list or a console page."""
    req = conforming("sagemaker", "CreateTrainingJob", raw)
    req["AlgorithmSpecification"] = req.get("AlgorithmSpecification") or {"TrainingInputMode": "File"}
    req.setdefault("ResourceConfig", {})
    req.setdefault("OutputDataConfig", {"S3OutputPath": ""})
    req.setdefault("HyperParameters", {})
    req.setdefault("StoppingCondition", dict(DEFAULT_STOPPING_CONDITION))
    req.setdefault("InputDataConfig", [])
    return req


#: ``Environment`` names a job may set (exact, or a prefix ending in ``*``). Jobs are processes of the server's
#: host, not containers: anything that steers the interpreter, the loader or a library (PYTHON*, LD_*, BROWSER,
#: PATH, ...) could run code as the server, so only these pass; ``roost server --job-env-allow`` adds names.
DEFAULT_JOB_ENV_ALLOW = (
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TZ",
    "SM_*",
    "SAGEMAKER_*",
    SEED_ENV,  # the run's random seed
    PROCS_ENV,  # the process plan (docs/distributed.md); never more processes than the host has cores
    FLOAT32_MATH_ENV,  # opt-in bfloat16 math for float32 on CPUs (docs/hyperparameters.md)
)


class EnvironmentPolicy:
    def __init__(self, allow: tuple[str, ...] | list[str] = DEFAULT_JOB_ENV_ALLOW) -> None:
        self.allow = tuple(allow)

    def allows(self, name: str) -> bool:
        return any(name.startswith(a[:-1]) if a.endswith("*") else name == a for a in self.allow)

    def check(self, environment: dict) -> None:
        refused = sorted(name for name in environment if not self.allows(name))
        if refused:
            raise validation(
                f"Environment variable{'s' if len(refused) > 1 else ''} {', '.join(refused)} not allowed: Roost runs "
                "training jobs as processes of its host, so variables that could change how the interpreter, the "
                f"loader or a library behave are refused. Allowed: {', '.join(self.allow)} (the operator adds more "
                "with roost server --job-env-allow)."
            )
        for name, parse in ((FLOAT32_MATH_ENV, parse_float32_math), (PROCS_ENV, parse_processes)):
            if name in environment:  # the container reads them with the same functions
                try:
                    parse(str(environment[name]))
                except ValueError as err:
                    raise validation(f"Environment variable {err}") from None


class TrainingJobService(Service):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        account: Account | None = None,
        *,
        max_active_jobs: int = 100,
        roots: DataRoots | None = None,
        environment: EnvironmentPolicy | None = None,
        max_instances: int = 8,
    ) -> None:
        self.sessions = sessions
        self.account = account or Account()
        self.max_active_jobs = max_active_jobs  # beyond this CreateTrainingJob answers ResourceLimitExceeded
        self.max_instances = max_instances  # a job's hosts; roost server --max-instances-per-job
        self.roots = roots  # the local folders jobs may read and write; None: any (tests of the service alone)
        self.environment = environment or EnvironmentPolicy()

    def arn(self, name: str) -> str:
        return self.account.arn("training-job", name)

    # ------------------------------------------------------------------ CreateTrainingJob

    @operation("CreateTrainingJob")
    def create_training_job(self, req: dict) -> dict:
        return self.create(req)

    def check(self, req: dict) -> dict:
        """Every rule a CreateTrainingJob request must meet beyond its botocore shape (ValidationException if not),
        then the request made whole, as it is stored: SageMaker's defaults filled in. A tuning job checks its
        training definition with this before it launches anything."""
        _check_request(req)
        if (hosts := instance_count(req)) > self.max_instances:
            message = (
                f"ResourceConfig.InstanceCount is {hosts}; this server runs a training job on at most "
                f"{self.max_instances} instances (what its machine, or cluster, can run at once). The operator "
                "raises the limit with roost server --max-instances-per-job and --max-running-instances."
            )
            raise ServiceError("ResourceLimitExceeded", message, fields={"resourceConfig.instanceCount": message})
        try:
            parse_hyperparameters(req.get("HyperParameters") or {})
        except HyperparameterError as err:
            fields = {f"hyperParameters.{name}": "; ".join(found) for name, found in err.fields.items()}
            raise validation("Invalid hyperparameters: " + "; ".join(err.problems), fields) from None
        self.environment.check(req.get("Environment") or {})
        channel_names = [c["ChannelName"] for c in req["InputDataConfig"]]
        if len(set(channel_names)) != len(channel_names):
            raise validation(f"Channel names must be unique: {channel_names}")
        for key, field, uri in (
            ("OutputDataConfig", "outputDataConfig.s3OutputPath", req["OutputDataConfig"]["S3OutputPath"]),
            ("CheckpointConfig", "checkpointConfig.s3Uri", (req.get("CheckpointConfig") or {}).get("S3Uri")),
        ):
            try:
                if uri is not None and self.roots is not None:
                    self.roots.check_uri(uri, f"{key} location")
                elif uri is not None:
                    Location.parse(uri)
            except StorageError as err:
                raise validation(str(err), {field: str(err)}) from None
        for i, ch in enumerate(req["InputDataConfig"], 1):
            uri = ch["DataSource"]["S3DataSource"]["S3Uri"]
            where = f"inputDataConfig.{i}.member.dataSource.s3DataSource.s3Uri"  # the member path, as AWS names it
            try:
                ok = exists(uri, self.roots)
            except StorageError as err:
                raise validation(str(err), {where: str(err)}) from None
            if not ok:
                message = (
                    f"No S3 objects found under S3 URL '{uri}' given in input data source. Please ensure "
                    "that the bucket exists in the selected region, that objects exist under that S3 prefix, "
                    "and that the credentials can list them."
                )
                raise validation(message, {where: message})
        return {**req, "StoppingCondition": req.get("StoppingCondition") or dict(DEFAULT_STOPPING_CONDITION)}

    def create(self, req: dict, *, tuning_job_arn: str | None = None) -> dict:
        """A new training job, queued for the runner; ``tuning_job_arn`` when a tuning job launched it."""
        req = self.check(req)
        name = req["TrainingJobName"]
        now = time.time()

        def in_use() -> ServiceError:
            message = (
                f"Training job names must be unique within an AWS account and region, "
                f"and a training job with this name already exists ({self.arn(name)})"
            )
            return ServiceError("ResourceInUse", message, fields={"trainingJobName": message})

        with inserting(self.sessions, in_use) as s:
            if s.get(TrainingJob, name) is not None:
                raise in_use()
            active = s.scalar(select(func.count()).select_from(TrainingJob).where(TrainingJob.status.in_(ACTIVE))) or 0
            if active >= self.max_active_jobs:
                raise ServiceError(
                    "ResourceLimitExceeded",
                    f"The account-level service limit 'Number of concurrent "
                    f"training jobs' is {self.max_active_jobs} Jobs; {active} are in progress.",
                )
            s.add(
                TrainingJob(
                    name=name,
                    arn=self.arn(name),
                    request=req,
                    status=TrainingJobStatus.IN_PROGRESS,
                    secondary_status=SecondaryStatus.STARTING,
                    creation_time=now,
                    last_modified_time=now,
                    stop_requested=False,
                    log_stream=f"{name}/algo-1-{int(now)}",
                    tuning_job_arn=tuning_job_arn,
                )
            )
            set_tags(s, self.arn(name), req.get("Tags"))
            s.flush()  # the job row before rows that refer to it (no ORM relationship orders them)
            s.add(
                StatusTransition(
                    job_name=name, status=SecondaryStatus.STARTING, start_time=now, message="Starting the training job"
                )
            )
        return {"TrainingJobArn": self.arn(name)}

    # ------------------------------------------------------------------ Describe / List / Stop

    def _job(self, s: Session, name: str | None) -> TrainingJob:
        job = s.get(TrainingJob, name) if isinstance(name, str) else None
        if job is None:
            # what SageMaker really answers for an unknown training job
            raise validation("Requested resource not found.")
        return job

    @operation("DescribeTrainingJob")
    def describe_training_job(self, req: dict) -> dict:
        with self.sessions() as s:
            job = self._job(s, req.get("TrainingJobName"))
            transitions = s.scalars(
                select(StatusTransition).where(StatusTransition.job_name == job.name).order_by(StatusTransition.id)
            ).all()
            return describe(job, transitions)

    @operation("ListTrainingJobs")
    def list_training_jobs(self, req: dict) -> dict:
        rows, token = list_page(
            self.sessions,
            TrainingJob,
            req,
            default_order="Ascending",
            name=TrainingJob.name,
            created=TrainingJob.creation_time,
            modified=TrainingJob.last_modified_time,
            status=TrainingJob.status,
        )
        return with_token({"TrainingJobSummaries": [summary(j) for j in rows]}, token)

    @operation("StopTrainingJob")
    def stop_training_job(self, req: dict) -> dict:
        self.stop(req.get("TrainingJobName"))
        return {}

    def stop(self, name: Any, message: str = "Stopping the training job") -> None:
        """Ask the runner to stop a job; ``message`` says why in its SecondaryStatusTransitions (a tuning job
        that stops one early says so)."""
        with self.sessions.begin() as s:
            if not isinstance(name, str) or s.get(TrainingJob, name) is None:
                raise ServiceError("ResourceNotFound", f"Training job {name} does not exist.")
            job = self._job(s, name)
            if job.status in TERMINAL:
                raise validation(f"The request was rejected because the training job is in status {job.status}.")
            if job.status == TrainingJobStatus.IN_PROGRESS:
                job.stop_requested = True
                set_status(s, job, TrainingJobStatus.STOPPING, SecondaryStatus.STOPPING, message)


# ---------------------------------------------------------------------- shapes and transitions


def set_status(
    s: Session, job: TrainingJob, status: TrainingJobStatus | None, secondary: SecondaryStatus, message: str
) -> None:
    """Record a secondary-status change (closing the previous one) and, optionally, the primary status.

    A new message in the same secondary status updates the open transition, as SageMaker's does ("Starting the
    training job", then "Preparing the instances for training", in one ``Starting`` step; the SDK prints each
    message as it changes): a status appears once in ``SecondaryStatusTransitions``, its latest message with it.
    """
    # The job's row first, its transitions after, in every writer: the runner's change of step and a stop (the
    # API's, or a tuning job ending its trials) otherwise locked them in opposite orders and PostgreSQL broke the
    # deadlock by failing one of them (SQLite has no row locks and leaves out FOR UPDATE).
    s.execute(select(TrainingJob.name).where(TrainingJob.name == job.name).with_for_update())
    now = time.time()
    last = s.scalars(
        select(StatusTransition)
        .where(StatusTransition.job_name == job.name)
        .order_by(StatusTransition.id.desc())
        .limit(1)
    ).first()
    if last is not None and last.end_time is None and last.status == secondary:
        if last.message == message and (status is None or job.status == status):
            return
        last.message = message
    else:
        if last is not None and last.end_time is None:
            last.end_time = now
        s.add(StatusTransition(job_name=job.name, status=secondary, start_time=now, message=message))
    job.secondary_status = secondary
    if status:
        job.status = status
    job.last_modified_time = now


def summary(job: TrainingJob) -> dict:
    out = {
        "TrainingJobName": job.name,
        "TrainingJobArn": job.arn,
        "CreationTime": job.creation_time,
        "LastModifiedTime": job.last_modified_time,
        "TrainingJobStatus": job.status,
        "SecondaryStatus": job.secondary_status,
    }
    if job.training_end_time:
        out["TrainingEndTime"] = job.training_end_time
    return out


def describe(job: TrainingJob, transitions: Sequence[StatusTransition]) -> dict:
    req = stored_request(job.request)
    out: dict[str, Any] = {
        **echoed("sagemaker", "CreateTrainingJob", "DescribeTrainingJob", req),
        "TrainingJobName": job.name,
        "TrainingJobArn": job.arn,
        # the model requires it; SageMaker names the location before anything is there
        "ModelArtifacts": {"S3ModelArtifacts": job.model_artifacts or artifact_location(req, job.name) or ""},
        "TrainingJobStatus": job.status,
        "SecondaryStatus": job.secondary_status,
        "AlgorithmSpecification": {**req["AlgorithmSpecification"], "MetricDefinitions": metric_definitions(req)},
        "RoleArn": req.get("RoleArn"),
        "HyperParameters": req["HyperParameters"],
        "InputDataConfig": req["InputDataConfig"],
        "OutputDataConfig": {"KmsKeyId": "", **req["OutputDataConfig"]},
        "ResourceConfig": req["ResourceConfig"],
        "StoppingCondition": req["StoppingCondition"],
        "CreationTime": job.creation_time,
        "LastModifiedTime": job.last_modified_time,
        "SecondaryStatusTransitions": [
            {
                k: v
                for k, v in (
                    ("Status", t.status),
                    ("StartTime", t.start_time),
                    ("EndTime", t.end_time),
                    ("StatusMessage", t.message),
                )
                if v is not None
            }
            for t in transitions
        ],
        "EnableNetworkIsolation": req.get("EnableNetworkIsolation", False),
        "EnableInterContainerTrafficEncryption": req.get("EnableInterContainerTrafficEncryption", False),
        "EnableManagedSpotTraining": req.get("EnableManagedSpotTraining", False),
    }
    if job.failure_reason:
        out["FailureReason"] = job.failure_reason
    if job.training_start_time:
        out["TrainingStartTime"] = job.training_start_time
    if job.training_end_time:
        out["TrainingEndTime"] = job.training_end_time
        seconds = max(1, int(round(job.training_end_time - (job.training_start_time or job.creation_time))))
        out["TrainingTimeInSeconds"] = seconds
        out["BillableTimeInSeconds"] = seconds
    if metrics := [
        m
        for m in _list(job.final_metrics)
        if isinstance(m, dict) and isinstance(m.get("MetricName"), str) and isinstance(m.get("Value"), (int, float))
    ]:
        out["FinalMetricDataList"] = metrics
    if job.tuning_job_arn:
        out["TuningJobArn"] = job.tuning_job_arn
    return {k: v for k, v in out.items() if v is not None}
