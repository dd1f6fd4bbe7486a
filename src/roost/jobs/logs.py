"""Job logs as CloudWatch Logs streams: ``/aws/sagemaker/TrainingJobs``, one stream per job.

``GetLogEvents``, ``FilterLogEvents`` and ``DescribeLogStreams`` take and
return CloudWatch's shapes, so ``boto3.client("logs")`` and the SageMaker SDK's
log tailing read Roost's jobs.
"""

from __future__ import annotations

import shlex
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from roost.aws import Service, ServiceError, operation
from roost.storage.tables import LogEvent, TrainingJob

GROUP = "/aws/sagemaker/TrainingJobs"


def _not_found(what: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"The specified log {what} does not exist.")


def matches(message: str, pattern: str | None) -> bool:
    """CloudWatch's term filter: every term (quoted or bare) must occur; ``-term`` must not."""
    if not pattern or not pattern.strip():
        return True
    try:
        terms = shlex.split(pattern)
    except ValueError:
        terms = pattern.split()
    for term in terms:
        if term.startswith("-") and len(term) > 1:
            if term[1:] in message:
                return False
        elif term not in message:
            return False
    return True


def _token(prefix: str, value: int) -> str:
    return f"{prefix}/{value:020d}"


def _read_token(token: str | None) -> tuple[str, int] | None:
    if not token:
        return None
    try:
        prefix, value = token.split("/", 1)
        return prefix, int(value)
    except ValueError:
        raise ServiceError("InvalidParameterException", "The specified nextToken is invalid.") from None


class LogService(Service):
    target_prefix = "Logs_20140328"
    model_name = "logs"

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def _check_group(self, req: dict) -> None:
        if req.get("logGroupName") != GROUP:
            raise _not_found("group")

    def _job_for_stream(self, s: Session, stream: str | None) -> TrainingJob:
        name = (stream or "").split("/", 1)[0]
        job = s.get(TrainingJob, name) if name else None
        if job is None or job.log_stream != stream:
            raise _not_found("stream")
        return job

    @operation("GetLogEvents")
    def get_log_events(self, req: dict) -> dict:
        self._check_group(req)
        limit = min(int(req.get("limit") or 10000), 10000)
        token = _read_token(req.get("nextToken"))
        with self.sessions() as s:
            job = self._job_for_stream(s, req.get("logStreamName"))
            q = select(LogEvent).where(LogEvent.job_name == job.name)
            if req.get("startTime") is not None:
                q = q.where(LogEvent.timestamp >= int(req["startTime"]))
            if req.get("endTime") is not None:
                q = q.where(LogEvent.timestamp < int(req["endTime"]))
            if token and token[0] == "f":
                rows = s.scalars(q.where(LogEvent.id > token[1]).order_by(LogEvent.id).limit(limit)).all()
            elif token and token[0] == "b":
                rows = list(
                    reversed(s.scalars(q.where(LogEvent.id < token[1]).order_by(LogEvent.id.desc()).limit(limit)).all())
                )
            elif req.get("startFromHead"):
                rows = s.scalars(q.order_by(LogEvent.id).limit(limit)).all()
            else:
                rows = list(reversed(s.scalars(q.order_by(LogEvent.id.desc()).limit(limit)).all()))
        first = rows[0].id if rows else (token[1] if token else 0)
        last = rows[-1].id if rows else (token[1] if token else 0)
        return {
            "events": [
                {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time} for e in rows
            ],
            "nextForwardToken": _token("f", last),
            "nextBackwardToken": _token("b", first),
        }

    @operation("FilterLogEvents")
    def filter_log_events(self, req: dict) -> dict:
        self._check_group(req)
        limit = min(int(req.get("limit") or 10000), 10000)
        token = _read_token(req.get("nextToken"))
        with self.sessions() as s:
            jobs = s.scalars(select(TrainingJob)).all()
            streams = {j.log_stream: j.name for j in jobs}
            wanted = req.get("logStreamNames")
            if wanted:
                streams = {k: v for k, v in streams.items() if k in wanted}
            if req.get("logStreamNamePrefix"):
                streams = {k: v for k, v in streams.items() if k.startswith(req["logStreamNamePrefix"])}
            by_job = {v: k for k, v in streams.items()}
            q = select(LogEvent).where(LogEvent.job_name.in_(list(by_job))).order_by(LogEvent.id)
            if token:
                q = q.where(LogEvent.id > token[1])
            if req.get("startTime") is not None:
                q = q.where(LogEvent.timestamp >= int(req["startTime"]))
            if req.get("endTime") is not None:
                q = q.where(LogEvent.timestamp <= int(req["endTime"]))
            events: list[dict[str, Any]] = []
            more = False
            for e in s.scalars(q).yield_per(1000):
                if matches(e.message, req.get("filterPattern")):
                    if len(events) == limit:
                        more = True
                        break
                    events.append(
                        {
                            "logStreamName": by_job[e.job_name],
                            "timestamp": e.timestamp,
                            "message": e.message,
                            "ingestionTime": e.ingestion_time,
                            "eventId": str(e.id),
                        }
                    )
        out: dict[str, Any] = {
            "events": events,
            "searchedLogStreams": [{"logStreamName": k, "searchedCompletely": not more} for k in streams],
        }
        if more:
            out["nextToken"] = _token("f", int(events[-1]["eventId"]))
        return out

    @operation("DescribeLogStreams")
    def describe_log_streams(self, req: dict) -> dict:
        self._check_group(req)
        limit = min(int(req.get("limit") or 50), 50)
        prefix = req.get("logStreamNamePrefix") or ""
        token = _read_token(req.get("nextToken"))
        offset = token[1] if token else 0
        with self.sessions() as s:
            stats = dict(
                (name, (first, last, count, size))
                for name, first, last, count, size in s.execute(
                    select(
                        LogEvent.job_name,
                        func.min(LogEvent.timestamp),
                        func.max(LogEvent.timestamp),
                        func.count(),
                        func.sum(func.length(LogEvent.message)),
                    ).group_by(LogEvent.job_name)
                ).all()
            )
            jobs = [j for j in s.scalars(select(TrainingJob)).all() if j.log_stream.startswith(prefix)]
        rows: list[dict[str, Any]] = []
        for j in jobs:
            first, last, _count, size = stats.get(j.name, (None, None, 0, 0))
            row = {
                "logStreamName": j.log_stream,
                "creationTime": int(j.creation_time * 1000),
                "arn": f"arn:aws:logs:::log-group:{GROUP}:log-stream:{j.log_stream}",
                "storedBytes": int(size or 0),
            }
            if first is not None:
                row.update(firstEventTimestamp=first, lastEventTimestamp=last, lastIngestionTime=last)
            rows.append(row)
        if req.get("orderBy") == "LastEventTime":
            rows.sort(key=lambda r: r.get("lastEventTimestamp", 0), reverse=bool(req.get("descending")))
        else:
            rows.sort(key=lambda r: r["logStreamName"], reverse=bool(req.get("descending")))
        out: dict[str, Any] = {"logStreams": rows[offset : offset + limit]}
        if offset + limit < len(rows):
            out["nextToken"] = _token("n", offset + limit)
        return out
