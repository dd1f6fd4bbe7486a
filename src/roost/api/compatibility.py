"""Which AWS operations of this workflow Roost answers: the table in docs/compatibility.md, generated.

The operations listed are the ones a user of the workshop's workflow may call
(train, host, transform, tune, tag; read logs and metrics), named as botocore's
service models name them; whether each is served comes from Roost's services
themselves. ``python scripts/generate-docs.py`` rewrites the table; a test keeps
it true against a running server.
"""

from __future__ import annotations

import html
import re

from roost.api.app import RUNTIME_OPERATIONS
from roost.api.s3 import OPERATIONS as S3_OPERATIONS
from roost.aws import Service
from roost.aws.shapes import service_model
from roost.cloudwatch.logs import LogService
from roost.cloudwatch.metrics import MetricsService
from roost.identity import IamService, StsService
from roost.serving.endpoints import EndpointService
from roost.serving.transform import TransformJobService
from roost.storage.tags import TagService
from roost.training.service import TrainingJobService
from roost.tuning.service import TuningJobService

#: every service class ``roost server`` answers with
SERVICES: tuple[type[Service], ...] = (
    TrainingJobService,
    TuningJobService,
    EndpointService,
    TransformJobService,
    TagService,
    LogService,
    MetricsService,
    StsService,
    IamService,
)

#: botocore's service name, what the table calls it, and the workflow's operations of it
WORKFLOW: dict[str, tuple[str, tuple[str, ...]]] = {
    "sagemaker": (
        "SageMaker",
        (
            "CreateTrainingJob",
            "DescribeTrainingJob",
            "ListTrainingJobs",
            "StopTrainingJob",
            "UpdateTrainingJob",
            "DeleteTrainingJob",
            "CreateHyperParameterTuningJob",
            "DescribeHyperParameterTuningJob",
            "ListHyperParameterTuningJobs",
            "ListTrainingJobsForHyperParameterTuningJob",
            "StopHyperParameterTuningJob",
            "DeleteHyperParameterTuningJob",
            "CreateModel",
            "DescribeModel",
            "ListModels",
            "DeleteModel",
            "CreateEndpointConfig",
            "DescribeEndpointConfig",
            "ListEndpointConfigs",
            "DeleteEndpointConfig",
            "CreateEndpoint",
            "DescribeEndpoint",
            "ListEndpoints",
            "UpdateEndpoint",
            "UpdateEndpointWeightsAndCapacities",
            "DeleteEndpoint",
            "CreateTransformJob",
            "DescribeTransformJob",
            "ListTransformJobs",
            "StopTransformJob",
            "AddTags",
            "ListTags",
            "DeleteTags",
        ),
    ),
    "sagemaker-runtime": (
        "SageMaker Runtime",
        ("InvokeEndpoint", "InvokeEndpointAsync", "InvokeEndpointWithResponseStream"),
    ),
    "logs": (
        "CloudWatch Logs",
        (
            "DescribeLogGroups",
            "DescribeLogStreams",
            "GetLogEvents",
            "FilterLogEvents",
            "StartLiveTail",
            "StartQuery",
            "GetQueryResults",
            "StopQuery",
            "CreateLogGroup",
            "CreateLogStream",
            "PutLogEvents",
            "DeleteLogGroup",
            "DeleteLogStream",
            "PutRetentionPolicy",
        ),
    ),
    "cloudwatch": (
        "CloudWatch",
        (
            "GetMetricStatistics",
            "GetMetricData",
            "ListMetrics",
            "PutMetricData",
            "GetMetricWidgetImage",
            "PutMetricAlarm",
            "DescribeAlarms",
            "DescribeAlarmsForMetric",
            "DeleteAlarms",
            "PutDashboard",
            "GetDashboard",
            "ListDashboards",
        ),
    ),
}

WORKFLOW["s3"] = (
    "S3",
    (
        *S3_OPERATIONS,
        "PutBucketVersioning",
        "GetBucketVersioning",
        "PutObjectAcl",
        "GetObjectAcl",
        "PutObjectTagging",
        "GetObjectTagging",
        "PutBucketPolicy",
        "PutBucketLifecycleConfiguration",
        "SelectObjectContent",
        "RestoreObject",
    ),
)
WORKFLOW["sts"] = ("STS", ("GetCallerIdentity", "AssumeRole", "GetSessionToken"))
WORKFLOW["iam"] = ("IAM", ("GetRole", "SimulatePrincipalPolicy", "CreateRole", "ListRoles", "PutRolePolicy"))

NO_S3_FEATURE = (
    "one version per key, no ACLs, tags, policies or lifecycles: the server's key pair is its access control"
)
LOGS_ARE_WRITTEN_BY_ROOST = "groups and streams are made by the jobs and endpoints that log"
NOTES: dict[str, str] = {
    "CreateTrainingJob": "channels from local folders, `file://` or S3; File, Pipe and FastFile modes (read as files)",
    "DescribeTrainingJob": "every member the SDK reads: `MetricDefinitions`, `FinalMetricDataList`, status history",
    "ListTrainingJobs": "SageMaker's filters, sort and paging (as every `List*`)",
    "UpdateTrainingJob": "profiler and rule settings, which Roost's jobs do not have",
    "DeleteTrainingJob": "jobs and their logs are kept",
    "CreateHyperParameterTuningJob": "on Optuna: Bayesian (TPE), Random, Grid, Hyperband; Auto early stopping; "
    "warm start (docs/tuning.md)",
    "DescribeHyperParameterTuningJob": "counters, `BestTrainingJob`, `OverallBestTrainingJob`, completion details",
    "ListHyperParameterTuningJobs": "SageMaker's filters, sort and paging",
    "ListTrainingJobsForHyperParameterTuningJob": "sorted by `FinalObjectiveMetricValue` too; `StatusEquals`",
    "StopHyperParameterTuningJob": "stops its running training jobs, which keep their models and logs",
    "DeleteHyperParameterTuningJob": "its training jobs, artifacts and logs are kept",
    "CreateModel": "`ModelDataUrl`: Roost's or SageMaker's own `model.tar.gz`",
    "CreateEndpointConfig": "`InitialInstanceCount` serving workers; the first variant serves",
    "CreateEndpoint": "logs to `/aws/sagemaker/Endpoints/<name>`, one stream per instance",
    "UpdateEndpointWeightsAndCapacities": "one variant serves each endpoint",
    "CreateTransformJob": "one `<image>.out` per image",
    "AddTags": "every resource; kept across restarts",
    "InvokeEndpoint": "`image/jpeg`, `image/png`, `application/x-image`; JSON or JSON Lines answers",
    "InvokeEndpointAsync": "use `InvokeEndpoint`",
    "InvokeEndpointWithResponseStream": "use `InvokeEndpoint`",
    "DescribeLogGroups": "`/aws/sagemaker/TrainingJobs` and `/aws/sagemaker/Endpoints/<name>`",
    "FilterLogEvents": "CloudWatch's term patterns (`'\"Validation-accuracy\"'`, `-term`)",
    "StartLiveTail": "poll `GetLogEvents`, as the SDK does",
    "StartQuery": "Logs Insights; use `FilterLogEvents`",
    "GetQueryResults": "Logs Insights; use `FilterLogEvents`",
    "StopQuery": "Logs Insights; use `FilterLogEvents`",
    "CreateLogGroup": LOGS_ARE_WRITTEN_BY_ROOST,
    "CreateLogStream": LOGS_ARE_WRITTEN_BY_ROOST,
    "PutLogEvents": LOGS_ARE_WRITTEN_BY_ROOST,
    "DeleteLogGroup": "logs are kept, as the jobs are",
    "DeleteLogStream": "logs are kept, as the jobs are",
    "PutRetentionPolicy": "logs are kept, as the jobs are",
    "GetMetricStatistics": "AWS JSON 1.0 and the query protocol; `/aws/sagemaker/TrainingJobs`, `TrainingJobName`",
    "GetMetricData": "`MetricStat` queries (no metric math)",
    "PutMetricData": "metrics come from the jobs' logs, by their metric definitions",
    "GetMetricWidgetImage": "read the datapoints with `GetMetricStatistics`",
    "PutMetricAlarm": "no alarms; `aws sagemaker wait` or a waiter watches a job",
    "DescribeAlarms": "no alarms",
    "DescribeAlarmsForMetric": "no alarms",
    "DeleteAlarms": "no alarms",
    "PutDashboard": "no dashboards; the console (issue 12) charts a job's metrics",
    "GetDashboard": "no dashboards",
    "ListDashboards": "no dashboards",
    "ListBuckets": "the server's own store, on its port (docs/s3.md)",
    "CreateBucket": "S3's naming rules; a `LocationConstraint` is recorded",
    "ListObjectsV2": "prefix, delimiter, start-after, continuation, max-keys, `encoding-type=url`",
    "PutObject": "signed, unsigned and aws-chunked bodies; `Content-MD5`, CRC32, SHA1 and SHA256 checked before "
    "anything is kept; written whole or not at all",
    "GetObject": "ranges, conditions (`If-Match`, ...), checksums on whole-object answers",
    "CopyObject": "`COPY` and `REPLACE` metadata directives",
    "CompleteMultipartUpload": "S3's part rules; `md5-of-parts-N` ETags; composite checksums",
    "PutBucketVersioning": NO_S3_FEATURE,
    "GetBucketVersioning": NO_S3_FEATURE,
    "PutObjectAcl": NO_S3_FEATURE,
    "GetObjectAcl": NO_S3_FEATURE,
    "PutObjectTagging": NO_S3_FEATURE,
    "GetObjectTagging": NO_S3_FEATURE,
    "PutBucketPolicy": NO_S3_FEATURE,
    "PutBucketLifecycleConfiguration": NO_S3_FEATURE,
    "SelectObjectContent": "read the object and filter it",
    "RestoreObject": "every object is in the one storage class",
    "GetCallerIdentity": "the account of Roost's ARNs, the caller as an assumed role",
    "AssumeRole": "the server's one key pair is every caller's identity",
    "GetSessionToken": "the server's one key pair is every caller's identity",
    "GetRole": "any role a job names, trusting SageMaker to assume it",
    "SimulatePrincipalPolicy": "every action allowed: Roost keeps no IAM policies",
    "CreateRole": "roles are names a job records; GetRole answers any",
    "ListRoles": "roles are names a job records; GetRole answers any",
    "PutRolePolicy": "Roost keeps no IAM policies",
}


def served() -> dict[str, set[str]]:
    """botocore service name -> the operations Roost answers."""
    out: dict[str, set[str]] = {"sagemaker-runtime": set(RUNTIME_OPERATIONS), "s3": set(S3_OPERATIONS)}
    for cls in SERVICES:
        out.setdefault(cls.model_name, set()).update(cls.operation_methods())
    return out


def summary(service: str, operation: str) -> str:
    """The first sentence of the operation's documentation in botocore's model, as plain text."""
    doc = service_model(service).operation_model(operation).documentation or ""
    text = re.sub(r"<code>(.*?)</code>", r"`\1`", doc.split("</p>", 1)[0])
    text = html.unescape(re.sub(r"<[^>]+>", "", text)).strip()
    return re.split(r"(?<=[.])\s", text, maxsplit=1)[0].replace("|", "\\|")


def operations_table() -> str:
    answered = served()
    lines = [
        "| service | operation | status | what it does (botocore's model) | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for service, (title, operations) in WORKFLOW.items():
        for op in operations:
            status = "supported" if op in answered.get(service, set()) else "not served"
            lines.append(f"| {title} | `{op}` | {status} | {summary(service, op)} | {NOTES.get(op, '')} |")
    return "\n".join(lines) + "\n"
