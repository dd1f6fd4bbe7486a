"""Models, endpoint configurations, endpoints (with "try it") and batch transform jobs in the console."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from roost.aws import ServiceError
from roost.serving.invocations import MAX_BODY
from roost.web.common import PREFIX, Console, console_of, require_change, require_user
from roost.web.forms import enum, place_errors, request_from_form

router = APIRouter()

#: what each kind of resource is called in the API, its list key and its name member
KINDS = {
    "models": ("Model", "Models", "ModelName"),
    "endpoint-configs": ("EndpointConfig", "EndpointConfigs", "EndpointConfigName"),
    "endpoints": ("Endpoint", "Endpoints", "EndpointName"),
}
TOP_CLASSES = 5


async def _all(console: Console, kind: str) -> list[dict]:
    api, key, _ = KINDS[kind]
    out, token = [], None
    while True:
        page = await console.call(f"List{api}s", {"MaxResults": 100, **({"NextToken": token} if token else {})})
        out += page[key]
        token = page.get("NextToken")
        if not token or len(out) >= 1000:
            return out


async def _render(request: Request, kind: str, errors: dict | None = None, top: list | None = None, status=200):
    console = console_of(request)
    context: dict[str, Any] = {"kind": kind, "items": await _all(console, kind), "errors": errors or {}}
    context["top_errors"] = top or []
    if kind == "endpoint-configs":
        context["models"] = [m["ModelName"] for m in await _all(console, "models")]
        context["instance_types"] = enum("ProductionVariantInstanceType")
    if kind == "endpoints":
        context["configs"] = [c["EndpointConfigName"] for c in await _all(console, "endpoint-configs")]
    return console.page(request, f"{kind.replace('-', '_')}.html", status, **context)


def _list_page(kind: str):
    async def page(request: Request, user: str = Depends(require_user)) -> Response:
        return await _render(request, kind)

    return page


def _create(kind: str):
    async def create(request: Request, user: str = Depends(require_change)) -> Response:
        console = console_of(request)
        form = await request.form()
        pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        api = KINDS[kind][0]
        try:
            await console.call(f"Create{api}", request_from_form(f"Create{api}", pairs))
        except (KeyError, ValueError) as err:
            return Response(f"This form has a field the API does not know: {err}", status_code=400)
        except ServiceError as err:
            placed, rest = place_errors(err.fields, [k for k, _ in pairs])
            return await _render(request, kind, placed, rest if err.fields else [err.message], 400)
        return RedirectResponse(f"{PREFIX}/{kind}", status_code=303)

    return create


def _delete(kind: str):
    async def delete(request: Request, name: str, user: str = Depends(require_change)) -> Response:
        api, _, member = KINDS[kind]
        await console_of(request).call(f"Delete{api}", {member: name})
        return RedirectResponse(f"{PREFIX}/{kind}", status_code=303)

    return delete


for _kind in KINDS:
    router.add_api_route(f"/{_kind}", _list_page(_kind), methods=["GET"])
    router.add_api_route(f"/{_kind}", _create(_kind), methods=["POST"])
    router.add_api_route(f"/{_kind}/{{name}}/delete", _delete(_kind), methods=["POST"])


# --------------------------------------------------------------------------- one endpoint


@router.get("/endpoints/{name}")
async def endpoint_page(request: Request, name: str, user: str = Depends(require_user)) -> Response:
    console = console_of(request)
    endpoint = await console.call("DescribeEndpoint", {"EndpointName": name})
    return console.page(request, "endpoint.html", endpoint=endpoint, result=None, error=None)


@router.get("/endpoints/{name}/events")
async def endpoint_events(request: Request, name: str, user: str = Depends(require_user)) -> EventSourceResponse:
    console = console_of(request)
    await console.call("DescribeEndpoint", {"EndpointName": name})

    async def events() -> AsyncIterator[dict]:
        last = None
        while True:
            try:
                endpoint = await console.call("DescribeEndpoint", {"EndpointName": name})
            except ServiceError:  # deleted meanwhile
                yield {"event": "status", "data": '<span class="status status-Deleted">Deleted</span>'}
                return
            html = console.render(request, "endpoint_status.html", endpoint=endpoint)
            if html != last:
                last = html
                yield {"event": "status", "data": html}
            await asyncio.sleep(1.0)

    return EventSourceResponse(events(), ping=15)


@router.post("/endpoints/{name}/invoke")
async def try_endpoint(request: Request, name: str, user: str = Depends(require_change)) -> Response:
    """Try it: one image through InvokeEndpoint's own code, its top classes with names and probabilities."""
    console = console_of(request)
    endpoint = await console.call("DescribeEndpoint", {"EndpointName": name})
    form = await request.form()
    image = form.get("image")
    result = error = None
    if not isinstance(image, UploadFile) or not image.filename:
        error = "Choose an image file (JPEG or PNG) to send to the endpoint."
    elif console.hosting is None:
        error = "This server hosts no endpoints."
    else:
        body = await image.read(MAX_BODY + 1)
        content_type = (
            image.content_type if image.content_type in ("image/jpeg", "image/png") else "application/x-image"
        )
        try:
            payload, _, variant = await run_in_threadpool(
                console.hosting.invoke, name, body, content_type, "application/json", f"top_k={TOP_CLASSES}"
            )
            answer = json.loads(payload)
            result = {"image": image.filename, "top": answer["top_k"], "variant": variant}
        except ServiceError as err:
            error = err.message
    status = 200 if error is None else 400
    return console.page(request, "endpoint.html", status, endpoint=endpoint, result=result, error=error)


# --------------------------------------------------------------------------- batch transform


@router.get("/transform-jobs")
async def transform_jobs(request: Request, user: str = Depends(require_user)) -> Response:
    console = console_of(request)
    listed = await console.call("ListTransformJobs", {"MaxResults": 100, "SortOrder": "Descending"})
    jobs = [
        await console.call("DescribeTransformJob", {"TransformJobName": s["TransformJobName"]})
        for s in listed["TransformJobSummaries"]
    ]
    return console.page(request, "transform_jobs.html", jobs=jobs)
