"""Tags on every resource: ``AddTags``, ``ListTags``, ``DeleteTags``, and the ``Tags`` of each ``Create*``.

Tags belong to a resource's ARN and live in the database with it (kept across
restarts, dropped when the resource is deleted). SageMaker allows 50 per resource.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from roost.aws import Service, decode_page_token, encode_page_token, operation, validation
from roost.storage.tables import TAGGABLE, Tag

MAX_TAGS = 50


def _resource_exists(s: Session, arn: str) -> bool:
    return any(s.scalar(select(func.count()).select_from(table).where(table.arn == arn)) for table in TAGGABLE)


def set_tags(s: Session, arn: str, tags: list[dict] | None) -> None:
    """Add or overwrite ``tags`` (``[{"Key": ..., "Value": ...}]``) of the resource ``arn`` in session ``s``."""
    if not tags:
        return
    current = {t.key: t for t in s.scalars(select(Tag).where(Tag.resource_arn == arn)).all()}
    new_keys = {t["Key"] for t in tags} - set(current)
    if len(current) + len(new_keys) > MAX_TAGS:
        raise validation(f"Resource {arn} would have {len(current) + len(new_keys)} tags; the limit is {MAX_TAGS}.")
    for t in tags:
        if t["Key"] in current:
            current[t["Key"]].value = t.get("Value", "")
        else:
            s.add(Tag(resource_arn=arn, key=t["Key"], value=t.get("Value", "")))


def drop_tags(s: Session, arn: str) -> None:
    """With the resource they belong to."""
    s.execute(delete(Tag).where(Tag.resource_arn == arn))


class TagService(Service):
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def _existing(self, s: Session, arn: str) -> str:
        if not _resource_exists(s, arn):
            raise validation(f"Resource {arn} does not exist.")
        return arn

    @operation("AddTags")
    def add_tags(self, req: dict) -> dict:
        with self.sessions.begin() as s:
            set_tags(s, self._existing(s, req["ResourceArn"]), req["Tags"])
        return {"Tags": req["Tags"]}

    @operation("ListTags")
    def list_tags(self, req: dict) -> dict:
        limit = req.get("MaxResults") or MAX_TAGS
        offset = decode_page_token(req.get("NextToken"))
        with self.sessions() as s:
            arn = self._existing(s, req["ResourceArn"])
            rows = s.scalars(
                select(Tag).where(Tag.resource_arn == arn).order_by(Tag.id).offset(offset).limit(limit + 1)
            ).all()
        out: dict = {"Tags": [{"Key": t.key, "Value": t.value} for t in rows[:limit]]}
        if len(rows) > limit:
            out["NextToken"] = encode_page_token(offset + limit)
        return out

    @operation("DeleteTags")
    def delete_tags(self, req: dict) -> dict:
        with self.sessions.begin() as s:
            arn = self._existing(s, req["ResourceArn"])
            s.execute(delete(Tag).where(Tag.resource_arn == arn, Tag.key.in_(req["TagKeys"])))
        return {}
