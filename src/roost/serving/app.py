"""SageMaker's serving container contract (docs/sagemaker.md, "The serving container"): ``GET /ping`` and
``POST /invocations``, answered as :mod:`roost.serving.invocations` describes.

Bad requests get a 4xx with a message; nothing a client sends can crash the worker.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from roost.serving.batching import DynamicBatcher
from roost.serving.http import BodyLimit
from roost.serving.invocations import MAX_BODY, InputError, answer, too_large_message
from roost.serving.predictor import Predictor

log = logging.getLogger(__name__)


def _too_large(path: str, limit: int, size: int | None) -> Response:
    return JSONResponse({"error": too_large_message(size, limit)}, status_code=413)


def create_serving_app(predictor: Predictor, max_batch: int = 8) -> FastAPI:
    """``max_batch`` > 1 lets concurrent requests share forward passes (see ``roost.serving.batching``)."""
    model = DynamicBatcher(predictor, max_batch)
    app = FastAPI(title="Roost model server", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit_for=lambda path: MAX_BODY, reject=_too_large)

    @app.get("/ping")
    def ping() -> Response:
        return Response(status_code=200)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        body = await request.body()
        h = request.headers
        try:
            payload, media = await run_in_threadpool(
                answer,
                model,
                body,
                h.get("content-type", ""),
                h.get("accept", ""),
                h.get("x-amzn-sagemaker-custom-attributes"),
            )
        except InputError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        except Exception:  # noqa: BLE001 - a request must never take the worker down
            log.exception("prediction failed")
            return JSONResponse({"error": "the model failed on this request; see the server log"}, status_code=500)
        return Response(payload, media_type=media)

    return app
