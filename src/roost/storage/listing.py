"""SageMaker's ``List*`` conventions over a table: name, time and status filters, sorting, ``NextToken`` pages.

Every ``List*`` operation takes the same members (``NameContains``,
``CreationTimeAfter``/``Before``, ``LastModifiedTimeAfter``/``Before``,
``StatusEquals``, ``SortBy``, ``SortOrder``, ``MaxResults``, ``NextToken``);
:func:`list_page` applies those a resource has, so each operation only says
which columns they mean.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, sessionmaker

from roost.aws import decode_page_token, encode_page_token, validation

Row = TypeVar("Row")


def timestamp(value: Any) -> float:
    """Epoch seconds from what a JSON request carries: a number, or an ISO 8601 string (the CLI may send one)."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise validation(f"{value!r} is not a timestamp (epoch seconds or ISO 8601)") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def list_page(
    sessions: sessionmaker[Session],
    table: type[Row],
    req: Mapping[str, Any],
    *,
    name: Any,
    created: Any,
    modified: Any = None,
    status: Any = None,
    default_order: str = "Descending",
) -> tuple[Sequence[Row], str | None]:
    """One page of ``table``'s rows for the ``List*`` request ``req`` and the token of the next page, if any.

    ``name``, ``created``, ``modified`` and ``status`` are the columns (or SQL expressions) the filters compare
    and ``SortBy`` (``Name``, ``CreationTime``, ``Status``) orders by, None where the resource has no such thing.
    """
    limit = req.get("MaxResults") or 10
    sort = {"Name": name, "CreationTime": created, "Status": status}
    column = sort[req.get("SortBy") or "CreationTime"]
    if column is None:  # botocore's enum lets only the resource's own SortBy values through
        raise validation(f"SortBy {req['SortBy']} is not supported by this operation")
    descending = (req.get("SortOrder") or default_order) == "Descending"
    q = select(table)
    bounds: list[tuple[str, Any, bool]] = [("CreationTimeAfter", created, True), ("CreationTimeBefore", created, False)]
    if modified is not None:
        bounds += [("LastModifiedTimeAfter", modified, True), ("LastModifiedTimeBefore", modified, False)]
    for key, col, after in bounds:
        if req.get(key) is not None:
            when = timestamp(req[key])
            q = q.where(col > when if after else col < when)
    if req.get("NameContains"):
        q = q.where(name.contains(req["NameContains"], autoescape=True))
    if status is not None and req.get("StatusEquals"):
        q = q.where(status == req["StatusEquals"])
    order: ColumnElement = column.desc() if descending else column.asc()
    q = q.order_by(order, name)
    offset = decode_page_token(req.get("NextToken"))
    with sessions() as s:
        rows = s.scalars(q.offset(offset).limit(limit + 1)).all()
    return rows[:limit], encode_page_token(offset + limit) if len(rows) > limit else None


def with_token(out: dict[str, Any], token: str | None) -> dict[str, Any]:
    """A ``List*`` answer: ``NextToken`` only when there is a next page (the SDK loops on one at the end)."""
    if token:
        out["NextToken"] = token
    return out
