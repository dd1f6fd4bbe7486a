"""AWS's query protocol, for the services that still speak it to older clients (CloudWatch before botocore 1.42.7).

A request is a form (``Action=GetMetricStatistics&Version=2010-08-01&Namespace=...
&Dimensions.member.1.Name=...``); the answer is XML in the service's namespace,
``<ActionResponse><ActionResult>...</ActionResult><ResponseMetadata>``. Both are
read and written from botocore's model of the operation, so the handlers are the
same ones that answer AWS JSON.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qsl

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from roost.aws import ServiceError


def parse_form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise ServiceError("MalformedQueryString", "The request body is not UTF-8 form data.") from None


def request_params(operation: OperationModel, form: dict[str, str]) -> dict[str, Any]:
    """The operation's input as the JSON protocol would carry it, from the flattened form."""
    shape = operation.input_shape
    return _read(shape, form, "") if shape is not None else {}


def _read(shape: Shape, form: dict[str, str], prefix: str) -> Any:
    if isinstance(shape, StructureShape):
        out = {}
        for name, member in shape.members.items():
            key = f"{prefix}.{name}" if prefix else name
            value = _read(member, form, key)
            if value is not None:
                out[name] = value
        return out if out or not prefix else None
    if isinstance(shape, ListShape):
        if form.get(prefix) == "":  # an empty list is sent as "Name="
            return []
        items, i = [], 1
        while any(k == f"{prefix}.member.{i}" or k.startswith(f"{prefix}.member.{i}.") for k in form):
            items.append(_read(shape.member, form, f"{prefix}.member.{i}"))
            i += 1
        return items or None
    if isinstance(shape, MapShape):
        out, i = {}, 1
        while f"{prefix}.entry.{i}.key" in form:
            out[form[f"{prefix}.entry.{i}.key"]] = _read(shape.value, form, f"{prefix}.entry.{i}.value")
            i += 1
        return out or None
    if prefix not in form:
        return None
    text = form[prefix]
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
    except ValueError:
        raise ServiceError("InvalidParameterValue", f"{prefix}: {text!r} is not a number") from None
    if kind == "boolean":
        return text.lower() == "true"
    return text  # strings, and ISO 8601 timestamps (the handlers read both forms)


def xml_response(operation: OperationModel, namespace: str, result: dict[str, Any], request_id: str) -> bytes:
    root = ET.Element(f"{operation.name}Response", xmlns=namespace)
    shape = operation.output_shape
    if shape is not None:
        wrapper = ET.SubElement(root, shape.serialization.get("resultWrapper", f"{operation.name}Result"))
        _write(shape, result, wrapper)
    ET.SubElement(ET.SubElement(root, "ResponseMetadata"), "RequestId").text = request_id
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _write(shape: Shape, value: Any, parent: ET.Element) -> None:
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _write(member, value[name], ET.SubElement(parent, member.serialization.get("name", name)))
    elif isinstance(shape, ListShape):
        for item in value:
            _write(shape.member, item, ET.SubElement(parent, shape.member.serialization.get("name", "member")))
    elif isinstance(shape, MapShape):
        for key, item in value.items():
            entry = ET.SubElement(parent, "entry")
            ET.SubElement(entry, "key").text = str(key)
            _write(shape.value, item, ET.SubElement(entry, "value"))
    elif shape.type_name == "timestamp":
        when = dt.datetime.fromtimestamp(float(value), dt.UTC)
        parent.text = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    elif shape.type_name == "boolean":
        parent.text = "true" if value else "false"
    else:
        parent.text = str(value)


def xml_error(err: ServiceError, request_id: str) -> bytes:
    root = ET.Element("ErrorResponse")
    error = ET.SubElement(root, "Error")
    ET.SubElement(error, "Type").text = "Sender" if err.status < 500 else "Receiver"
    ET.SubElement(error, "Code").text = err.code
    ET.SubElement(error, "Message").text = err.message
    ET.SubElement(root, "RequestId").text = request_id
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
