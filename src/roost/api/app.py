"""The SageMaker-compatible HTTP API: AWS JSON 1.1 at ``POST /``, dispatched on ``X-Amz-Target``.

``SageMaker.<Operation>`` goes to the training-job service, ``Logs_20140328.<Operation>``
to the job logs. Every request is SigV4-authenticated; every error has AWS's
shape (``{"__type": ..., "message": ...}`` with ``x-amzn-RequestId``), never a
traceback.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from roost.api.auth import AuthError, verify
from roost.jobs.logs import LogService
from roost.jobs.service import ServiceError, TrainingJobService
from roost.serving.hosting import HostingService

log = logging.getLogger(__name__)

JSON_11 = "application/x-amz-json-1.1"


def _error(code: str, message: str, status: int, request_id: str) -> Response:
    return JSONResponse({"__type": code, "message": message}, status_code=status,
                        headers={"x-amzn-RequestId": request_id, "Content-Type": JSON_11})


def create_app(jobs: TrainingJobService, logs: LogService, keys: dict[str, str], *, hosting: HostingService | None = None,
               on_startup: Callable[[], None] | None = None, on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if on_startup:
            on_startup()
        yield
        if on_shutdown:
            on_shutdown()

    app = FastAPI(title="Roost", description="SageMaker-compatible training-job API", docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    operations = {
        "SageMaker.CreateTrainingJob": jobs.create_training_job,
        "SageMaker.DescribeTrainingJob": jobs.describe_training_job,
        "SageMaker.ListTrainingJobs": jobs.list_training_jobs,
        "SageMaker.StopTrainingJob": jobs.stop_training_job,
        "Logs_20140328.GetLogEvents": logs.get_log_events,
        "Logs_20140328.FilterLogEvents": logs.filter_log_events,
        "Logs_20140328.DescribeLogStreams": logs.describe_log_streams,
    }
    if hosting is not None:
        for op in ("CreateModel", "DescribeModel", "ListModels", "DeleteModel", "CreateEndpointConfig",
                   "DescribeEndpointConfig", "DeleteEndpointConfig", "CreateEndpoint", "DescribeEndpoint",
                   "ListEndpoints", "UpdateEndpoint", "DeleteEndpoint", "CreateTransformJob", "DescribeTransformJob"):
            operations[f"SageMaker.{op}"] = getattr(hosting, "".join("_" + c.lower() if c.isupper() else c
                                                                     for c in op).lstrip("_"))

    @app.get("/ping")
    def ping() -> dict:
        return {"status": "ok"}

    @app.post("/")
    async def dispatch(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        body = await request.body()
        target = request.headers.get("x-amz-target", "")
        try:
            verify(request.method, str(request.url), dict(request.headers), body, keys)
        except AuthError as err:
            return _error(err.code, err.message, err.status, request_id)
        handler = operations.get(target)
        if handler is None:
            return _error("UnknownOperationException", f"Operation {target or '(none)'} is not supported by Roost.",
                          400, request_id)
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as err:
            return _error("SerializationException", f"Cannot parse the request body: {err}", 400, request_id)
        try:
            # the service talks to the database and the file system: keep it off the event loop
            result = await run_in_threadpool(handler, payload)
        except ServiceError as err:
            return _error(err.code, err.message, err.status, request_id)
        except Exception:  # noqa: BLE001 - an API client gets AWS's error shape, never a traceback
            log.exception("%s failed", target)
            return _error("InternalFailure", "The request processing has failed because of an unknown error.", 500,
                          request_id)
        return Response(json.dumps(result), media_type=JSON_11, headers={"x-amzn-RequestId": request_id})

    @app.post("/endpoints/{name}/invocations")
    async def invoke(name: str, request: Request) -> Response:
        """The sagemaker-runtime API (rest-json): InvokeEndpoint."""
        request_id = str(uuid.uuid4())
        body = await request.body()
        try:
            verify(request.method, str(request.url), dict(request.headers), body, keys)
        except AuthError as err:
            return _runtime_error(err.code, err.message, err.status, request_id)
        if hosting is None:
            return _runtime_error("ValidationError", "This server hosts no endpoints.", 400, request_id)
        h = request.headers
        try:
            payload, media, variant = await run_in_threadpool(
                hosting.invoke, name, body, h.get("content-type", ""), h.get("accept", ""),
                h.get("x-amzn-sagemaker-custom-attributes"))
        except ServiceError as err:
            return _runtime_error(err.code, err.message, err.status, request_id)
        except Exception:  # noqa: BLE001
            log.exception("InvokeEndpoint failed")
            return _runtime_error("InternalFailure", "An internal failure occurred.", 500, request_id)
        return Response(payload, media_type=media, headers={"x-amzn-RequestId": request_id,
                                                            "x-Amzn-Invoked-Production-Variant": variant})

    return app


def _runtime_error(code: str, message: str, status: int, request_id: str) -> Response:
    body = {"__type": code, "message": message}
    if code == "ModelError":
        original = 415 if "(415)" in message else 400
        body.update(OriginalStatusCode=original, OriginalMessage=message, ErrorCode="CLIENT_ERROR_FROM_MODEL")
    return JSONResponse(body, status_code=status, headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code})
