"""Forms as API requests: fields are named by AWS's own member paths.

A field called ``resourceConfig.instanceCount`` or
``inputDataConfig.1.member.dataSource.s3DataSource.s3Uri`` is the path AWS's
validation messages use, so a request is built from a form by walking
botocore's input shape along each name, and every error the operation raises
(``ServiceError.fields``) lands beside the field of the same name. Nothing here
validates: the operation does, once, for the API and the console alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

from roost.algorithm.hyperparameters import HyperParameters
from roost.aws import camel
from roost.aws.shapes import service_model


def _member(shape: StructureShape, segment: str) -> tuple[str, Shape] | None:
    for name, member in shape.members.items():
        if camel(name) == segment:
            return name, member
    return None


def _leaf(shape: Shape, text: str) -> Any:
    """A form's text as the shape's type; what does not convert stays text, for the operation to refuse in AWS's
    words (``VALUE_STRING can not be converted to an Integer``)."""
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            return text
    if shape.type_name in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            return text
    if shape.type_name == "boolean":
        return text.lower() in ("true", "on", "1", "yes")
    return text


def request_from_form(operation: str, pairs: Iterable[tuple[str, str]], service: str = "sagemaker") -> dict:
    """The ``operation`` request that the named form fields describe; empty fields are left out, as a client
    leaves out members it does not set. A name that is no member path raises ``KeyError``."""
    root = service_model(service).operation_model(operation).input_shape
    request: dict[str, Any] = {}
    lists: list[tuple[dict, str]] = []  # list members are collected by index, then ordered
    seen: set[tuple[int, str]] = set()
    for path, value in pairs:
        value = value.strip()
        if not value or path == "csrf":
            continue
        segments = path.split(".")
        shape: Shape = root
        target: dict[str, Any] = request
        i = 0
        while True:
            if isinstance(shape, StructureShape):
                found = _member(shape, segments[i])
                if found is None:
                    raise KeyError(path)
                key, shape = found
            elif isinstance(shape, MapShape):
                key, shape = segments[i], shape.value
            else:
                raise KeyError(path)
            i += 1
            if i == len(segments):
                target[key] = _leaf(shape, value)
                break
            if isinstance(shape, ListShape):  # "<list>.<index>.member[.<more>]"
                index = int(segments[i])
                items = target.setdefault(key, {})
                if (id(target), key) not in seen:
                    seen.add((id(target), key))
                    lists.append((target, key))
                i += 2  # the index and the literal "member"
                shape = shape.member
                if i >= len(segments):
                    items[index] = _leaf(shape, value)
                    break
                target = items.setdefault(index, {})
            else:
                target = target.setdefault(key, {})
    for owner, key in lists:
        owner[key] = [owner[key][index] for index in sorted(owner[key])]
    return request


def place_errors(fields: dict[str, str], names: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """Each error beside its field: the field of that path, else the first field inside it (``Value null at
    'inputDataConfig.2.member.dataSource'`` goes beside that channel's location); the rest for the page's top."""
    names = list(names)
    placed: dict[str, str] = {}
    rest = []
    for path, message in fields.items():
        where = path if path in names else next((n for n in names if n.startswith(path + ".")), None)
        if where is None:
            rest.append(message)
        else:
            placed[where] = f"{placed[where]}; {message}" if where in placed else message
    return placed, rest


def enum(shape_name: str, service: str = "sagemaker") -> list[str]:
    """The values botocore's model allows for an enum shape (instance types, content types, ...)."""
    return list(service_model(service).shape_for(shape_name).enum)


@dataclass(frozen=True)
class HyperparameterRow:
    """One row of the hyperparameter table, straight from the schema."""

    name: str
    value: str
    required: bool
    help: str

    @property
    def field(self) -> str:
        return f"hyperParameters.{self.name}"


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def hyperparameter_rows(values: dict[str, str] | None = None) -> list[HyperparameterRow]:
    """Every hyperparameter with its default (or the given value, as a clone carries them) and its help."""
    values = values or {}
    rows = []
    for name, f in HyperParameters.model_fields.items():
        default = "" if f.is_required() else _show(f.default)
        rows.append(HyperparameterRow(name, str(values.get(name, default)), f.is_required(), f.description or ""))
    known = set(HyperParameters.model_fields)
    rows += [HyperparameterRow(k, str(v), False, "") for k, v in values.items() if k not in known]
    return rows
