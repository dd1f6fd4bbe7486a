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
from roost.aws import Service
from roost.aws.shapes import service_model
from roost.cloudwatch.logs import LogService
from roost.cloudwatch.metrics import MetricsService
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
}


def served() -> dict[str, set[str]]:
    """botocore service name -> the operations Roost answers."""
    out: dict[str, set[str]] = {"sagemaker-runtime": set(RUNTIME_OPERATIONS)}
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
