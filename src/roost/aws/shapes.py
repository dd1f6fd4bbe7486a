"""Requests checked against the service models botocore ships, before any handler sees them.

Every AWS SDK builds its requests from these models, so checking against them
is checking against what AWS itself accepts: member types first (a wrong type is
a ``SerializationException``, as AWS answers it), then required members, enums,
lengths, ranges and patterns, all counted into one ``ValidationException`` in
AWS's words (``2 validation errors detected: Value 'x' at 'trainingJobName'
failed to satisfy constraint: ...``). Handlers can then rely on the shapes they
index into and keep only the rules no model states.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape

from roost.aws import ServiceError, camel, constraint, validation_errors

#: what AWS calls each JSON kind in its SerializationException messages
_JSON_KIND = {
    dict: "START_OBJECT",
    list: "START_ARRAY",
    str: "VALUE_STRING",
    bool: "VALUE_BOOLEAN",
    int: "VALUE_NUMBER_INT",
    float: "VALUE_NUMBER_FLOAT",
}


@functools.cache
def service_model(name: str) -> ServiceModel:
    import botocore.session

    return botocore.session.get_session().get_service_model(name)


def _local_location(pattern: str, value: str) -> bool:
    """Roost's one widening of the models: where they take an S3 URI, a server also takes a local path or a
    ``file://`` URI (confined to its data roots by ``roost.storage.uri.DataRoots``)."""
    return "s3)://" in pattern and (value.startswith("file://") or "://" not in value)


@functools.cache
def _compiled(pattern: str) -> re.Pattern | None:
    try:
        return re.compile(pattern)
    except re.error:  # a few of the models' patterns are Java-only (\p{...}); their rule stays unchecked
        return None


Problems = list[tuple[str, str]]


def check_request(service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """The request as handlers see it: structure members sent as JSON ``null`` left out, as AWS's JSON protocols
    read them (so a required one is then missing, named as AWS names it). Raises the error AWS would answer when
    ``params`` do not fit the operation's input shape, or when a list item or map value is ``null``."""
    model = service_model(service)
    if operation not in model.operation_names:  # an operation of Roost's own: its handler checks everything
        return params
    shape = model.operation_model(operation).input_shape
    if shape is None:
        return params
    problems: list[tuple[str, str]] = []
    params = _without_nulls(shape, params, "", problems)
    _check(shape, params, "", problems)
    if problems:
        raise validation_errors(problems)
    return params


def _null(where: str) -> tuple[str, str]:
    return (where, f"Value null at '{where}' failed to satisfy constraint: Member must not be null")


def _without_nulls(shape: Shape, value: Any, path: str, problems: Problems) -> Any:
    """``value`` with null structure members dropped; null list items and map values are problems (nothing in a
    handler, a stored request or a page has to expect ``None`` where the model has a shape)."""
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        return {
            name: _without_nulls(shape.members[name], item, _member_path(path, name), problems)
            if name in shape.members
            else item
            for name, item in value.items()
            if item is not None
        }
    if isinstance(shape, ListShape) and isinstance(value, list):
        out = []
        for i, item in enumerate(value, 1):
            if item is None:
                problems.append(_null(f"{path}.{i}.member"))
            else:
                out.append(_without_nulls(shape.member, item, f"{path}.{i}.member", problems))
        return out
    if isinstance(shape, MapShape) and isinstance(value, dict):
        out_map = {}
        for key, item in value.items():
            if item is None:
                problems.append(_null(f"{path}.{key}"))
            else:
                out_map[key] = _without_nulls(shape.value, item, f"{path}.{key}", problems)
        return out_map
    return value


def _member_path(path: str, name: str) -> str:
    member = camel(name)
    return f"{path}.{member}" if path else member


def _wrong_type(value: Any, expected: str, path: str) -> ServiceError:
    kind = _JSON_KIND.get(type(value), type(value).__name__)
    message = f"{kind} can not be converted to {expected} (at '{path}')"
    return ServiceError("SerializationException", message, fields={path: message})


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _check(shape: Shape, value: Any, path: str, problems: Problems) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise _wrong_type(value, "a structure", path or "the request")
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(_null(_member_path(path, name)))
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(member, value[name], _member_path(path, name), problems)
        return
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise _wrong_type(value, "a list", path)
        _check_length(len(value), meta, path, problems, value)
        for i, item in enumerate(value, 1):
            if item is not None:
                _check(shape.member, item, f"{path}.{i}.member", problems)
        return
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            raise _wrong_type(value, "a map", path)
        _check_length(len(value), meta, path, problems, value)
        for key, item in value.items():
            _check(shape.key, key, path, problems)
            if item is not None:
                _check(shape.value, item, f"{path}.{key}", problems)
        return
    if kind == "string":
        if not isinstance(value, str):
            raise _wrong_type(value, "a String", path)
        if shape.enum and value not in shape.enum:
            rule = f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"
            problems.append((path, constraint(_show(value), path, rule)))
            return
        _check_length(len(value), meta, path, problems, value)
        pattern = meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None and not _local_location(pattern, value):
            rule = f"Member must satisfy regular expression pattern: {pattern}"
            problems.append((path, constraint(_show(value), path, rule)))
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong_type(value, "an Integer" if kind == "integer" else "a Long", path)
        _check_range(value, meta, path, problems)
    elif kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _wrong_type(value, "a Double", path)
        _check_range(value, meta, path, problems)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _wrong_type(value, "a Boolean", path)
    elif kind == "timestamp":
        if not isinstance(value, (int, float, str)) or isinstance(value, bool):
            raise _wrong_type(value, "a Timestamp", path)
    elif kind == "blob" and not isinstance(value, str):
        raise _wrong_type(value, "a Blob (base64 text)", path)


def _check_length(n: int, meta: dict, path: str, problems: Problems, value: Any) -> None:
    if "min" in meta and n < meta["min"]:
        rule = f"Member must have length greater than or equal to {meta['min']}"
        problems.append((path, constraint(_show(value), path, rule)))
    if "max" in meta and n > meta["max"]:
        rule = f"Member must have length less than or equal to {meta['max']}"
        problems.append((path, constraint(_show(value), path, rule)))


def _check_range(n: float, meta: dict, path: str, problems: Problems) -> None:
    if "min" in meta and n < meta["min"]:
        problems.append((path, constraint(n, path, f"Member must have value greater than or equal to {meta['min']}")))
    if "max" in meta and n > meta["max"]:
        problems.append((path, constraint(n, path, f"Member must have value less than or equal to {meta['max']}")))


# --------------------------------------------------------------------------- responses


def echoed(service: str, create: str, describe: str, request: dict[str, Any]) -> dict[str, Any]:
    """The members of a ``create`` request that its ``describe`` answers as they were sent: those the two
    operations share with the same shape (``Environment``, ``VpcConfig``, ``BatchStrategy``, ...), so every
    ``Describe*`` returns all it was given without a list kept by hand. A stored member that no longer fits its
    shape (a row from an older Roost, or a past bug) is left out rather than answered broken."""
    model = service_model(service)
    given = model.operation_model(create).input_shape.members
    answered = model.operation_model(describe).output_shape.members
    out = {}
    for name, value in request.items():
        if value is None or name not in given or name not in answered or given[name].name != answered[name].name:
            continue
        if _fits(answered[name], value):
            out[name] = value
    return out


def conforming(service: str, operation: str, request: Any) -> dict[str, Any]:
    """What of a stored ``operation`` request still fits its input shape: each top-level member that does, and of a
    list member the items that do. A row an older Roost or a past bug left is read through this, so no reader
    meets ``None`` or a value of the wrong kind where the model promises a shape."""
    if not isinstance(request, dict):
        return {}
    shape = service_model(service).operation_model(operation).input_shape
    out: dict[str, Any] = {}
    for name, value in request.items():
        member = shape.members.get(name)
        if member is None or value is None:
            continue
        if isinstance(member, ListShape) and isinstance(value, list):
            value = [item for item in value if _fits(member.member, item)]
        if _fits(member, value):
            out[name] = value
    return out


def _fits(shape: Shape, value: Any) -> bool:
    problems: list[str] = []
    _conforms(shape, value, shape.name, problems)
    return not problems


def response_problems(service: str, operation: str, response: dict[str, Any]) -> list[str]:
    """Where ``response`` drifts from the operation's output shape: unknown members, wrong types, required members
    missing. Empty when it fits; the tests call this on every answer the server gives."""
    shape = service_model(service).operation_model(operation).output_shape
    problems: list[str] = []
    if shape is None:
        if response:
            problems.append(f"{operation} has no output shape, but answered {sorted(response)}")
        return problems
    _conforms(shape, response, operation, problems)
    return problems


def _conforms(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        for name in value:
            if name not in shape.members:
                problems.append(f"{path}.{name}: not a member of {shape.name}")
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(f"{path}.{name}: required by {shape.name}, missing")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _conforms(member, value[name], f"{path}.{name}", problems)
        return
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _conforms(shape.member, item, f"{path}[{i}]", problems)
        return
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            _conforms(shape.value, item, f"{path}[{key!r}]", problems)
        return
    expected = {
        "string": (str,),
        "integer": (int,),
        "long": (int,),
        "float": (int, float),
        "double": (int, float),
        "boolean": (bool,),
        "timestamp": (int, float),
        "blob": (str,),
    }.get(shape.type_name)
    if expected and (not isinstance(value, expected) or (isinstance(value, bool) and shape.type_name != "boolean")):
        problems.append(f"{path}: expected {shape.type_name}, got {type(value).__name__} {value!r:.60}")
    elif shape.type_name == "string" and shape.enum and value not in shape.enum:
        problems.append(f"{path}: {value!r} is not one of {shape.name}'s values")
