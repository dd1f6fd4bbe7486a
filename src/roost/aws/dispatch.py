"""Every service's operations in one table, each request checked against botocore's model before its handler runs
(``roost.aws.shapes``) and, in the tests, each answer against the output shape."""

from __future__ import annotations

import os
from collections.abc import Callable

from roost.aws import Service, ServiceError
from roost.aws.shapes import check_request, response_problems

Handler = Callable[[dict], dict]


def dispatch_table(*services: Service) -> dict[str, Handler]:
    """``X-Amz-Target`` -> handler over all ``services``, each checking its request against botocore's model
    first (``roost.aws.shapes``); one operation answered twice is a bug."""
    table: dict[str, Handler] = {}
    for service in services:
        for name, handler in service.operations().items():
            target = f"{service.target_prefix}.{name}"
            if target in table:
                raise RuntimeError(f"{target} is registered twice")
            table[target] = _validated(service.model_name, name, handler)
    return table


#: set (by the test suite) to check every answer against the operation's output shape as well
CHECK_RESPONSES_ENV = "ROOST_CHECK_RESPONSES"


def _validated(model_name: str, operation_name: str, handler: Handler) -> Handler:
    strict = bool(os.environ.get(CHECK_RESPONSES_ENV))

    def handle(req: dict) -> dict:
        response = handler(check_request(model_name, operation_name, req))
        if strict and (problems := response_problems(model_name, operation_name, response)):
            raise ServiceError(
                "InternalFailure",
                f"{operation_name}'s answer drifts from botocore's model: " + "; ".join(problems[:10]),
                500,
            )
        return response

    return handle
