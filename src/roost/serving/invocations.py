"""What ``/invocations`` takes and answers: SageMaker's image-classification inference contract.

Answers as SageMaker's image-classification algorithm does (docs/sagemaker.md,
"Inference"): a JPEG or PNG body (``image/jpeg``, ``image/png``,
``application/x-image``); ``Accept: application/json`` (the default) gets a bare
JSON array of class probabilities, ``application/jsonlines`` gets
``{"prediction": [...]}``. Beyond SageMaker:
``X-Amzn-SageMaker-Custom-Attributes: top_k=3,class_names=true`` adds the top
classes and their names, and an ``application/json`` body
``{"instances": [<base64 image>, ...]}`` predicts several images at once.
The serving container (``roost.serving.app``) and hosted endpoints
(``roost.serving.endpoints``) both answer through :func:`answer`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from roost.errors import PayloadTooLarge, UnsupportedMediaType, UserError


class InputError(UserError):
    """A request the model cannot take (HTTP 4xx): undecodable image, wrong content type, too large."""


class RequestTooLarge(InputError, PayloadTooLarge):
    pass


class UnsupportedContent(InputError, UnsupportedMediaType):
    pass


@dataclass
class Prediction:
    probabilities: list[float]

    def top(self, k: int, names: list[str] | None) -> list[dict]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [
            {
                "class": int(i),
                "label": names[i] if names and i < len(names) else str(int(i)),
                "probability": float(self.probabilities[i]),
            }
            for i in order
        ]


class Model(Protocol):
    """A :class:`~roost.serving.predictor.Predictor`, or a batcher in front of one."""

    @property
    def class_names(self) -> list[str] | None: ...

    def predict(self, images: list[bytes]) -> list[Prediction]: ...


MAX_BODY = 6 * 1024 * 1024  # InvokeEndpoint's payload limit
#: images one application/json request may carry
MAX_INSTANCES = 100
IMAGE_TYPES = ("image/jpeg", "image/png", "application/x-image")


def too_large_message(size: int | None, limit: int) -> str:
    if size is None:  # the body came without a length and grew past the limit
        return f"the request body is larger than the limit of {limit} bytes (6 MB)"
    return f"the request body is {size} bytes; the limit is {limit} bytes (6 MB)"


def parse_custom_attributes(header: str | None) -> dict[str, str]:
    out = {}
    for part in (header or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _json_instances(body: bytes) -> list[bytes]:
    def malformed() -> InputError:
        return InputError('an application/json request must be {"instances": [<base64 image>, ...]}')

    try:
        items = json.loads(body)["instances"]
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested a few thousand deep
        raise malformed() from None
    if not isinstance(items, list):
        raise malformed()
    if not items:
        raise InputError("no instances in the request")
    if len(items) > MAX_INSTANCES:
        raise InputError(
            f"{len(items)} instances in one request; the limit is {MAX_INSTANCES}: send the rest in further requests"
        )
    try:
        return [base64.b64decode(x["b64"] if isinstance(x, dict) else x, validate=True) for x in items]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise malformed() from None


def decode_request(body: bytes, content_type: str) -> tuple[list[bytes], bool]:
    """The images of a request, and whether it was a several-image JSON request."""
    if len(body) > MAX_BODY:
        raise RequestTooLarge(too_large_message(len(body), MAX_BODY))
    base = (content_type or "").split(";")[0].strip().lower()
    if base in IMAGE_TYPES:
        return [body], False
    if base == "application/json":
        return _json_instances(body), True
    raise UnsupportedContent(
        f"unsupported content type {content_type!r}: send image/jpeg, image/png or application/x-image "
        '(or application/json {"instances": [...]} for several images)'
    )


def render(
    predictions: list[Prediction], accept: str, attributes: dict[str, str], names: list[str] | None, several: bool
) -> tuple[bytes, str]:
    """SageMaker's answer shapes, plus the extras asked for in the custom attributes."""
    accept = (accept or "application/json").split(";")[0].strip().lower()
    if accept in ("*/*", ""):
        accept = "application/json"
    if accept not in ("application/json", "application/jsonlines"):
        raise UnsupportedContent(f"unsupported Accept {accept!r}: use application/json or application/jsonlines")
    top_k = int(attributes["top_k"]) if attributes.get("top_k", "").isdigit() else None
    verbose = top_k is not None or attributes.get("class_names", "").lower() == "true"

    def one(p: Prediction):
        if not verbose and accept == "application/json" and not several:
            return p.probabilities
        out: dict[str, Any] = {"prediction": p.probabilities}
        if verbose:
            out["top_k"] = p.top(top_k or 1, names)
            if names:
                out["labels"] = names
        return out

    if accept == "application/jsonlines":
        return "".join(json.dumps(one(p)) + "\n" for p in predictions).encode(), accept
    body = [one(p) for p in predictions] if several else one(predictions[0])
    return json.dumps(body).encode(), accept


def answer(
    model: Model, body: bytes, content_type: str, accept: str, custom_attributes: str | None
) -> tuple[bytes, str]:
    """One ``/invocations`` request to ``(payload, media type)``; :class:`InputError` for what the client must fix."""
    images, several = decode_request(body, content_type)
    predictions = model.predict(images)
    return render(predictions, accept, parse_custom_attributes(custom_attributes), model.class_names, several)
