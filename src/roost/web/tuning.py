"""Hyperparameter tuning jobs in the console: the list, the create form (and Clone), a tuning job's page.

The create form is the training form's twin: the same channels and resources, and the hyperparameter table
from the same schema, where each row is either a static value or a range (continuous, integer or
categorical). A tuning job's page shows its counters, its best job, its training jobs sortable by objective,
and three charts: the optimisation history, parallel coordinates of the tuned hyperparameters against the
objective, and every job's validation curve with the early-stopped ones marked.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from roost.aws import ServiceError, camel
from roost.training.requests import blank_definition
from roost.training.service import BUILTIN_METRICS
from roost.tuning.objective import Objective
from roost.tuning.search import RANGE_KINDS, RangeError, SearchSpace
from roost.web.common import (
    PREFIX,
    STATUSES,
    Console,
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
from roost.web.forms import enum, hyperparameter_rows, place_errors, request_from_form

router = APIRouter()

KINDS = ("Static", "Continuous", "Integer", "Categorical")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
#: SageMaker's recommended ranges for this algorithm (its IC-tuning page), offered in the form's rows
SUGGESTED = {
    "learning_rate": ("Continuous", "0.000001", "0.5", "Auto"),
    "mini_batch_size": ("Integer", "8", "512", "Auto"),
    "momentum": ("Continuous", "0", "0.999", "Auto"),
    "optimizer": ("Categorical", "sgd, adam, rmsprop, nag"),
    "weight_decay": ("Continuous", "0", "0.999", "Auto"),
    "beta_1": ("Continuous", "0.000001", "0.999", "Auto"),
    "beta_2": ("Continuous", "0.000001", "0.999", "Auto"),
    "eps": ("Continuous", "0.00000001", "1.0", "Auto"),
    "gamma": ("Continuous", "0.00000001", "0.999", "Auto"),
}
MAX_CHART_JOBS = 100


# --------------------------------------------------------------------------- the list


async def _list(console: Console, q: dict[str, str]) -> list[dict]:
    req: dict[str, Any] = {"MaxResults": 100, "SortBy": "CreationTime", "SortOrder": "Descending"}
    if q.get("name"):
        req["NameContains"] = q["name"]
    if q.get("status"):
        req["StatusEquals"] = q["status"]
    listed = await console.call("ListHyperParameterTuningJobs", req)
    out = []
    for summary in listed["HyperParameterTuningJobSummaries"]:
        d = await console.call(
            "DescribeHyperParameterTuningJob", {"HyperParameterTuningJobName": summary["HyperParameterTuningJobName"]}
        )
        out.append(d)
    return out


LIST_QUERY = ("name", "status")


@router.get("/tuning-jobs")
async def tuning_list(request: Request, user: str = Depends(require_user)) -> Response:
    console = console_of(request)
    q = list_query(request, LIST_QUERY)
    return console.page(request, "tuning_jobs.html", q=q, statuses=STATUSES, tuning_jobs=await _list(console, q))


@router.get("/tuning-jobs/events")
async def tuning_events(request: Request, user: str = Depends(require_user)) -> EventSourceResponse:
    """The list's rows again whenever they change."""
    console = console_of(request)
    q = list_query(request, LIST_QUERY)

    async def look() -> tuple[dict[str, str], bool]:
        rows = await _list(console, q)
        return {"rows": console.render(request, "tuning_rows.html", tuning_jobs=rows, q=q)}, True

    return live(look, interval=1.0)


# --------------------------------------------------------------------------- create and clone


def _blank() -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": "",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2},
            "TrainingJobEarlyStoppingType": "Off",
            "ParameterRanges": {},
        },
        "TrainingJobDefinition": blank_definition(),
    }


def _clone_of(d: dict) -> dict[str, Any]:
    req = {k: d[k] for k in ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "WarmStartConfig") if k in d}
    definition = dict(req.get("TrainingJobDefinition") or {})
    if "ResourceConfig" in definition and "HyperParameterTuningResourceConfig" not in definition:
        definition["HyperParameterTuningResourceConfig"] = definition.pop("ResourceConfig")
    req["TrainingJobDefinition"] = definition
    req["HyperParameterTuningJobName"] = next_name(d["HyperParameterTuningJobName"], limit=32)
    return req


def _rows(req: dict) -> list[dict[str, Any]]:
    """The hyperparameter table: every hyperparameter of the schema, static or with its range."""
    definition = req.get("TrainingJobDefinition") or {}
    ranges = (req.get("HyperParameterTuningJobConfig") or {}).get("ParameterRanges") or {}
    by_name: dict[str, dict[str, str]] = {}
    for key in RANGE_KINDS:
        kind = key.removesuffix("ParameterRanges")
        for r in ranges.get(key) or []:
            by_name[r["Name"]] = {
                "kind": kind,
                "min": r.get("MinValue", ""),
                "max": r.get("MaxValue", ""),
                "scaling": r.get("ScalingType") or "Auto",
                "values": ", ".join(r.get("Values") or []),
            }
    rows = []
    for row in hyperparameter_rows(definition.get("StaticHyperParameters") or {}):
        if row.name.startswith(("_tuning", "sagemaker_")):
            continue
        suggested = SUGGESTED.get(row.name)
        tuned = by_name.get(row.name, {})
        rows.append(
            {
                "name": row.name,
                "value": row.value,
                "required": row.required,
                "help": row.help,
                "kind": tuned.get("kind", "Static"),
                "min": tuned.get("min", suggested[1] if suggested and suggested[0] != "Categorical" else ""),
                "max": tuned.get("max", suggested[2] if suggested and suggested[0] != "Categorical" else ""),
                "scaling": tuned.get("scaling", "Auto"),
                "values": tuned.get("values", suggested[1] if suggested and suggested[0] == "Categorical" else ""),
                "suggested": suggested[0] if suggested else "",
            }
        )
    return rows


def _render_form(request, console, req, errors, top, status=200) -> Response:
    return console.page(
        request,
        "tuning_new.html",
        status,
        req=req,
        rows=_rows(req),
        kinds=KINDS,
        scalings=SCALINGS,
        strategies=enum("HyperParameterTuningJobStrategyType"),
        metrics=[m["Name"] for m in BUILTIN_METRICS],
        errors=errors,
        top_errors=top,
        **training_form_context(),
    )


@router.get("/tuning-jobs/new")
async def new_tuning_job(request: Request, clone: str = "", user: str = Depends(require_user)) -> Response:
    console = console_of(request)
    req = _blank()
    if clone:
        req = _clone_of(await console.call("DescribeHyperParameterTuningJob", {"HyperParameterTuningJobName": clone}))
    return _render_form(request, console, req, {}, [])


def request_from_tuning_form(pairs: list[tuple[str, str]]) -> tuple[dict, dict[str, str]]:
    """The CreateHyperParameterTuningJob request of the form, and each range's field (for errors)."""
    plain = [(k, v) for k, v in pairs if not k.startswith("range.")]
    ranges: dict[str, dict[str, str]] = {}
    for key, value in pairs:
        if key.startswith("range."):
            _, name, part = key.split(".", 2)
            ranges.setdefault(name, {})[part] = value.strip()
    tuned = {name: r for name, r in ranges.items() if r.get("kind", "Static") != "Static"}
    static_prefix = "trainingJobDefinition.staticHyperParameters."
    plain = [(k, v) for k, v in plain if not (k.startswith(static_prefix) and k[len(static_prefix) :] in tuned)]
    req = request_from_form("CreateHyperParameterTuningJob", plain)
    parameter_ranges: dict[str, list] = {key: [] for key in RANGE_KINDS}
    where: dict[str, str] = {}
    for name, r in tuned.items():
        key = f"{r['kind']}ParameterRanges"
        if r["kind"] == "Categorical":
            entry: dict[str, Any] = {
                "Name": name,
                "Values": [v.strip() for v in r.get("values", "").split(",") if v.strip()],
            }
        else:
            entry = {
                "Name": name,
                "MinValue": r.get("min", ""),
                "MaxValue": r.get("max", ""),
                "ScalingType": r.get("scaling") or "Auto",
            }
        parameter_ranges[key].append(entry)
        where[f"hyperParameterTuningJobConfig.parameterRanges.{camel(key)}.{len(parameter_ranges[key])}"] = (
            f"range.{name}.kind"
        )
        where[f"hyperParameters.{name}"] = f"range.{name}.kind"
    req.setdefault("HyperParameterTuningJobConfig", {})["ParameterRanges"] = parameter_ranges
    return req, where


def _form_fields(fields: dict[str, str], where: dict[str, str]) -> dict[str, str]:
    """The API's member paths as the form's fields: a range's problems beside its row, a training job's (checked
    on a sample job of the definition) beside the definition's field."""
    out: dict[str, str] = {}
    for path, message in fields.items():
        target = next(
            (field for prefix, field in where.items() if path == prefix or path.startswith(prefix + ".")), None
        )
        if target is None:
            if path.startswith("hyperParameters."):
                target = "trainingJobDefinition.staticHyperParameters." + path[len("hyperParameters.") :]
            elif path.startswith("resourceConfig."):
                target = "trainingJobDefinition.hyperParameterTuningResourceConfig." + path[len("resourceConfig.") :]
            elif path.split(".")[0] in ("inputDataConfig", "outputDataConfig", "stoppingCondition", "checkpointConfig"):
                target = "trainingJobDefinition." + path
            else:
                target = path
        out[target] = f"{out[target]}; {message}" if target in out else message
    return out


@router.post("/tuning-jobs/new")
async def create_tuning_job(request: Request, user: str = Depends(require_change)) -> Response:
    console = console_of(request)
    form = await request.form()
    pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    try:
        req, where = request_from_tuning_form(pairs)
    except (KeyError, ValueError) as err:
        return Response(f"This form has a field the API does not know: {err}", status_code=400)
    try:
        await console.call("CreateHyperParameterTuningJob", req)
    except ServiceError as err:
        names = [k for k, _ in pairs]
        placed, rest = place_errors(_form_fields(err.fields, where), names)
        return _render_form(request, console, req, placed, rest if err.fields else [err.message], 400)
    return RedirectResponse(f"{PREFIX}/tuning-jobs/{req['HyperParameterTuningJobName']}", status_code=303)


# --------------------------------------------------------------------------- one tuning job


def _space(d: dict) -> SearchSpace | None:
    static = (d.get("TrainingJobDefinition") or {}).get("StaticHyperParameters") or {}
    try:
        return SearchSpace.parse(d["HyperParameterTuningJobConfig"].get("ParameterRanges"), static)
    except RangeError:
        return None


def _objective_value(job: dict) -> float | None:
    return (job.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")


def parallel_coordinates(jobs: list[dict], space: SearchSpace | None, objective: Objective) -> dict[str, Any]:
    """An SVG's geometry: one vertical axis per tuned hyperparameter and one for the objective, one line per job
    through its values, coloured by its objective (dark: better)."""
    names = [r.name for r in space.ranges] if space else sorted({k for j in jobs for k in j["TunedHyperParameters"]})
    width, height, top, bottom = 160 * (len(names) + 1), 300, 24, 36
    axes: list[dict[str, Any]] = []
    scales: list[tuple[str, Any]] = []
    for i, name in enumerate([*names, "objective"]):
        x = 60 + i * 160
        r = space.by_name.get(name) if space else None
        if r is not None and r.kind == "Categorical":
            values = list(r.values)
            scales.append(("cat", values))
            ticks = [(v, (k + 0.5) / len(values)) for k, v in enumerate(values)]
        else:
            found = [
                float(v)
                for j in jobs
                if (v := (_objective_value(j) if name == "objective" else _num(j["TunedHyperParameters"].get(name))))
                is not None
            ]
            low = r.low if r is not None else (min(found) if found else 0.0)
            high = r.high if r is not None else (max(found) if found else 1.0)
            log = bool(r is not None and r.log and low > 0)
            scales.append(("num", (low, high, log)))
            ticks = [
                (_fmt(v), _position(v, low, high, log))
                for v in (low, (low + high) / 2 if not log else math.sqrt(low * high), high)
            ]
        axes.append(
            {
                "name": name,
                "x": x,
                "ticks": [{"label": label, "y": top + (1 - t) * (height - top - bottom)} for label, t in ticks],
            }
        )
    scored = [o for j in jobs if (o := _objective_value(j)) is not None]
    lo, hi = (min(scored), max(scored)) if scored else (0.0, 1.0)
    lines = []
    for j in jobs:
        points = []
        for (kind, scale), axis, name in zip(scales, axes, [*names, "objective"], strict=True):
            raw = _objective_value(j) if name == "objective" else j["TunedHyperParameters"].get(name)
            if raw is None:
                continue
            if kind == "cat":
                t = (scale.index(raw) + 0.5) / len(scale) if raw in scale else 0.5
            else:
                t = _position(float(raw), *scale)
            points.append(f"{axis['x']:.1f},{top + (1 - t) * (height - top - bottom):.1f}")
        value = _objective_value(j)
        quality = 0.5 if value is None or hi == lo else (value - lo) / (hi - lo)
        if not objective.maximize:
            quality = 1 - quality
        lines.append(
            {
                "points": " ".join(points),
                "colour": _colour(quality) if value is not None else "#9ca3af",
                "dashed": value is None,
                "title": f"{j['TrainingJobName']}: {_fmt(value) if value is not None else 'no objective'}",
            }
        )
    return {"width": width, "height": height, "top": top, "bottom": height - bottom, "axes": axes, "lines": lines}


def _num(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _position(v: float, low: float, high: float, log: bool) -> float:
    if high <= low:
        return 0.5
    if log:
        return (math.log(max(v, low)) - math.log(low)) / (math.log(high) - math.log(low))
    return (v - low) / (high - low)


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _colour(t: float) -> str:
    """Light yellow (worst) to dark blue (best)."""
    a, b = (253, 231, 37), (30, 58, 138)
    return "#" + "".join(f"{round(x + (y - x) * max(0.0, min(1.0, t))):02x}" for x, y in zip(a, b, strict=True))


async def _detail(console: Console, name: str, sort: str, order: str) -> dict[str, Any]:
    d = await console.call("DescribeHyperParameterTuningJob", {"HyperParameterTuningJobName": name})
    jobs: list[dict] = []
    token = None
    while True:
        req: dict[str, Any] = {
            "HyperParameterTuningJobName": name,
            "MaxResults": 100,
            "SortBy": "CreationTime",
            "SortOrder": "Ascending",
        }
        if token:
            req["NextToken"] = token
        page = await console.call("ListTrainingJobsForHyperParameterTuningJob", req)
        jobs += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            break
    service = console.tuning
    notes = await run_in_threadpool(service.trial_notes, name) if service else {}
    for i, j in enumerate(jobs, 1):
        j["number"] = i
        j["stopped_early"] = notes.get(j["TrainingJobName"], {}).get("stopped_by") == "early-stopping"
    objective = Objective.of(d)
    history, best = [], None
    for j in jobs:
        value = _objective_value(j)
        if value is not None and objective.better(value, best):
            best = value
        history.append([j["number"], value, best])
    charted = jobs[:MAX_CHART_JOBS]
    curves = {}
    for j in charted:
        records = await run_in_threadpool(epoch_records, job_layout(console, j["TrainingJobName"]))
        curves[j["TrainingJobName"]] = validation_curve(records)
    table = list(jobs)
    if sort == "objective":
        table.sort(
            key=lambda j: (
                _objective_value(j) is None,
                -(_objective_value(j) or 0) if order != "asc" else (_objective_value(j) or 0),
            )
        )
    elif order == "desc":
        table.reverse()
    tuned = (
        [r.name for r in space.ranges]
        if (space := _space(d))
        else sorted({k for j in jobs for k in j["TunedHyperParameters"]})
    )
    return {
        "tuning_job": d,
        "jobs": table,
        "tuned": tuned,
        "sort": sort,
        "order": order,
        "charts": {
            "history": history,
            "curves": curves,
            "stopped_early": [j["TrainingJobName"] for j in charted if j["stopped_early"]],
        },
        "parallel": parallel_coordinates(jobs, space, objective),
        "live": d["HyperParameterTuningJobStatus"] in ("InProgress", "Stopping"),
        "now": time.time(),
    }


@router.get("/tuning-jobs/{name}")
async def tuning_page(
    request: Request, name: str, sort: str = "number", order: str = "asc", user: str = Depends(require_user)
) -> Response:
    console = console_of(request)
    return console.page(request, "tuning_job.html", **await _detail(console, name, sort, order))


@router.get("/tuning-jobs/{name}/events")
async def tuning_page_events(
    request: Request, name: str, sort: str = "number", order: str = "asc", user: str = Depends(require_user)
) -> EventSourceResponse:
    """The page's live part again whenever it changes, until the tuning job has ended."""
    console = console_of(request)
    await console.call("DescribeHyperParameterTuningJob", {"HyperParameterTuningJobName": name})  # 404 first

    async def look() -> tuple[dict[str, str], bool]:
        context = await _detail(console, name, sort, order)
        return {"panel": console.render(request, "tuning_panel.html", **context)}, context["live"]

    return live(look, interval=1.0)


@router.post("/tuning-jobs/{name}/stop")
async def stop_tuning_job(request: Request, name: str, user: str = Depends(require_change)) -> Response:
    await console_of(request).call("StopHyperParameterTuningJob", {"HyperParameterTuningJobName": name})
    return back(request, f"{PREFIX}/tuning-jobs/{name}")
