"""What the console's pages share: list filters, the names a Clone suggests, a job's epochs and curves, the
training form's choices, the reply to an action, and the one live-update mechanism (server-sent events that carry
a part of the page again whenever it changes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sse_starlette.sse import EventSourceResponse

from roost.algorithm.layout import JobLayout
from roost.training.requests import CHANNEL_NAMES
from roost.training.runner import main_layout
from roost.web.app import POLL_SECONDS, Console
from roost.web.forms import enum

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
