"""Training jobs in the console: the list, the create form (and Clone), a job's page, Compare."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from roost.algorithm.hyperparameters import HyperparameterError, HyperParameters, parse_hyperparameters
from roost.algorithm.layout import JobLayout
from roost.algorithm.metrics import validation_report
from roost.aws import ServiceError, decode_page_token, encode_page_token
from roost.cloudwatch.logs import TRAINING_GROUP, matches
from roost.training.requests import DEFAULT_ROLE, TRAINING_IMAGE, blank_request, clone_request
from roost.training.runner import packed_model
from roost.web.common import (
    POLL_SECONDS,
    PREFIX,
    STATUSES,
    Console,
    EpochRecords,
    back,
    console_of,
    epoch_records,
    job_layout,
    list_query,
    live,
    next_name,
    require_change,
    require_user,
    training_form_context,
    validation_curve,
)
from roost.web.forms import hyperparameter_rows, place_errors, request_from_form

router = APIRouter()

PAGE_SIZE = 25
#: a list's filters and order in its query string
LIST_QUERY = ("name", "status", "sort", "order", "token")


# --------------------------------------------------------------------------- the list


async def _jobs_page(console: Console, q: dict[str, str], known: dict | None = None) -> dict[str, Any]:
    """One page of the list, each job described; ``known`` keeps descriptions by (name, LastModifiedTime), so a
    live list describes again only the jobs that changed since its last look."""
    req: dict[str, Any] = {
        "MaxResults": PAGE_SIZE,
        "SortBy": q.get("sort") or "CreationTime",
        "SortOrder": q.get("order") or "Descending",
    }
    if q.get("name"):
        req["NameContains"] = q["name"]
    if q.get("status"):
        req["StatusEquals"] = q["status"]
    if q.get("token"):
        req["NextToken"] = q["token"]
    listed = await console.call("ListTrainingJobs", req)
    known = {} if known is None else known
    jobs = []
    for summary in listed["TrainingJobSummaries"]:
        key = (summary["TrainingJobName"], summary["LastModifiedTime"])
        if key not in known:
            known[key] = await console.call("DescribeTrainingJob", {"TrainingJobName": key[0]})
        jobs.append(known[key])
    current = {(j["TrainingJobName"], j["LastModifiedTime"]) for j in jobs}
    for stale in [k for k in known if k not in current]:  # what the page no longer shows
        del known[stale]
    offset = decode_page_token(q.get("token"))
    previous = encode_page_token(max(0, offset - PAGE_SIZE)) if offset else None
    return {"jobs": jobs, "next_token": listed.get("NextToken"), "previous_token": previous, "offset": offset}


@router.get("/jobs")
async def jobs_list(request: Request, user: str = Depends(require_user)) -> Response:
    console = console_of(request)
    q = list_query(request, LIST_QUERY)
    page = await _jobs_page(console, q)
    return console.page(request, "jobs.html", q=q, statuses=STATUSES, **page)


@router.get("/jobs/events")
async def jobs_events(request: Request, user: str = Depends(require_user)) -> EventSourceResponse:
    """The list's rows again whenever they change (status, secondary status, duration, metrics)."""
    console = console_of(request)
    q = list_query(request, LIST_QUERY)
    known: dict = {}

    async def look() -> tuple[dict[str, str], bool]:
        page = await _jobs_page(console, q, known)
        return {"rows": console.render(request, "jobs_rows.html", **page)}, True

    return live(look, interval=1.0)


# --------------------------------------------------------------------------- create and clone


def _clone_of(job: dict) -> dict[str, Any]:
    return {**clone_request(job), "TrainingJobName": next_name(job["TrainingJobName"])}


def _render_form(
    request: Request, console: Console, req: dict, errors: dict[str, str], top: list[str], status: int = 200
) -> Response:
    return console.page(
        request,
        "job_new.html",
        status,
        req=req,
        hyperparameters=hyperparameter_rows(req.get("HyperParameters") or {}),
        errors=errors,
        top_errors=top,
        **training_form_context(),
    )


@router.get("/jobs/new")
async def new_job(request: Request, clone: str = "", user: str = Depends(require_user)) -> Response:
    console = console_of(request)
    req = blank_request()
    if clone:
        req = _clone_of(await console.call("DescribeTrainingJob", {"TrainingJobName": clone}))
    return _render_form(request, console, req, {}, [])


@router.post("/jobs/new")
async def create_job(request: Request, user: str = Depends(require_change)) -> Response:
    console = console_of(request)
    form = await request.form()
    pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    try:
        req = request_from_form("CreateTrainingJob", pairs)
    except (KeyError, ValueError) as err:
        return Response(f"This form has a field the API does not know: {err}", status_code=400)
    try:
        await console.call("CreateTrainingJob", req)
    except ServiceError as err:
        placed, rest = place_errors(err.fields, [k for k, _ in pairs])
        return _render_form(request, console, req, placed, rest if err.fields else [err.message], 400)
    return RedirectResponse(f"{PREFIX}/jobs/{req['TrainingJobName']}", status_code=303)


@router.post("/hyperparameters/check")
async def check_hyperparameters(request: Request, user: str = Depends(require_change)) -> HTMLResponse:
    """As-you-type validation: the schema's own messages, each into its row (htmx out-of-band swaps)."""
    form = await request.form()
    prefix = "hyperParameters."
    values = {k[len(prefix) :]: v for k, v in form.multi_items() if k.startswith(prefix) and isinstance(v, str) and v}
    problems: dict[str, list[str]] = {}
    try:
        parse_hyperparameters(values)
    except HyperparameterError as err:
        problems = err.fields
    console = console_of(request)
    html = "".join(
        console.render(
            request, "field_error.html", field=f"{prefix}{name}", message="; ".join(problems.get(name, [])), oob=True
        )
        for name in [*HyperParameters.model_fields, *(n for n in problems if n not in HyperParameters.model_fields)]
    )
    return HTMLResponse(html)


# --------------------------------------------------------------------------- one job


def _report(layout: JobLayout, epochs: list[dict]) -> dict | None:
    """The served model's epoch once the job is done; while it trains, its best validation epoch so far."""
    try:
        return validation_report(layout.root)
    except (OSError, ValueError, KeyError, StopIteration):
        pass
    scored = [e for e in epochs if e.get("validation_per_class")]
    return max(scored, key=lambda e: e.get("validation_accuracy") or 0) if scored else None


def _chart_points(epochs: list[dict]) -> list[dict]:
    keep = (
        "epoch",
        "train_accuracy",
        "validation_accuracy",
        "train_top_k",
        "validation_top_k",
        "train_loss",
        "validation_loss",
        "learning_rate",
        "images_per_second",
    )
    return [{k: e.get(k) for k in keep} for e in epochs]


async def _streams(console: Console, name: str) -> list[str]:
    try:
        listed = await console.call(
            "DescribeLogStreams", {"logGroupName": TRAINING_GROUP, "logStreamNamePrefix": f"{name}/"}, "Logs_20140328"
        )
    except ServiceError as err:
        if err.code == "ResourceNotFoundException":  # no job has started on this server yet
            return []
        raise
    return [s["logStreamName"] for s in listed.get("logStreams", [])]


def _status_context(console: Console, job: dict) -> dict[str, Any]:
    return {"job": job, "has_artifact": packed_model(job_layout(console, job["TrainingJobName"])).is_file()}


@router.get("/jobs/{name}")
async def job_page(
    request: Request, name: str, stream: str = "", filter: str = "", user: str = Depends(require_user)
) -> Response:
    console = console_of(request)
    job = await console.call("DescribeTrainingJob", {"TrainingJobName": name})
    epochs = await run_in_threadpool(epoch_records, job_layout(console, name))
    streams = await _streams(console, name)
    return console.page(
        request,
        "job.html",
        streams=streams,
        stream=stream if stream in streams else (streams[0] if streams else ""),
        filter=filter,
        points=_chart_points(epochs),
        report=await run_in_threadpool(_report, job_layout(console, name), epochs),
        **_status_context(console, job),
    )


@router.get("/jobs/{name}/events")
async def job_events(
    request: Request, name: str, stream: str = "", filter: str = "", user: str = Depends(require_user)
):
    """One stream per job page: ``status`` and ``report`` (HTML) when they change, ``epoch`` (JSON) for each new
    epoch, ``lines`` (HTML) for new log lines of ``stream`` that match ``filter`` (CloudWatch's syntax)."""
    console = console_of(request)
    await console.call("DescribeTrainingJob", {"TrainingJobName": name})  # 404 for no such job, before streaming
    layout = job_layout(console, name)

    async def events() -> AsyncIterator[dict]:
        sent_status = sent_report = sent_tabs = None
        sent_epochs = 0
        reported_for: tuple | None = None
        token: str | None = None
        shown = stream
        records = EpochRecords(layout)
        while True:
            job = await console.call("DescribeTrainingJob", {"TrainingJobName": name})
            epochs = await run_in_threadpool(records.read)
            html = console.render(request, "job_status.html", **_status_context(console, job))
            if html != sent_status:
                sent_status = html
                yield {"event": "status", "data": html}
            for record in _chart_points(epochs[sent_epochs:]):
                yield {"event": "epoch", "data": json.dumps(record)}
            sent_epochs = len(epochs)
            # the per-class report changes with a new epoch or when the job ends (the model's epoch is known)
            if (len(epochs), job["TrainingJobStatus"]) != reported_for:
                reported_for = (len(epochs), job["TrainingJobStatus"])
                report = await run_in_threadpool(_report, layout, epochs)
                html = console.render(request, "job_report.html", report=report)
                if html != sent_report:
                    sent_report = html
                    yield {"event": "report", "data": html}
            streams = await _streams(console, name)
            if not shown and streams:
                shown = streams[0]
            tabs = console.render(request, "log_tabs.html", streams=streams, stream=shown, filter=filter)
            if tabs != sent_tabs:
                sent_tabs = tabs
                yield {"event": "tabs", "data": tabs}
            if shown:
                while True:  # everything there is now, a thousand lines at a time
                    req: dict[str, Any] = {"logGroupName": TRAINING_GROUP, "logStreamName": shown, "limit": 1000}
                    req.update({"nextToken": token} if token else {"startFromHead": True})
                    got = await console.call("GetLogEvents", req, "Logs_20140328")
                    found = [e for e in got["events"] if matches(e["message"], filter or None)]
                    if found:
                        lines = console.render(request, "log_lines.html", events=found)
                        yield {"event": "lines", "data": lines}
                    if got["nextForwardToken"] == token or not got["events"]:
                        token = got["nextForwardToken"]
                        break
                    token = got["nextForwardToken"]
            await asyncio.sleep(POLL_SECONDS)

    return EventSourceResponse(events(), ping=15)


@router.post("/jobs/{name}/stop")
async def stop_job(request: Request, name: str, user: str = Depends(require_change)) -> Response:
    await console_of(request).call("StopTrainingJob", {"TrainingJobName": name})
    return back(request, f"{PREFIX}/jobs/{name}")


@router.post("/jobs/{name}/model")
async def model_from_job(request: Request, name: str, user: str = Depends(require_change)) -> Response:
    """Create model: the job's artifact with the algorithm's image, named after the job (as the console does)."""
    console = console_of(request)
    job = await console.call("DescribeTrainingJob", {"TrainingJobName": name})
    await console.call(
        "CreateModel",
        {
            "ModelName": name,
            "ExecutionRoleArn": job.get("RoleArn") or DEFAULT_ROLE,
            "PrimaryContainer": {
                "Image": job["AlgorithmSpecification"].get("TrainingImage", TRAINING_IMAGE),
                "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"],
            },
        },
    )
    return RedirectResponse(f"{PREFIX}/models", status_code=303)


@router.get("/jobs/{name}/model.tar.gz")
async def download_model(request: Request, name: str, user: str = Depends(require_user)) -> Response:
    console = console_of(request)
    await console.call("DescribeTrainingJob", {"TrainingJobName": name})
    tar = packed_model(job_layout(console, name))
    if not tar.is_file():
        return console.page(
            request, "error.html", 404, title="No model yet", message=f"Training job {name} has no model.tar.gz yet."
        )
    return FileResponse(tar, media_type="application/gzip", filename=f"{name}-model.tar.gz")


# --------------------------------------------------------------------------- compare


@router.get("/compare")
async def compare(request: Request, user: str = Depends(require_user)) -> Response:
    console = console_of(request)
    names = list(dict.fromkeys(request.query_params.getlist("job")))[:10]
    only_differing = request.query_params.get("diff") == "1"
    jobs = [await console.call("DescribeTrainingJob", {"TrainingJobName": n}) for n in names]
    curves = {}
    for job in jobs:
        records = await run_in_threadpool(epoch_records, job_layout(console, job["TrainingJobName"]))
        curves[job["TrainingJobName"]] = validation_curve(records)
    keys = sorted({k for job in jobs for k in job.get("HyperParameters", {})})
    rows = []
    for key in keys:
        values = [job.get("HyperParameters", {}).get(key, "") for job in jobs]
        differs = len(set(values)) > 1
        if differs or not only_differing:
            rows.append({"name": key, "values": values, "differs": differs})
    return console.page(
        request, "compare.html", jobs=jobs, rows=rows, curves=curves, only_differing=only_differing, names=names
    )
