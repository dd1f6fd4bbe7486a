"""Logs as CloudWatch Logs keeps them: groups of streams of timestamped lines.

Training jobs write to ``/aws/sagemaker/TrainingJobs``, one stream per job;
endpoints to ``/aws/sagemaker/Endpoints/<endpoint>``, one stream per variant
and instance. ``GetLogEvents``, ``FilterLogEvents``, ``DescribeLogStreams`` and
``DescribeLogGroups`` take and return CloudWatch's shapes, so
``boto3.client("logs")``, ``aws logs`` and the SageMaker SDK's log tailing read
them unchanged.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections import deque
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from roost.aws import Account, Service, ServiceError, operation
from roost.storage.tables import LogEvent, LogStream

TRAINING_GROUP = "/aws/sagemaker/TrainingJobs"


def endpoint_group(endpoint: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint}"


def now_ms() -> int:
    return int(time.time() * 1000)


def matches(message: str, pattern: str | None) -> bool:
    """CloudWatch's term filter: every term (quoted or bare) must occur, ``-term`` must not, and of the
    ``?term`` ones at least one must."""
    if not pattern or not pattern.strip():
        return True
    try:
        terms = shlex.split(pattern)
    except ValueError:
        terms = pattern.split()
    alternatives = [t[1:] for t in terms if t.startswith("?") and len(t) > 1]
    if alternatives and not any(t in message for t in alternatives):
        return False
    for term in terms:
        if term.startswith("?") and len(term) > 1:
            continue
        if term.startswith("-") and len(term) > 1:
            if term[1:] in message:
                return False
        elif term not in message:
            return False
    return True


def open_stream(sessions: sessionmaker[Session], group: str, name: str) -> int:
    """The id of stream ``name`` of ``group``, created if it is new (by whichever writer comes first)."""
    for _ in range(2):
        with sessions() as s:
            found = s.scalar(select(LogStream.id).where(LogStream.log_group == group, LogStream.name == name))
        if found is not None:
            return found
        try:
            with sessions.begin() as s:
                stream = LogStream(log_group=group, name=name, creation_time=now_ms())
                s.add(stream)
                s.flush()
                return stream.id
        except IntegrityError:
            continue  # another writer created it meanwhile: read its id
    raise RuntimeError(f"could not open log stream {group} {name}")


class LogSink:
    """Lines from threads that must not wait for the database (serving workers, request handlers): queued, and
    written in batches by one thread. At most ``capacity`` lines wait; beyond that the oldest are dropped and the
    stream says how many, so a flood of errors cannot grow the server's memory."""

    def __init__(self, sessions: sessionmaker[Session], flush_every: float = 0.3, capacity: int = 10_000) -> None:
        self.sessions = sessions
        self.flush_every = flush_every
        self._pending: deque[tuple[str, str, int, str]] = deque(maxlen=capacity)
        self._dropped: dict[tuple[str, str], int] = {}
        self._streams: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def write(self, group: str, stream: str, message: str) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._pending) == self._pending.maxlen:
                lost = self._pending[0]
                self._dropped[(lost[0], lost[1])] = self._dropped.get((lost[0], lost[1]), 0) + 1
            self._pending.append((group, stream, now_ms(), message))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="roost-log-sink", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Write everything queued so far, now, in the caller's thread."""
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            dropped, self._dropped = self._dropped, {}
        ts = now_ms()
        batch += [
            (g, st, ts, f"[roost] {n} log lines dropped: the log was written faster than stored")
            for (g, st), n in dropped.items()
        ]
        if not batch:
            return
        rows = [
            LogEvent(stream_id=self._stream_id(g, st), timestamp=t, ingestion_time=ts, message=m)
            for g, st, t, m in batch
        ]
        with self.sessions.begin() as s:
            s.add_all(rows)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _stream_id(self, group: str, stream: str) -> int:
        key = (group, stream)
        if key not in self._streams:
            self._streams[key] = open_stream(self.sessions, group, stream)
        return self._streams[key]

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_every)
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a database hiccup must not end logging; the next flush retries
                time.sleep(self.flush_every)


def _not_found(what: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"The specified log {what} does not exist.")


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


def _limit(req: dict, most: int) -> int:
    return min(int(req.get("limit") or most), most)


class LogService(Service):
    target_prefix = "Logs_20140328"
    model_name = "logs"

    def __init__(self, sessions: sessionmaker[Session], account: Account | None = None) -> None:
        self.sessions = sessions
        self.account = account or Account()

    def _group_arn(self, group: str) -> str:
        return f"arn:aws:logs:{self.account.region}:{self.account.account_id}:log-group:{group}"

    def _check_group(self, s: Session, req: dict) -> str:
        group = req.get("logGroupName") or ""
        if s.scalar(select(LogStream.id).where(LogStream.log_group == group).limit(1)) is None:
            raise _not_found("group")
        return group

    def _stream(self, s: Session, req: dict) -> LogStream:
        group = self._check_group(s, req)
        stream = s.scalar(
            select(LogStream).where(LogStream.log_group == group, LogStream.name == req.get("logStreamName"))
        )
        if stream is None:
            raise _not_found("stream")
        return stream

    @operation("GetLogEvents")
    def get_log_events(self, req: dict) -> dict:
        limit = _limit(req, 10000)
        token = _read_token(req.get("nextToken"))
        with self.sessions() as s:
            stream = self._stream(s, req)
            q = select(LogEvent).where(LogEvent.stream_id == stream.id)
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
        # CloudWatch always returns both tokens; a reader knows it reached the end when the forward one comes back
        return {
            "events": [
                {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time} for e in rows
            ],
            "nextForwardToken": _token("f", last),
            "nextBackwardToken": _token("b", first),
        }

    @operation("FilterLogEvents")
    def filter_log_events(self, req: dict) -> dict:
        limit = _limit(req, 10000)
        token = _read_token(req.get("nextToken"))
        with self.sessions() as s:
            group = self._check_group(s, req)
            streams_q = select(LogStream.id, LogStream.name).where(LogStream.log_group == group)
            if req.get("logStreamNames"):
                streams_q = streams_q.where(LogStream.name.in_(req["logStreamNames"]))
            if req.get("logStreamNamePrefix"):
                streams_q = streams_q.where(LogStream.name.startswith(req["logStreamNamePrefix"], autoescape=True))
            names = {i: n for i, n in s.execute(streams_q)}
            q = select(LogEvent).where(LogEvent.stream_id.in_(list(names))).order_by(LogEvent.id)
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
                            "logStreamName": names[e.stream_id],
                            "timestamp": e.timestamp,
                            "message": e.message,
                            "ingestionTime": e.ingestion_time,
                            "eventId": str(e.id),
                        }
                    )
        out: dict[str, Any] = {
            "events": events,
            "searchedLogStreams": [{"logStreamName": n, "searchedCompletely": not more} for n in names.values()],
        }
        if more:
            out["nextToken"] = _token("f", int(events[-1]["eventId"]))
        return out

    @operation("DescribeLogStreams")
    def describe_log_streams(self, req: dict) -> dict:
        limit = _limit(req, 50)
        token = _read_token(req.get("nextToken"))
        offset = token[1] if token else 0
        by_time = req.get("orderBy") == "LastEventTime"
        if by_time and req.get("logStreamNamePrefix"):
            raise ServiceError("InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix.")
        with self.sessions() as s:
            group = self._check_group(s, req)
            stats = (
                select(
                    LogEvent.stream_id.label("stream_id"),
                    func.min(LogEvent.timestamp).label("first"),
                    func.max(LogEvent.timestamp).label("last"),
                    func.max(LogEvent.ingestion_time).label("ingested"),
                    func.sum(func.length(LogEvent.message)).label("size"),
                )
                .group_by(LogEvent.stream_id)
                .subquery()
            )
            q = (
                select(LogStream, stats.c.first, stats.c.last, stats.c.ingested, stats.c.size)
                .outerjoin(stats, stats.c.stream_id == LogStream.id)
                .where(LogStream.log_group == group)
            )
            if req.get("logStreamNamePrefix"):
                q = q.where(LogStream.name.startswith(req["logStreamNamePrefix"], autoescape=True))
            key = func.coalesce(stats.c.last, LogStream.creation_time) if by_time else LogStream.name
            if req.get("descending"):
                q = q.order_by(key.desc(), LogStream.id.desc())
            else:
                q = q.order_by(key, LogStream.id)
            found = s.execute(q.offset(offset).limit(limit + 1)).all()
        rows: list[dict[str, Any]] = []
        for stream, first, last, ingested, size in found[:limit]:
            row: dict[str, Any] = {
                "logStreamName": stream.name,
                "creationTime": stream.creation_time,
                "arn": f"{self._group_arn(group)}:log-stream:{stream.name}",
                "storedBytes": int(size or 0),
            }
            if first is not None:
                row.update(firstEventTimestamp=first, lastEventTimestamp=last, lastIngestionTime=ingested)
            rows.append(row)
        out: dict[str, Any] = {"logStreams": rows}
        if len(found) > limit:  # the SDK's tailing loops for as long as a nextToken comes back
            out["nextToken"] = _token("n", offset + limit)
        return out

    @operation("DescribeLogGroups")
    def describe_log_groups(self, req: dict) -> dict:
        if req.get("logGroupNamePrefix") and req.get("logGroupNamePattern"):
            raise ServiceError(
                "InvalidParameterException", "logGroupNamePrefix and logGroupNamePattern are mutually exclusive."
            )
        limit = _limit(req, 50)
        token = _read_token(req.get("nextToken"))
        offset = token[1] if token else 0
        with self.sessions() as s:
            q = (
                select(
                    LogStream.log_group,
                    func.min(LogStream.creation_time),
                    func.coalesce(func.sum(func.length(LogEvent.message)), 0),
                )
                .outerjoin(LogEvent, LogEvent.stream_id == LogStream.id)
                .group_by(LogStream.log_group)
                .order_by(LogStream.log_group)
            )
            if req.get("logGroupNamePrefix"):
                q = q.where(LogStream.log_group.startswith(req["logGroupNamePrefix"], autoescape=True))
            if req.get("logGroupNamePattern"):
                # CloudWatch's pattern is a case-insensitive substring
                q = q.where(LogStream.log_group.icontains(req["logGroupNamePattern"], autoescape=True))
            found = s.execute(q.offset(offset).limit(limit + 1)).all()
        groups = [
            {
                "logGroupName": group,
                "creationTime": created,
                "metricFilterCount": 0,
                "arn": self._group_arn(group) + ":*",
                "logGroupArn": self._group_arn(group),
                "storedBytes": int(size),
                "logGroupClass": "STANDARD",
            }
            for group, created, size in found[:limit]
        ]
        out: dict[str, Any] = {"logGroups": groups}
        if len(found) > limit:
            out["nextToken"] = _token("n", offset + limit)
        return out
