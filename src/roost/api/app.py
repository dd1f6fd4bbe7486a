"""The SageMaker-compatible HTTP API: AWS JSON 1.1 at ``POST /``, dispatched on ``X-Amz-Target``.

Each service registers its operations (``roost.aws.operation``): ``SageMaker.<Operation>``
goes to the training-job and hosting services, ``Logs_20140328.<Operation>`` to the
job logs. Every request is SigV4-authenticated; every error has AWS's shape
(``{"__type": ..., "message": ...}`` with ``x-amzn-RequestId``), never a traceback.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from roost.api.auth import verify
from roost.api.query import parse_form, request_params, xml_error, xml_response
from roost.aws import Service, ServiceError
from roost.aws.dispatch import Handler, dispatch_table
from roost.aws.shapes import service_model
from roost.serving.endpoints import TOO_LARGE_MESSAGE, EndpointService
from roost.serving.http import BodyLimit
from roost.serving.invocations import MAX_BODY

log = logging.getLogger(__name__)

JSON_11 = "application/x-amz-json-1.1"


#: the largest AWS JSON request the API reads (a CreateTrainingJob with 100 hyperparameters is under 300 KB)
MAX_REQUEST_BYTES = 2 * 1024 * 1024
#: the sagemaker-runtime operations answered by routes of their own (rest-json), not by a Service
RUNTIME_OPERATIONS = ("InvokeEndpoint",)
#: where a browser finds the console (``GET /`` sends it there)
CONSOLE_PATH = "/console"


def _is_invocation(path: str) -> bool:
    return path.startswith("/endpoints/")


def _body_limit(path: str) -> int:
    # the console's "try it" uploads an image as large as InvokeEndpoint takes
    return MAX_BODY if _is_invocation(path) or path.startswith(CONSOLE_PATH + "/") else MAX_REQUEST_BYTES


def _too_large(path: str, limit: int, size: int | None) -> Response:
    request_id = str(uuid.uuid4())
    if _is_invocation(path):
        return _runtime_error(ServiceError("ValidationError", TOO_LARGE_MESSAGE), request_id)
    got = f"{size} bytes" if size is not None else "more"
    return _error(
        ServiceError("SerializationException", f"The request body is {got}; the limit is {limit} bytes.", 413),
        request_id,
    )


def _service_error(exc: Exception, what: str) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
    log.error("%s failed", what, exc_info=exc)
    return ServiceError("InternalFailure", "The request processing has failed because of an unknown error.", 500)


def _error(err: ServiceError, request_id: str) -> Response:
    return JSONResponse(
        err.body(), status_code=err.status, headers={"x-amzn-RequestId": request_id, "Content-Type": JSON_11}
    )


@dataclass
class Api:
    """What the API's routes need, kept on ``app.state.api`` (as the console keeps its own on ``app.state``)."""

    operations: dict[str, Handler]  # X-Amz-Target -> validated handler
    keys: dict[str, str]  # access key id -> secret
    hosting: EndpointService | None  # answers InvokeEndpoint
    metadata: dict[str, dict]  # a target prefix -> its service model's metadata (JSON version, query dialect)
    by_version: dict[str, Service]  # the query protocol's API version -> its service


def api_of(request: Request) -> Api:
    return request.app.state.api


router = APIRouter()


@router.get("/ping")
def ping() -> dict:
    return {"status": "ok"}


@router.post("/")
async def dispatch(request: Request) -> Response:
    """AWS JSON 1.0/1.1 on ``X-Amz-Target``; a form without it is the query protocol."""
    api = api_of(request)
    request_id = str(uuid.uuid4())
    body = await request.body()
    target = request.headers.get("x-amz-target", "")
    try:
        verify(request.method, str(request.url), dict(request.headers), body, api.keys)
    except ServiceError as err:  # not signed, or not signed right
        return _error(err, request_id)
    if not target and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return await _query(api, body, request_id)
    handler = api.operations.get(target)
    if handler is None:
        return _error(
            ServiceError("UnknownOperationException", f"Operation {target or '(none)'} is not supported by Roost."),
            request_id,
        )
    try:
        payload = json.loads(body or b"{}")
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
    except (ValueError, RecursionError) as err:  # RecursionError: JSON nested thousands deep
        return _error(ServiceError("SerializationException", f"Cannot parse the request body: {err}"), request_id)
    meta = api.metadata.get(target.partition(".")[0], {})
    media = f"application/x-amz-json-{meta.get('jsonVersion', '1.1')}"
    try:
        # the service talks to the database and the file system: keep it off the event loop
        result = await run_in_threadpool(handler, payload)
    except Exception as exc:  # noqa: BLE001 - an API client gets AWS's error shape, never a traceback
        failure = _service_error(exc, target)
        response = _error(failure, request_id)
        response.headers["Content-Type"] = media
        if "awsQueryCompatible" in meta:  # botocore reads the query dialect's error code from here
            kind = "Sender" if failure.status < 500 else "Receiver"
            response.headers["x-amzn-query-error"] = f"{failure.code};{kind}"
        return response
    return Response(json.dumps(result), media_type=media, headers={"x-amzn-RequestId": request_id})


async def _query(api: Api, body: bytes, request_id: str) -> Response:
    """The query protocol (form in, XML out), for the services whose model still lists it."""
    try:
        form = parse_form(body)
        service = api.by_version.get(form.get("Version", ""))
        handler = api.operations.get(f"{service.target_prefix}.{form.get('Action', '')}") if service else None
        if service is None or handler is None:
            raise ServiceError(
                "InvalidAction",
                f"Action {form.get('Action')!r} of API version {form.get('Version')!r} is not supported by Roost.",
            )
        operation_model = service_model(service.model_name).operation_model(form["Action"])
        result = await run_in_threadpool(handler, request_params(operation_model, form))
    except Exception as exc:  # noqa: BLE001
        failure = _service_error(exc, "query request")
        return Response(
            xml_error(failure, request_id),
            status_code=failure.status,
            media_type="text/xml",
            headers={"x-amzn-RequestId": request_id},
        )
    namespace = api.metadata[service.target_prefix]["xmlNamespace"]
    return Response(
        xml_response(operation_model, namespace, result, request_id),
        media_type="text/xml",
        headers={"x-amzn-RequestId": request_id},
    )


@router.post("/endpoints/{name}/invocations")
async def invoke(name: str, request: Request) -> Response:
    """The sagemaker-runtime API (rest-json): InvokeEndpoint."""
    api = api_of(request)
    request_id = str(uuid.uuid4())
    body = await request.body()
    try:
        verify(request.method, str(request.url), dict(request.headers), body, api.keys)
    except ServiceError as err:
        return _runtime_error(err, request_id)
    if api.hosting is None:
        return _runtime_error(ServiceError("ValidationError", "This server hosts no endpoints."), request_id)
    h = request.headers
    try:
        payload, media, variant = await run_in_threadpool(
            api.hosting.invoke,
            name,
            body,
            h.get("content-type", ""),
            h.get("accept", ""),
            h.get("x-amzn-sagemaker-custom-attributes"),
        )
    except ServiceError as err:
        return _runtime_error(err, request_id)
    except Exception:  # noqa: BLE001
        log.exception("InvokeEndpoint failed")
        return _runtime_error(ServiceError("InternalFailure", "An internal failure occurred.", 500), request_id)
    return Response(
        payload,
        media_type=media,
        headers={"x-amzn-RequestId": request_id, "x-Amzn-Invoked-Production-Variant": variant},
    )


async def _unknown_route(request: Request, exc: Exception) -> Response:
    """A path or method no operation has (InvokeEndpointAsync's, say): AWS's shape, not FastAPI's {"detail"}."""
    assert isinstance(exc, StarletteHTTPException)
    request_id = str(uuid.uuid4())
    if exc.status_code in (404, 405):
        err = ServiceError(
            "UnknownOperationException",
            f"No operation is served at {request.method} {request.url.path} by Roost.",
            exc.status_code,
        )
    else:
        err = ServiceError("InternalFailure", str(exc.detail), exc.status_code)
    return _runtime_error(err, request_id)


def _to_console() -> RedirectResponse:
    # a browser asks GET /; the AWS API stays at POST /
    return RedirectResponse(CONSOLE_PATH + "/jobs", status_code=303)


def create_app(
    services: list[Service],
    keys: dict[str, str],
    *,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    console: ASGIApp | None = None,
) -> FastAPI:
    """The API answering every operation of ``services``; InvokeEndpoint when one of them is hosting; the
    ``console`` (``roost.web``) below ``/console`` when given."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if on_startup:
            on_startup()
        yield
        if on_shutdown:
            on_shutdown()

    # no schema pages: everything here answers signed AWS requests only
    app = FastAPI(title="Roost", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(BodyLimit, limit_for=_body_limit, reject=_too_large)
    app.add_exception_handler(StarletteHTTPException, _unknown_route)
    # what each service speaks, from its model: JSON 1.0 or 1.1, and the API version of its query dialect
    metadata = {svc.target_prefix: service_model(svc.model_name).metadata for svc in services}
    app.state.api = Api(
        operations=dispatch_table(*services),
        keys=keys,
        hosting=next((svc for svc in services if isinstance(svc, EndpointService)), None),
        metadata=metadata,
        by_version={
            metadata[svc.target_prefix]["apiVersion"]: svc
            for svc in services
            if "query" in metadata[svc.target_prefix].get("protocols", ())
        },
    )
    app.include_router(router)
    if console is not None:
        app.mount(CONSOLE_PATH, console)
        app.add_api_route("/", _to_console, methods=["GET"])
    return app


def _runtime_error(err: ServiceError, request_id: str) -> Response:
    # the runtime API (rest-json) names the error in a header as well as in the body
    return JSONResponse(
        err.body(), status_code=err.status, headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": err.code}
    )
