"""Channel and artifact locations: local paths, ``file://`` URIs and ``s3://`` URIs.

S3 goes through boto3 and the standard AWS configuration (credentials, region,
and ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3-compatible stores such
as MinIO), so a real bucket and a local store take the same code path.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from roost.errors import UserError


class StorageError(UserError):
    """A location that cannot be read or written (the user's to fix)."""


@dataclass(frozen=True)
class Location:
    scheme: str  # "file" or "s3"
    bucket: str  # S3 only
    key: str  # S3 key prefix, or a local path

    @classmethod
    def parse(cls, uri: str) -> Location:
        parsed = urlparse(uri)
        if parsed.scheme == "s3":
            if not parsed.netloc:
                raise StorageError(f"{uri!r}: an S3 URI needs a bucket, e.g. s3://bucket/prefix")
            return cls("s3", parsed.netloc, parsed.path.lstrip("/"))
        if parsed.scheme == "file":
            return cls("file", "", unquote(parsed.path))
        if parsed.scheme == "":
            return cls("file", "", os.path.abspath(uri))
        raise StorageError(f"{uri!r}: unsupported location; use a local path, file:// or s3://")

    def join(self, *parts: str) -> str:
        if self.scheme == "s3":
            key = "/".join([self.key.rstrip("/"), *parts]) if self.key else "/".join(parts)
            return f"s3://{self.bucket}/{key}"
        return str(Path(self.key, *parts))


def s3_client():
    import boto3

    return boto3.session.Session().client("s3")


def _s3_objects(loc: Location) -> list[str]:
    client = s3_client()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return keys


def exists(uri: str) -> bool:
    """Whether anything is stored at ``uri`` (a file, a non-empty folder, or objects under an S3 prefix)."""
    loc = Location.parse(uri)
    if loc.scheme == "file":
        p = Path(loc.key)
        return p.is_file() or (p.is_dir() and any(p.iterdir()))
    try:
        return bool(_s3_objects(loc))
    except Exception as err:  # noqa: BLE001 - any S3 failure means "not readable"
        raise StorageError(f"{uri}: cannot list objects ({err})") from None


def download(uri: str, dest: Path) -> list[Path]:
    """Copy what is at ``uri`` into the folder ``dest`` (SageMaker's File mode); returns the files."""
    loc = Location.parse(uri)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    if loc.scheme == "file":
        src = Path(loc.key)
        if src.is_file():
            target = dest / src.name
            _link_or_copy(src, target)
            return [target]
        if not src.is_dir():
            raise StorageError(f"{uri}: no such file or folder")
        for f in sorted(src.rglob("*")):
            if f.is_file():
                target = dest / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(f, target)
                out.append(target)
        if not out:  # as for an S3 prefix without objects
            raise StorageError(f"{uri}: the folder holds no files")
        return out
    client = s3_client()
    keys = _s3_objects(loc)
    if not keys:
        raise StorageError(f"No S3 objects found under S3 URL '{uri}' given in input data source")
    prefix = loc.key if loc.key.endswith("/") or len(keys) > 1 or keys[0] != loc.key else os.path.dirname(loc.key)
    for key in keys:
        rel = key[len(prefix) :].lstrip("/") if prefix else key
        target = dest / (rel or os.path.basename(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(loc.bucket, key, str(target))
        out.append(target)
    return out


def _link_or_copy(src: Path, target: Path) -> None:
    # hard links cost nothing and keep the job's input immutable to later edits of the source's name
    try:
        os.link(src, target)
    except OSError:
        shutil.copy2(src, target)


def upload(path: Path, uri: str) -> str:
    loc = Location.parse(uri)
    if loc.scheme == "file":
        target = Path(loc.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        shutil.copy2(path, tmp)
        os.replace(tmp, target)
        return str(target)
    try:
        s3_client().upload_file(str(path), loc.bucket, loc.key)
    except Exception as err:  # noqa: BLE001
        raise StorageError(f"cannot upload to {uri}: {err}") from None
    return uri
