"""The server's state: training jobs with their status history and log, and hosting's resources.

The status columns hold SageMaker's status values, named once here for the
service, the job runner and hosting. Timestamps are seconds since the epoch as
floats, except log events, which count milliseconds as CloudWatch does.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class TrainingJobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


#: a job in these statuses still holds (or waits for) a slot
ACTIVE = (TrainingJobStatus.IN_PROGRESS, TrainingJobStatus.STOPPING)
TERMINAL = (TrainingJobStatus.COMPLETED, TrainingJobStatus.FAILED, TrainingJobStatus.STOPPED)


class SecondaryStatus(StrEnum):
    STARTING = "Starting"
    DOWNLOADING = "Downloading"
    TRAINING = "Training"
    UPLOADING = "Uploading"
    RESTARTING = "Restarting"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
    COMPLETED = "Completed"
    FAILED = "Failed"


class EndpointStatus(StrEnum):
    CREATING = "Creating"
    UPDATING = "Updating"
    IN_SERVICE = "InService"
    FAILED = "Failed"


class TransformJobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class TuningJobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


class ObjectiveStatus(StrEnum):
    SUCCEEDED = "Succeeded"
    PENDING = "Pending"
    FAILED = "Failed"


class Base(DeclarativeBase):
    pass


class TrainingJob(Base):
    __tablename__ = "training_jobs"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    request: Mapped[dict] = mapped_column(JSON)  # the CreateTrainingJob request, as sent
    status: Mapped[str] = mapped_column(String(16), index=True)
    secondary_status: Mapped[str] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    creation_time: Mapped[float] = mapped_column(Float, index=True)
    last_modified_time: Mapped[float] = mapped_column(Float)
    training_start_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    training_end_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_artifacts: Mapped[str | None] = mapped_column(Text, nullable=True)
    final_metrics: Mapped[list | None] = mapped_column(JSON, nullable=True)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    log_stream: Mapped[str] = mapped_column(String(256))
    tuning_job_arn: Mapped[str | None] = mapped_column(String(256), nullable=True)  # the tuning job that launched it


class TuningJob(Base):
    """A hyperparameter tuning job; its search (Optuna's study of the same name) lives in Optuna's own tables."""

    __tablename__ = "tuning_jobs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    request: Mapped[dict] = mapped_column(JSON)  # the CreateHyperParameterTuningJob request, as sent
    status: Mapped[str] = mapped_column(String(16), index=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    creation_time: Mapped[float] = mapped_column(Float, index=True)
    last_modified_time: Mapped[float] = mapped_column(Float)
    end_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    #: why it stops launching jobs (a completion criterion met); it then ends Completed once its jobs have ended
    #: why the tuning job launches no more jobs (its column keeps the name it was created with)
    finish_reason: Mapped[str | None] = mapped_column("finishing", Text, nullable=True)
    convergence_time: Mapped[float | None] = mapped_column(Float, nullable=True)


class TuningTrial(Base):
    """One training job of a tuning job: the Optuna trial it runs and what the tuner made of it."""

    __tablename__ = "tuning_trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tuning_job: Mapped[str] = mapped_column(ForeignKey("tuning_jobs.name", ondelete="CASCADE"), index=True)
    training_job: Mapped[str] = mapped_column(String(63), unique=True)
    trial_number: Mapped[int] = mapped_column(Integer)
    tuned: Mapped[dict] = mapped_column(JSON)  # TunedHyperParameters
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    objective_status: Mapped[str] = mapped_column(String(16))
    #: why the tuner stopped it: "early-stopping" (Auto or Hyperband) or "tuning-job" (the tuning job stopped)
    stopped_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reported: Mapped[int] = mapped_column(Integer, default=0)  # objective datapoints already told to Optuna
    settled: Mapped[bool] = mapped_column(Boolean, default=False)  # its end told to Optuna


class StatusTransition(Base):
    __tablename__ = "status_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_name: Mapped[str] = mapped_column(ForeignKey("training_jobs.name", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    start_time: Mapped[float] = mapped_column(Float)
    end_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")


class LogStream(Base):
    """A CloudWatch Logs stream: a training job's (``/aws/sagemaker/TrainingJobs``, ``<job>/algo-1-<time>``) or an
    endpoint instance's (``/aws/sagemaker/Endpoints/<endpoint>``, ``<variant>/i-<id>``). A group exists while it
    has a stream; streams outlive the resource that wrote them, as on AWS."""

    __tablename__ = "log_streams"
    __table_args__ = (UniqueConstraint("log_group", "name", name="uq_log_streams_group_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    log_group: Mapped[str] = mapped_column(String(512))
    name: Mapped[str] = mapped_column(String(512))
    creation_time: Mapped[int] = mapped_column(BigInteger)  # ms since the epoch


class LogEvent(Base):
    __tablename__ = "log_events"
    __table_args__ = (Index("ix_log_events_stream", "stream_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("log_streams.id", ondelete="CASCADE"))
    timestamp: Mapped[int] = mapped_column(BigInteger)  # ms since the epoch, as CloudWatch
    ingestion_time: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)


class _Recorded:
    """A resource that is just its creation request: a model, an endpoint configuration."""

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    request: Mapped[dict] = mapped_column(JSON)
    creation_time: Mapped[float] = mapped_column(Float)


class Model(_Recorded, Base):
    __tablename__ = "models"


class EndpointConfig(_Recorded, Base):
    __tablename__ = "endpoint_configs"


class Endpoint(Base):
    __tablename__ = "endpoints"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    config_name: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    creation_time: Mapped[float] = mapped_column(Float)
    last_modified_time: Mapped[float] = mapped_column(Float)


class TransformJob(Base):
    __tablename__ = "transform_jobs"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256))
    request: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    creation_time: Mapped[float] = mapped_column(Float)
    start_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_time: Mapped[float | None] = mapped_column(Float, nullable=True)


class Tag(Base):
    """A tag of any resource, by its ARN (``AddTags``, ``ListTags``, ``DeleteTags``, ``Tags`` of each ``Create*``)."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("resource_arn", "key", name="uq_tags_resource_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_arn: Mapped[str] = mapped_column(String(256), index=True)
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(256))


#: the resources that carry tags, each with its ARN in an ``arn`` column
TAGGABLE = (TrainingJob, Model, EndpointConfig, Endpoint, TransformJob, TuningJob)


class MetricDatum(Base):
    """One CloudWatch datapoint: a training job's metric (``/aws/sagemaker/TrainingJobs``, ``TrainingJobName``) as
    its log line gave it. One dimension is all SageMaker's training metrics carry."""

    __tablename__ = "metric_data"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(255))
    metric_name: Mapped[str] = mapped_column(String(255))
    dimension_name: Mapped[str] = mapped_column(String(255))
    dimension_value: Mapped[str] = mapped_column(String(1024))
    timestamp: Mapped[float] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_metric_data_series", "namespace", "metric_name", "dimension_value", "timestamp"),)


# --------------------------------------------------------------------------- the embedded S3 store

#: S3 keys sort by their UTF-8 bytes: PostgreSQL's "C" collation, SQLite's default
S3_KEY = String(1024).with_variant(String(1024, collation="C"), "postgresql")


class S3Bucket(Base):
    """A bucket of the embedded S3 store (``roost.storage.objects``)."""

    __tablename__ = "s3_buckets"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    region: Mapped[str] = mapped_column(String(32))
    creation_time: Mapped[float] = mapped_column(Float)


class S3Object(Base):
    """An object: its bytes are the file ``blob`` names (never the key, so any key is safe on disk)."""

    __tablename__ = "s3_objects"

    bucket: Mapped[str] = mapped_column(ForeignKey("s3_buckets.name", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(S3_KEY, primary_key=True)
    blob: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(64))  # without quotes: hex MD5, or MD5 of the parts' MD5s + "-N"
    content_type: Mapped[str] = mapped_column(String(256))
    meta: Mapped[dict] = mapped_column(JSON)  # x-amz-meta-* (without the prefix)
    headers: Mapped[dict] = mapped_column(JSON)  # Content-Encoding, Content-Disposition, Cache-Control, ...
    checksums: Mapped[dict] = mapped_column(JSON)  # algorithm (crc32, sha1, sha256) -> base64 value
    checksum_type: Mapped[str | None] = mapped_column(String(16), nullable=True)  # FULL_OBJECT or COMPOSITE
    last_modified: Mapped[float] = mapped_column(Float)


class S3Upload(Base):
    """A multipart upload in progress."""

    __tablename__ = "s3_uploads"

    upload_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bucket: Mapped[str] = mapped_column(ForeignKey("s3_buckets.name", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(S3_KEY)
    initiated: Mapped[float] = mapped_column(Float)
    content_type: Mapped[str] = mapped_column(String(256))
    meta: Mapped[dict] = mapped_column(JSON)
    headers: Mapped[dict] = mapped_column(JSON)
    checksum_algorithm: Mapped[str | None] = mapped_column(String(16), nullable=True)


class S3Part(Base):
    """A part of a multipart upload; a part number uploaded again replaces it."""

    __tablename__ = "s3_parts"

    upload_id: Mapped[str] = mapped_column(ForeignKey("s3_uploads.upload_id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(64))
    checksums: Mapped[dict] = mapped_column(JSON)
    last_modified: Mapped[float] = mapped_column(Float)
