"""AWS's conventions, written once for every service Roost answers.

* :class:`ServiceError`: an error in AWS's shape (``__type`` code, message,
  HTTP status, and any extra members the service model gives that error).
* Validation messages worded as AWS words them (``1 validation error detected:
  Value 'x' at 'member' failed to satisfy constraint: ...``).
* :class:`Account`: the region and account id that ARNs carry.
* Page tokens for every ``List*``.
* Operation registration: a service class marks its methods with
  ``@operation("CreateTrainingJob")`` and ``roost.aws.dispatch.dispatch_table``
  maps ``X-Amz-Target`` values (``SageMaker.CreateTrainingJob``) onto them, so
  adding an operation is one decorated method and nothing else.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar


class ServiceError(Exception):
    """An error as AWS answers it: ``__type`` code, message, HTTP status, extra members.

    ``fields`` maps the request members at fault (AWS's paths: ``resourceConfig.instanceCount``,
    ``hyperParameters.epochs``) to what is wrong with each; it never goes on the wire, it lets the
    console put each message next to its field.
    """

    def __init__(
        self, code: str, message: str, status: int = 400, *, fields: dict[str, str] | None = None, **members: Any
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.members = code, message, status, members
        self.fields = fields or {}

    def body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message, **self.members}


def camel(member: str) -> str:
    """A member's name as AWS writes it in a member path (``ResourceConfig`` -> ``resourceConfig``)."""
    return member[:1].lower() + member[1:]


def validation(message: str, fields: dict[str, str] | None = None) -> ServiceError:
    return ServiceError("ValidationException", message, fields=fields)


def constraint(value: Any, member: str, rule: str) -> str:
    """One problem, as AWS phrases a failed member constraint."""
    return f"Value '{value}' at '{member}' failed to satisfy constraint: {rule}"


def validation_errors(problems: list[tuple[str, str]]) -> ServiceError:
    """One ValidationException for ``(member path, problem)`` pairs, counted and joined as AWS does."""
    n = len(problems)
    fields: dict[str, str] = {}
    for path, text in problems:
        fields[path] = f"{fields[path]}; {text}" if path in fields else text
    return validation(
        f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(text for _, text in problems), fields
    )


def encode_page_token(offset: int) -> str:
    """``NextToken`` for a listing that continues at ``offset``; opaque to clients, as AWS's are."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError):
        raise validation("Invalid pagination token (NextToken).") from None


@dataclass(frozen=True)
class Account:
    region: str = "us-east-1"
    account_id: str = "000000000000"

    def arn(self, resource_type: str, name: str, service: str = "sagemaker") -> str:
        # SageMaker writes resource names in lower case inside ARNs
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource_type}/{name.lower()}"


# --------------------------------------------------------------------------- operations


def operation(name: str) -> Callable[[Callable], Callable]:
    """Mark a service method as the handler of the AWS operation ``name``."""

    def mark(method: Callable) -> Callable:
        method.__aws_operation__ = name  # type: ignore[attr-defined]
        return method

    return mark


class Service:
    """A group of operations answered under one ``X-Amz-Target`` prefix (``SageMaker``, ``Logs_20140328``).

    ``model_name`` is the service's name in botocore, whose model the requests are checked against.
    """

    target_prefix: ClassVar[str] = "SageMaker"
    model_name: ClassVar[str] = "sagemaker"

    @classmethod
    def operation_methods(cls) -> dict[str, str]:
        """Operation name -> method name, for every method marked with :func:`operation`."""
        found = {}
        for attr in dir(cls):
            name = getattr(getattr(cls, attr), "__aws_operation__", None)
            if name is not None:
                found[name] = attr
        return found

    def operations(self) -> dict[str, Callable[[dict], dict]]:
        """Operation name -> bound handler."""
        return {name: getattr(self, attr) for name, attr in self.operation_methods().items()}
