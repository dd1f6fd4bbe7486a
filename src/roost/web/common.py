"""What the console's pages share: the console's state and the guards of every handler (a session, and its CSRF
token for a change), the templates and their filters, list filters, the names a Clone suggests, a job's epochs
and curves, the training form's choices, the reply to an action, and the one live-update mechanism (server-sent
events that carry a part of the page again whenever it changes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import ChainableUndefined
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from roost.algorithm.layout import JobLayout
from roost.aws.dispatch import Handler
from roost.serving.endpoints import EndpointService
from roost.storage.objects import ObjectStore
from roost.storage.uri import DataRoots
from roost.training.requests import CHANNEL_NAMES
from roost.training.runner import main_layout
from roost.tuning.service import TuningJobService
from roost.web.forms import enum
from roost.web.session import check_csrf, csrf_token, signed_in_user

#: where the console is mounted; every link and redirect is below it
PREFIX = "/console"
#: how often live pages look for changes (the delay from an epoch's log line to its point on the chart)
POLL_SECONDS = 0.5


@dataclass
class Console:
    """What every page handler needs: the operations, the keys, the server's folders and hosting."""

    operations: dict[str, Handler]
    keys: dict[str, str]
    data_dir: Path
    roots: DataRoots
    hosting: EndpointService | None
    tuning: TuningJobService | None  # for what the API does not say: which jobs a tuning job stopped early
    templates: Jinja2Templates
    objects: ObjectStore | None = None  # the embedded S3 store, for the S3 page

    async def call(self, operation: str, req: dict | None = None, service: str = "SageMaker") -> dict:
        """One API operation, validated and answered exactly as ``POST /`` would (off the event loop)."""
        return await run_in_threadpool(self.operations[f"{service}.{operation}"], req or {})

    def render(self, request: Request, template: str, **context: Any) -> str:
        """A fragment for a live update; its forms carry the session's CSRF token like the page's."""
        return self.templates.get_template(template).render(csrf=csrf_token(request), **context)

    def page(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("user", request.session.get("user"))
        context["csrf"] = csrf_token(request)
        context["nav"] = template.split(".")[0].split("_")[0]
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)


def console_of(request: Request) -> Console:
    return request.app.state.console


def require_user(request: Request) -> str:
    """For every page but sign-in: the signed-in access key id, or :class:`SignInRequired`."""
    return signed_in_user(request, console_of(request).keys)


async def require_change(request: Request) -> str:
    """For every state-changing request: a session and its CSRF token."""
    user = require_user(request)
    await check_csrf(request)
    return user


# --------------------------------------------------------------------------- formatting for the templates


def when(ts: float | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def job_duration(job: dict) -> float | None:
    start = job.get("TrainingStartTime") or job.get("CreationTime")
    end = job.get("TrainingEndTime") or (time.time() if job.get("TrainingJobStatus") == "InProgress" else None)
    return None if start is None or end is None else max(0.0, end - start)


def number(value: float | None, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def final_metric(job: dict, name: str) -> float | None:
    return next((m.get("Value") for m in job.get("FinalMetricDataList", []) if m.get("MetricName") == name), None)


def templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    env = templates.env
    # a member an odd stored row lacks renders as nothing instead of failing the whole page for everyone
    env.undefined = ChainableUndefined
    env.filters["when"] = when
    env.filters["duration"] = duration
    env.filters["num"] = number
    env.globals.update(
        prefix=PREFIX, job_duration=job_duration, final_metric=final_metric, urlencode=urlencode, s3_link=s3_link
    )
    return templates


def s3_link(uri: str) -> str | None:
    """The S3 page of an ``s3://`` URI (the folder holding it, the object marked), for links from a job or a
    model; None for a local location."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[len("s3://") :].partition("/")
    folder, _, name = key.rpartition("/")
    query = {"prefix": f"{folder}/" if folder else ""}
    if name:
        query["highlight"] = key
    return f"{PREFIX}/s3/{quote(bucket)}?{urlencode(query)}"


#: the statuses a list of jobs filters on
STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
#: what a channel of the training form may hold
CONTENT_TYPES = (
    "application/x-recordio",
    "application/x-image",
    "image/jpeg",
    "image/png",
    "application/x-recordio-protobuf",
    "application/jsonlines",
)


def list_query(request: Request, keys: Iterable[str]) -> dict[str, str]:
    """A list page's filters and order, as its query string gives them."""
    return {k: v for k in keys if (v := request.query_params.get(k))}


def back(request: Request, fallback: str) -> Response:
    """After an action: htmx reloads the page it came from, a plain form goes to ``fallback``."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    return RedirectResponse(fallback, status_code=303)


def next_name(name: str, limit: int = 63) -> str:
    """The name a Clone suggests: ``<name>-clone-1``, then -2, ... (SageMaker's console suggests
    ``<name>-copy-<MM-DD>``; a number keeps repeated clones apart)."""
    stem, _, tail = name.rpartition("-clone-")
    if stem and tail.isdigit():
        return f"{stem}-clone-{int(tail) + 1}"[:limit]
    return f"{name[: limit - 9]}-clone-1"


def job_layout(console: Console, name: str) -> JobLayout:
    # only called after DescribeTrainingJob found the job: its name matched the API's pattern (no / or ..)
    return main_layout(console.data_dir, name)


class EpochRecords:
    """A job's ``metrics.jsonl`` read as it grows: each call reads only what was appended since the last."""

    def __init__(self, layout: JobLayout) -> None:
        self.path = layout.output_data / "metrics.jsonl"
        self.offset = 0
        self.records: list[dict] = []

    def read(self) -> list[dict]:
        """Every complete record so far (a line still being written waits for the next call; a line that is not
        a record is passed over, so a damaged file never breaks a page)."""
        if not self.path.is_file() or self.path.stat().st_size <= self.offset:
            return self.records
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("epoch"), int):
                self.records.append(record)
        self.offset += len(complete)
        return self.records


def epoch_records(layout: JobLayout) -> list[dict]:
    return EpochRecords(layout).read()


def validation_curve(records: list[dict]) -> list[list]:
    """``[[epoch, validation accuracy], ...]``: the curve the Compare and tuning pages draw for each job."""
    return [[e["epoch"], e.get("validation_accuracy")] for e in records]


def training_form_context() -> dict[str, Any]:
    """The choices of the training form (and of the tuning form's definition), from botocore's enums."""
    return {
        "instance_types": enum("TrainingInstanceType"),
        "channel_names": CHANNEL_NAMES,
        "content_types": CONTENT_TYPES,
        "data_types": enum("S3DataType"),
        "distributions": enum("S3DataDistribution"),
        "compressions": enum("CompressionType"),
        "wrappers": enum("RecordWrapper"),
        "input_modes": enum("TrainingInputMode"),
    }


#: what a live part gives on each look: its events' data by name, and whether it may still change
Look = Callable[[], Awaitable[tuple[dict[str, str], bool]]]


def live(look: Look, interval: float = POLL_SECONDS) -> EventSourceResponse:
    """The console's one live-update mechanism: ``look`` every ``interval`` seconds, send each event whose data
    changed since it was last sent, and ``end`` once ``look`` says nothing more will change (the page closes the
    stream then, instead of reconnecting)."""

    async def events() -> AsyncIterator[dict]:
        sent: dict[str, str] = {}
        while True:
            parts, still_live = await look()
            for event, data in parts.items():
                if sent.get(event) != data:
                    sent[event] = data
                    yield {"event": event, "data": data}
            if not still_live:
                yield {"event": "end", "data": ""}
                return
            await asyncio.sleep(interval)

    return EventSourceResponse(events(), ping=15)
