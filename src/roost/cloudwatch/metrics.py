"""Training metrics as CloudWatch has them: datapoints from log lines, and the metrics API that reads them.

As SageMaker does, each of a job's metric definitions (the algorithm's built-in
ones, then the job's ``MetricDefinitions``) is a regex over its log lines; every
match is a datapoint in namespace ``/aws/sagemaker/TrainingJobs`` with the
dimension ``TrainingJobName``, timed by its line. ``GetMetricStatistics``,
``GetMetricData`` and ``ListMetrics`` read them back; the same operations are
served over AWS JSON 1.0 (current botocore) and the query protocol (older SDKs
and CLIs), see ``roost.api.query``. ``FinalMetricDataList`` is each metric's
last datapoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from roost.aws import Service, ServiceError, decode_page_token, encode_page_token, operation
from roost.storage.listing import timestamp
from roost.storage.tables import MetricDatum

NAMESPACE = "/aws/sagemaker/TrainingJobs"
DIMENSION = "TrainingJobName"
MAX_DEFINITIONS = 40
#: what GetMetricStatistics answers at most in one call (CloudWatch's limit)
MAX_DATAPOINTS = 1440
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")


class MetricExtractor:
    """A job's metric definitions compiled once; a definition whose regex does not compile is skipped."""

    def __init__(self, definitions: Sequence[dict]) -> None:
        self.patterns: list[tuple[str, re.Pattern]] = []
        for d in definitions[:MAX_DEFINITIONS]:
            try:
                self.patterns.append((d["Name"], re.compile(d["Regex"])))
            except (re.error, KeyError, TypeError):
                continue

    def values(self, line: str) -> Iterable[tuple[str, float]]:
        for name, rx in self.patterns:
            m = rx.search(line)
            if m:
                try:
                    value = float(m.group(1) if m.groups() else m.group(0))
                except ValueError:
                    continue
                if math.isfinite(value):
                    yield name, value

    def datapoints(self, job: str, when: float, line: str) -> list[MetricDatum]:
        return [
            MetricDatum(
                namespace=NAMESPACE,
                metric_name=name,
                dimension_name=DIMENSION,
                dimension_value=job,
                timestamp=when,
                value=value,
            )
            for name, value in self.values(line)
        ]


def final_metrics(s: Session, job: str, definitions: Sequence[dict]) -> list[dict]:
    """``FinalMetricDataList``: the last datapoint of each metric, in the definitions' order."""
    rows = s.scalars(
        select(MetricDatum)
        .where(MetricDatum.namespace == NAMESPACE, MetricDatum.dimension_value == job)
        .order_by(MetricDatum.id)
    ).all()
    last = {r.metric_name: r for r in rows}
    return [
        {"MetricName": d["Name"], "Value": last[d["Name"]].value, "Timestamp": last[d["Name"]].timestamp}
        for d in definitions[:MAX_DEFINITIONS]
        if d.get("Name") in last
    ]


def _invalid(message: str, code: str = "InvalidParameterValue") -> ServiceError:
    return ServiceError(code, message)


def _statistic(name: str, values: list[float]) -> float:
    if name == "SampleCount":
        return float(len(values))
    if name == "Sum":
        return float(sum(values))
    if name == "Average":
        return float(sum(values) / len(values))
    if name == "Minimum":
        return float(min(values))
    if name == "Maximum":
        return float(max(values))
    m = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?|100)", name)
    if not m:
        raise _invalid(f"The parameter Statistics/ExtendedStatistics has an unknown value: {name}")
    ordered = sorted(values)  # nearest-rank percentile
    return float(ordered[max(0, math.ceil(float(m[1]) / 100 * len(ordered)) - 1)])


class MetricsService(Service):
    target_prefix = "GraniteServiceVersion20100801"
    model_name = "cloudwatch"

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def _series(
        self,
        namespace: str,
        metric: str,
        dimensions: list[dict] | None,
        start: float,
        end: float,
    ) -> list[MetricDatum]:
        dims = {d["Name"]: d.get("Value") for d in dimensions or []}
        if namespace != NAMESPACE or set(dims) != {DIMENSION}:
            return []  # only training jobs' metrics exist here, each with exactly its TrainingJobName
        q = select(MetricDatum).where(
            MetricDatum.namespace == namespace,
            MetricDatum.metric_name == metric,
            MetricDatum.dimension_value == dims[DIMENSION],
            MetricDatum.timestamp >= start,
            MetricDatum.timestamp < end,
        )
        with self.sessions() as s:
            return list(s.scalars(q.order_by(MetricDatum.timestamp)).all())

    @staticmethod
    def _buckets(rows: list[MetricDatum], period: int) -> dict[float, list[float]]:
        buckets: dict[float, list[float]] = {}
        for r in rows:
            buckets.setdefault(math.floor(r.timestamp / period) * period, []).append(r.value)
        return buckets

    @operation("GetMetricStatistics")
    def get_metric_statistics(self, req: dict) -> dict:
        statistics, extended = req.get("Statistics") or [], req.get("ExtendedStatistics") or []
        if not statistics and not extended:
            raise _invalid("Must specify either Statistics or ExtendedStatistics", "InvalidParameterCombination")
        start, end, period = timestamp(req["StartTime"]), timestamp(req["EndTime"]), req["Period"]
        if end <= start:
            raise _invalid("The parameter StartTime must be less than the parameter EndTime.")
        if (end - start) / period > MAX_DATAPOINTS:
            raise _invalid(
                f"You have requested up to {int((end - start) / period)} datapoints, which exceeds the "
                f"limit of {MAX_DATAPOINTS}. You may reduce the datapoints requested by increasing "
                "Period, or decreasing the time range.",
                "InvalidParameterCombination",
            )
        rows = self._series(req["Namespace"], req["MetricName"], req.get("Dimensions"), start, end)
        datapoints = []
        for when, values in self._buckets(rows, period).items():
            point: dict[str, Any] = {"Timestamp": when, "Unit": req.get("Unit") or "None"}
            for name in statistics:
                point[name] = _statistic(name, values)
            if extended:
                point["ExtendedStatistics"] = {name: _statistic(name, values) for name in extended}
            datapoints.append(point)
        return {"Label": req["MetricName"], "Datapoints": datapoints}

    @operation("GetMetricData")
    def get_metric_data(self, req: dict) -> dict:
        start, end = timestamp(req["StartTime"]), timestamp(req["EndTime"])
        descending = req.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        results = []
        for query in req["MetricDataQueries"]:
            stat = query.get("MetricStat")
            if stat is None:
                raise _invalid(
                    f"Query {query['Id']}: metric math expressions are not supported by Roost; use MetricStat"
                )
            metric = stat["Metric"]
            rows = self._series(
                metric.get("Namespace", ""), metric.get("MetricName", ""), metric.get("Dimensions"), start, end
            )
            points = sorted(
                (
                    (when, _statistic(stat["Stat"], values))
                    for when, values in self._buckets(rows, stat["Period"]).items()
                ),
                reverse=descending,
            )
            if query.get("ReturnData", True):
                results.append(
                    {
                        "Id": query["Id"],
                        "Label": query.get("Label") or metric.get("MetricName", ""),
                        "Timestamps": [t for t, _ in points],
                        "Values": [v for _, v in points],
                        "StatusCode": "Complete",
                    }
                )
        return {"MetricDataResults": results, "Messages": []}

    @operation("ListMetrics")
    def list_metrics(self, req: dict) -> dict:
        q = select(
            MetricDatum.metric_name,
            MetricDatum.namespace,
            MetricDatum.dimension_name,
            MetricDatum.dimension_value,
        ).distinct()
        if req.get("Namespace"):
            q = q.where(MetricDatum.namespace == req["Namespace"])
        if req.get("MetricName"):
            q = q.where(MetricDatum.metric_name == req["MetricName"])
        for f in req.get("Dimensions") or []:
            if f["Name"] != DIMENSION:
                return {"Metrics": []}
            if f.get("Value") is not None:
                q = q.where(MetricDatum.dimension_value == f["Value"])
        offset = decode_page_token(req.get("NextToken"))
        with self.sessions() as s:
            rows = s.execute(
                q.order_by(MetricDatum.dimension_value, MetricDatum.metric_name).offset(offset).limit(501)
            ).all()
        out: dict[str, Any] = {
            "Metrics": [
                {"Namespace": ns, "MetricName": name, "Dimensions": [{"Name": dim, "Value": value}]}
                for name, ns, dim, value in rows[:500]
            ]
        }
        if len(rows) > 500:
            out["NextToken"] = encode_page_token(offset + 500)
        return out
