"""SageMaker's serving container contract (reference §7): ``GET /ping`` and ``POST /invocations``.

Answers as SageMaker's image-classification algorithm does (reference §5): a JPEG
or PNG body (``image/jpeg``, ``image/png``, ``application/x-image``); ``Accept:
application/json`` (the default) gets a bare JSON array of class probabilities,
``application/jsonlines`` gets ``{"prediction": [...]}``. Beyond SageMaker:
``X-Amzn-SageMaker-Custom-Attributes: top_k=3,class_names=true`` adds the top
classes and their names, and an ``application/json`` body
``{"instances": [<base64 image>, ...]}`` predicts several images at once.
Bad requests get a 4xx with a message; nothing a client sends can crash the worker.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from roost.serving.predictor import InputError, Prediction, Predictor

log = logging.getLogger(__name__)

MAX_BODY = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")


def parse_custom_attributes(header: str | None) -> dict[str, str]:
    out = {}
    for part in (header or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def decode_request(body: bytes, content_type: str) -> tuple[list[bytes], bool]:
    """The images of a request, and whether it was a several-image JSON request."""
    if len(body) > MAX_BODY:
        raise InputError(f"the request body is {len(body)} bytes; the limit is {MAX_BODY} bytes (6 MB)")
    base = (content_type or "").split(";")[0].strip().lower()
    if base in IMAGE_TYPES:
        return [body], False
    if base == "application/json":
        try:
            items = json.loads(body)["instances"]
            images = [base64.b64decode(x["b64"] if isinstance(x, dict) else x, validate=True) for x in items]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InputError('an application/json request must be {"instances": [<base64 image>, ...]}') from None
        if not images:
            raise InputError("no instances in the request")
        return images, True
    raise InputError(f"unsupported content type {content_type!r}: send image/jpeg, image/png or application/x-image "
                     '(or application/json {"instances": [...]} for several images)')


def render(predictions: list[Prediction], accept: str, attributes: dict[str, str], names: list[str] | None,
           several: bool) -> tuple[bytes, str]:
    """SageMaker's answer shapes, plus the extras asked for in the custom attributes."""
    accept = (accept or "application/json").split(";")[0].strip().lower()
    if accept in ("*/*", ""):
        accept = "application/json"
    if accept not in ("application/json", "application/jsonlines"):
        raise InputError(f"unsupported Accept {accept!r}: use application/json or application/jsonlines")
    top_k = int(attributes["top_k"]) if attributes.get("top_k", "").isdigit() else None
    verbose = top_k is not None or attributes.get("class_names", "").lower() == "true"

    def one(p: Prediction):
        if not verbose and accept == "application/json" and not several:
            return p.probabilities
        out = {"prediction": p.probabilities}
        if verbose:
            out["top_k"] = p.top(top_k or 1, names)
            if names:
                out["labels"] = names
        return out

    if accept == "application/jsonlines":
        return "".join(json.dumps(one(p)) + "\n" for p in predictions).encode(), accept
    body = [one(p) for p in predictions] if several else one(predictions[0])
    return json.dumps(body).encode(), accept


def create_serving_app(predictor: Predictor, max_batch: int = 8) -> FastAPI:
    """``max_batch`` > 1 lets concurrent requests share forward passes (see ``roost.serving.batching``)."""
    from roost.serving.batching import DynamicBatcher

    model = DynamicBatcher(predictor, max_batch) if max_batch > 1 else predictor
    app = FastAPI(title="Roost model server", docs_url=None, redoc_url=None)

    @app.get("/ping")
    def ping() -> Response:
        return Response(status_code=200)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        body = await request.body()
        try:
            images, several = decode_request(body, request.headers.get("content-type", ""))
            predictions = await run_in_threadpool(model.predict, images)
            attrs = parse_custom_attributes(request.headers.get("x-amzn-sagemaker-custom-attributes"))
            payload, media = render(predictions, request.headers.get("accept", ""), attrs, predictor.class_names,
                                    several)
        except InputError as err:
            status = 413 if "limit is" in str(err) else 415 if "unsupported" in str(err) else 400
            return JSONResponse({"error": str(err)}, status_code=status)
        except Exception:  # noqa: BLE001 - a request must never take the worker down
            log.exception("prediction failed")
            return JSONResponse({"error": "the model failed on this request; see the server log"}, status_code=500)
        return Response(payload, media_type=media)

    return app
