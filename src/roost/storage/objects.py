"""The embedded S3 store: buckets and objects kept in the data folder, their metadata in the server's database.

Layout below ``<data>/s3``::

    blobs/<ab>/<blob id>     an object's (or a part's) bytes, named by a random id, never by the key
    tmp/<id>                 a write in progress

Nothing of a key reaches the file system, so every legal key (``../x``, ``/x``, ``a//b``, ``x/``, ``%``, any
UTF-8 up to 1,024 bytes) is safe and no two keys collide. Every write streams to ``tmp/``, is hashed on the way
(MD5 for the ETag, and the checksums the client sent), checked, fsynced and renamed into ``blobs/``; only then
does one database transaction point the key at it. So a kill, a full disk or a dropped connection never leaves
a partial object, a failed overwrite leaves the previous version, and of concurrent PUTs to one key the last
complete one wins. :meth:`ObjectStore.sweep` removes what an interrupted write left (temporary files, blobs no
row names) at start-up.

The rules are S3's, with its error codes (``roost.aws.ServiceError``; ``roost.api.s3`` answers them as XML);
the limits are :data:`LIMITS`. docs/s3.md says what is served and why each choice was made.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from roost.aws import ServiceError
from roost.storage.tables import S3Bucket, S3Object, S3Part, S3Upload


@dataclass(frozen=True)
class Limits:
    """S3's limits, kept in one place (docs/s3.md)."""

    key_bytes: int = 1024
    buckets: int = 1000
    object_bytes: int = 5 * 1024**3  # one PUT (S3: 5 GiB)
    part_bytes: int = 5 * 1024**3
    min_part_bytes: int = 5 * 1024**2  # every part but the last
    parts: int = 10_000
    multipart_object_bytes: int = 5 * 1024**4  # S3's documented 5 TiB
    max_keys: int = 1000  # a listing page
    delete_keys: int = 1000  # DeleteObjects


LIMITS = Limits()
CHUNK = 1024 * 1024
#: the checksums Roost computes and checks (botocore without awscrt sends only these)
CHECKSUMS = ("crc32", "sha1", "sha256")


def error(code: str, message: str, status: int = 400, **members: Any) -> ServiceError:
    return ServiceError(code, message, status, **members)


def no_such_bucket(name: str) -> ServiceError:
    return error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=name)


def no_such_key(key: str) -> ServiceError:
    return error("NoSuchKey", "The specified key does not exist.", 404, Key=key)


# --------------------------------------------------------------------------- names


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3")


def check_bucket_name(name: str) -> None:
    """S3's general-purpose bucket naming rules; ``InvalidBucketName`` naming the rule broken."""
    problem = None
    if not _BUCKET.fullmatch(name):
        problem = "3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit"
    elif ".." in name:
        problem = "no two adjacent dots"
    elif name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        problem = "not a reserved prefix or suffix"
    else:
        try:
            ipaddress.IPv4Address(name)
            problem = "not an IP address"
        except ValueError:
            pass
    if problem:
        raise error("InvalidBucketName", f"The specified bucket is not valid: {name!r} must be {problem}.", 400)


def check_key(key: str) -> None:
    if not key:
        raise error("InvalidArgument", "An object key must not be empty.")
    if len(key.encode("utf-8")) > LIMITS.key_bytes:
        raise error("KeyTooLongError", f"Your key is too long: the limit is {LIMITS.key_bytes} bytes of UTF-8.")
    if "\0" in key:
        raise error("InvalidArgument", "An object key must not contain a NUL character.")


# --------------------------------------------------------------------------- what a write must match


@dataclass
class Expected:
    """What the client says the body is: its length, its SHA-256 (the signed payload hash), its MD5
    (``Content-MD5``) and checksums (``x-amz-checksum-*``, from headers or, for aws-chunked bodies, trailers
    that are known only once the body has been read). A body that does not match is refused; nothing is kept."""

    length: int | None = None
    sha256_hex: str | None = None
    md5_b64: str | None = None
    checksums: dict[str, str] = field(default_factory=dict)
    #: trailers read after the body (STREAMING-UNSIGNED-PAYLOAD-TRAILER): algorithm -> base64, filled by the reader
    trailer: dict[str, str] = field(default_factory=dict)
    #: the algorithm the client computes (x-amz-sdk-checksum-algorithm / x-amz-checksum-algorithm)
    algorithm: str | None = None


class _Hashes:
    def __init__(self, want: Iterable[str], sha256: bool) -> None:
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256() if sha256 else None
        self.sha1 = hashlib.sha1() if "sha1" in want else None
        self.crc32 = 0
        self.want_crc32 = "crc32" in want
        self.want_sha256 = "sha256" in want
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.md5.update(chunk)
        if self.sha256 is not None:
            self.sha256.update(chunk)
        if self.sha1 is not None:
            self.sha1.update(chunk)
        if self.want_crc32:
            self.crc32 = zlib.crc32(chunk, self.crc32)

    def checksums(self) -> dict[str, str]:
        out = {}
        if self.want_crc32:
            out["crc32"] = base64.b64encode(self.crc32.to_bytes(4, "big")).decode()
        if self.sha1 is not None:
            out["sha1"] = base64.b64encode(self.sha1.digest()).decode()
        if self.want_sha256 and self.sha256 is not None:
            out["sha256"] = base64.b64encode(self.sha256.digest()).decode()
        return out


def _algorithms(expected: Expected) -> set[str]:
    wanted = {a.lower() for a in expected.checksums}
    if expected.algorithm:
        wanted.add(expected.algorithm.lower())
    unknown = wanted - set(CHECKSUMS)
    if unknown:
        raise error(
            "InvalidRequest",
            f"Roost checks the {', '.join(a.upper() for a in CHECKSUMS)} checksums; {', '.join(sorted(unknown))} "
            "cannot be checked here (send one of those, or none)",
        )
    return wanted


# --------------------------------------------------------------------------- what the store answers


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str  # without quotes
    content_type: str
    meta: dict[str, str]
    headers: dict[str, str]
    checksums: dict[str, str]
    checksum_type: str | None
    last_modified: float
    path: Path

    @classmethod
    def of(cls, row: S3Object, path: Path) -> ObjectInfo:
        return cls(
            row.bucket,
            row.key,
            row.size,
            row.etag,
            row.content_type,
            dict(row.meta or {}),
            dict(row.headers or {}),
            dict(row.checksums or {}),
            row.checksum_type,
            row.last_modified,
            path,
        )


@dataclass(frozen=True)
class Listing:
    objects: list[ObjectInfo]
    prefixes: list[str]
    truncated: bool
    next_after: str | None  # where the next page starts (after this key or common prefix)


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str
    checksums: dict[str, str]
    last_modified: float


class ObjectStore:
    def __init__(self, sessions: sessionmaker[Session], folder: Path, region: str = "us-east-1") -> None:
        self.sessions = sessions
        self.folder = Path(folder)
        self.blobs = self.folder / "blobs"
        self.tmp = self.folder / "tmp"
        self.region = region
        for d in (self.blobs, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ files

    def blob_path(self, blob: str) -> Path:
        return self.blobs / blob[:2] / blob

    def _write(self, body: Iterable[bytes], expected: Expected, limit: int) -> tuple[str, _Hashes]:
        """Stream ``body`` into a new blob, checked against ``expected``; the blob's id and its hashes."""
        want = _algorithms(expected)
        hashes = _Hashes(want | {a.lower() for a in expected.trailer}, sha256=expected.sha256_hex is not None)
        tmp = self.tmp / secrets.token_hex(16)
        try:
            with open(tmp, "xb") as f:
                for chunk in body:
                    hashes.update(chunk)
                    if hashes.size > limit:
                        raise error(
                            "EntityTooLarge",
                            f"Your proposed upload exceeds the maximum allowed size ({limit} bytes).",
                            MaxSizeAllowed=str(limit),
                        )
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            self._check(hashes, expected)
            os.chmod(tmp, 0o444)  # blobs never change; a job's channel links them, and must not write through
            blob = secrets.token_hex(16)
            target = self.blob_path(blob)
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
            return blob, hashes
        finally:
            tmp.unlink(missing_ok=True)

    def _join(self, parts: list[Path]) -> str:
        """One blob of ``parts`` back to back, copied by the kernel (the parts were checked as they came)."""
        tmp = self.tmp / secrets.token_hex(16)
        try:
            with open(tmp, "xb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        remaining = os.fstat(f.fileno()).st_size
                        try:
                            while remaining > 0:
                                copied = os.copy_file_range(f.fileno(), out.fileno(), remaining)
                                if copied == 0:
                                    raise OSError(f"{part} ended early")
                                remaining -= copied
                        except OSError as err:
                            if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                                raise
                            shutil.copyfileobj(f, out, CHUNK)  # a file system without it: through user space
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            blob = secrets.token_hex(16)
            target = self.blob_path(blob)
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
            return blob
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _check(hashes: _Hashes, expected: Expected) -> None:
        if expected.length is not None and hashes.size != expected.length:
            raise error(
                "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length header."
            )
        if expected.sha256_hex is not None and hashes.sha256 is not None:
            if hashes.sha256.hexdigest() != expected.sha256_hex.lower():
                raise error(
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ClientComputedContentSHA256=expected.sha256_hex,
                    S3ComputedContentSHA256=hashes.sha256.hexdigest(),
                )
        if expected.md5_b64 is not None:
            try:
                md5 = base64.b64decode(expected.md5_b64, validate=True)
            except ValueError:
                md5 = b""
            if len(md5) != 16:
                raise error("InvalidDigest", "The Content-MD5 you specified was invalid.")
            if md5 != hashes.md5.digest():
                raise error("BadDigest", "The Content-MD5 you specified did not match what we received.")
        computed = hashes.checksums()
        for algorithm, value in {**expected.checksums, **expected.trailer}.items():
            if computed.get(algorithm.lower()) != value:
                raise error(
                    "BadDigest",
                    f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                )

    def _stored_checksums(self, hashes: _Hashes, expected: Expected) -> dict[str, str]:
        keep = {a.lower() for a in (*expected.checksums, *expected.trailer)}
        if expected.algorithm:
            keep.add(expected.algorithm.lower())
        return {a: v for a, v in hashes.checksums().items() if a in keep}

    def _drop_blob(self, blob: str | None) -> None:
        if blob:
            self.blob_path(blob).unlink(missing_ok=True)

    def sweep(self) -> int:
        """At start-up: remove what interrupted writes left (temporary files, blobs no row names); returns how
        many files went."""
        removed = 0
        for f in self.tmp.iterdir():
            f.unlink(missing_ok=True)
            removed += 1
        with self.sessions() as s:
            known = set(s.scalars(select(S3Object.blob))) | set(s.scalars(select(S3Part.blob)))
        for folder in self.blobs.iterdir():
            for f in folder.iterdir():
                if f.name not in known:
                    f.unlink(missing_ok=True)
                    removed += 1
        return removed

    # ------------------------------------------------------------------ buckets

    def _bucket(self, s: Session, name: str) -> S3Bucket:
        row = s.get(S3Bucket, name) if isinstance(name, str) else None
        if row is None:
            raise no_such_bucket(name)
        return row

    def create_bucket(self, name: str, region: str | None = None) -> bool:
        """A new bucket; False when this account already has it (S3 answers 200 in us-east-1, 409 elsewhere)."""
        check_bucket_name(name)
        try:
            with self.sessions.begin() as s:
                if s.get(S3Bucket, name) is not None:
                    return False
                if (s.query(S3Bucket).count()) >= LIMITS.buckets:
                    raise error(
                        "TooManyBuckets", f"You have attempted to create more buckets than allowed ({LIMITS.buckets})."
                    )
                s.add(S3Bucket(name=name, region=region or self.region, creation_time=time.time()))
        except IntegrityError:
            return False
        return True

    def buckets(self) -> list[S3Bucket]:
        with self.sessions() as s:
            return list(s.scalars(select(S3Bucket).order_by(S3Bucket.name)))

    def bucket(self, name: str) -> S3Bucket:
        with self.sessions() as s:
            return self._bucket(s, name)

    def delete_bucket(self, name: str) -> None:
        with self.sessions.begin() as s:
            row = self._bucket(s, name)
            if s.scalar(select(S3Object.key).where(S3Object.bucket == name).limit(1)) is not None:
                raise error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409, BucketName=name)
            uploads = list(s.scalars(select(S3Upload.upload_id).where(S3Upload.bucket == name)))
            parts = list(s.scalars(select(S3Part.blob).where(S3Part.upload_id.in_(uploads)))) if uploads else []
            s.delete(row)
        for blob in parts:
            self._drop_blob(blob)

    # ------------------------------------------------------------------ objects

    def put(
        self,
        bucket: str,
        key: str,
        body: Iterable[bytes],
        expected: Expected,
        *,
        content_type: str = "binary/octet-stream",
        meta: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> ObjectInfo:
        check_key(key)
        self.bucket(bucket)  # NoSuchBucket before the body is read
        blob, hashes = self._write(body, expected, LIMITS.object_bytes)
        row = S3Object(
            bucket=bucket,
            key=key,
            blob=blob,
            size=hashes.size,
            etag=hashes.md5.hexdigest(),
            content_type=content_type or "binary/octet-stream",
            meta=dict(meta or {}),
            headers=dict(headers or {}),
            checksums=self._stored_checksums(hashes, expected),
            checksum_type="FULL_OBJECT" if expected.checksums or expected.trailer or expected.algorithm else None,
            last_modified=time.time(),
        )
        return self._commit(row, if_none_match, if_match)

    def _commit(self, row: S3Object, if_none_match: str | None = None, if_match: str | None = None) -> ObjectInfo:
        """Point the key at the new blob in one transaction; the blob it replaces goes after the commit. The blob
        is dropped when the key cannot take it (a condition failed, the bucket went)."""
        old = None
        try:
            for attempt in range(3):
                try:
                    with self.sessions.begin() as s:
                        self._bucket(s, row.bucket)
                        current = s.get(S3Object, (row.bucket, row.key))
                        if if_none_match == "*" and current is not None:
                            raise error(
                                "PreconditionFailed",
                                "At least one of the pre-conditions you specified did not hold",
                                412,
                                Condition="If-None-Match",
                            )
                        if if_match is not None:
                            if current is None:
                                raise no_such_key(row.key)
                            if not etag_matches(if_match, current.etag):
                                raise error(
                                    "PreconditionFailed",
                                    "At least one of the pre-conditions you specified did not hold",
                                    412,
                                    Condition="If-Match",
                                )
                        if current is None:
                            s.add(row)
                        else:
                            old = current.blob
                            for column in (
                                "blob",
                                "size",
                                "etag",
                                "content_type",
                                "meta",
                                "headers",
                                "checksums",
                                "checksum_type",
                                "last_modified",
                            ):
                                setattr(current, column, getattr(row, column))
                    break
                except IntegrityError:  # another PUT created the key meanwhile: replace it on the next try
                    if attempt == 2:
                        raise
        except BaseException:
            self._drop_blob(row.blob)
            raise
        self._drop_blob(old)
        return ObjectInfo.of(row, self.blob_path(row.blob))

    def head(self, bucket: str, key: str) -> ObjectInfo:
        with self.sessions() as s:
            self._bucket(s, bucket)
            row = s.get(S3Object, (bucket, key)) if isinstance(key, str) else None
            if row is None:
                raise no_such_key(key)
            return ObjectInfo.of(row, self.blob_path(row.blob))

    def delete(self, bucket: str, key: str) -> None:
        """Deleting a key that is not there succeeds, as on S3."""
        with self.sessions.begin() as s:
            self._bucket(s, bucket)
            row = s.get(S3Object, (bucket, key))
            blob = row.blob if row is not None else None
            if row is not None:
                s.delete(row)
        self._drop_blob(blob)

    def copy(
        self,
        source: ObjectInfo,
        bucket: str,
        key: str,
        *,
        replace: bool,
        content_type: str | None = None,
        meta: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """CopyObject: the source's bytes under a new key; its metadata too unless ``replace`` (REPLACE)."""
        check_key(key)
        self.bucket(bucket)
        if (source.bucket, source.key) == (bucket, key) and not replace:
            raise error(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself without changing "
                "the object's metadata, storage class, website redirect location or encryption attributes.",
            )
        blob = secrets.token_hex(16)
        target = self.blob_path(blob)
        target.parent.mkdir(exist_ok=True)
        tmp = self.tmp / secrets.token_hex(16)
        try:
            try:
                os.link(source.path, tmp)  # blobs never change: a link is a copy
            except OSError:
                shutil.copyfile(source.path, tmp)
            os.replace(tmp, target)
        except FileNotFoundError:
            raise no_such_key(source.key) from None
        finally:
            tmp.unlink(missing_ok=True)
        row = S3Object(
            bucket=bucket,
            key=key,
            blob=blob,
            size=source.size,
            etag=source.etag,
            content_type=(content_type or "binary/octet-stream") if replace else source.content_type,
            meta=dict(meta or {}) if replace else source.meta,
            headers=dict(headers or {}) if replace else source.headers,
            checksums=source.checksums,
            checksum_type=source.checksum_type,
            last_modified=time.time(),
        )
        return self._commit(row)

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str = "", after: str = "", max_keys: int = LIMITS.max_keys
    ) -> Listing:
        """Keys below ``prefix`` after ``after`` (a key or a common prefix), in byte order; with a delimiter, the
        keys that share what lies before it after the prefix roll up into one common prefix each."""
        max_keys = max(0, min(max_keys, LIMITS.max_keys))
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        last: str | None = None
        with self.sessions() as s:
            self._bucket(s, bucket)
            q = select(S3Object).where(S3Object.bucket == bucket)
            if prefix:
                q = q.where(S3Object.key.startswith(prefix, autoescape=True))
            if after:
                q = q.where(S3Object.key > after)
            q = q.order_by(S3Object.key)
            rolled: str | None = None
            for row in s.scalars(q.execution_options(yield_per=500)):
                if rolled is not None and row.key.startswith(rolled):
                    continue
                if delimiter:
                    cut = row.key.find(delimiter, len(prefix))
                    if cut >= 0:
                        common = row.key[: cut + len(delimiter)]
                        if after and common <= after:  # a page that ended on this common prefix
                            rolled = common
                            continue
                        if len(objects) + len(prefixes) >= max_keys:
                            return Listing(objects, prefixes, True, last)
                        prefixes.append(common)
                        rolled = last = common
                        continue
                if len(objects) + len(prefixes) >= max_keys:
                    return Listing(objects, prefixes, True, last)
                objects.append(ObjectInfo.of(row, self.blob_path(row.blob)))
                last = row.key
        return Listing(objects, prefixes, False, None)

    # ------------------------------------------------------------------ multipart uploads

    def create_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str = "binary/octet-stream",
        meta: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksum_algorithm: str | None = None,
    ) -> str:
        check_key(key)
        if checksum_algorithm:
            _algorithms(Expected(algorithm=checksum_algorithm))
        upload_id = secrets.token_urlsafe(32)
        with self.sessions.begin() as s:
            self._bucket(s, bucket)
            s.add(
                S3Upload(
                    upload_id=upload_id,
                    bucket=bucket,
                    key=key,
                    initiated=time.time(),
                    content_type=content_type or "binary/octet-stream",
                    meta=dict(meta or {}),
                    headers=dict(headers or {}),
                    checksum_algorithm=checksum_algorithm.lower() if checksum_algorithm else None,
                )
            )
        return upload_id

    def _upload(self, s: Session, bucket: str, key: str, upload_id: str) -> S3Upload:
        self._bucket(s, bucket)
        row = s.get(S3Upload, upload_id) if isinstance(upload_id, str) else None
        if row is None or row.bucket != bucket or row.key != key:
            raise error(
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
                "aborted or completed.",
                404,
                UploadId=upload_id,
            )
        return row

    def upload(self, bucket: str, key: str, upload_id: str) -> S3Upload:
        with self.sessions() as s:
            return self._upload(s, bucket, key, upload_id)

    def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Iterable[bytes], expected: Expected
    ) -> PartInfo:
        if not 1 <= number <= LIMITS.parts:
            raise error("InvalidArgument", f"Part number must be an integer between 1 and {LIMITS.parts}, inclusive")
        with self.sessions() as s:
            upload = self._upload(s, bucket, key, upload_id)
            algorithm = upload.checksum_algorithm
        if algorithm and not expected.algorithm:
            expected.algorithm = algorithm
        blob, hashes = self._write(body, expected, LIMITS.part_bytes)
        part = S3Part(
            upload_id=upload_id,
            number=number,
            blob=blob,
            size=hashes.size,
            etag=hashes.md5.hexdigest(),
            checksums=self._stored_checksums(hashes, expected),
            last_modified=time.time(),
        )
        return self._commit_part(part)

    def upload_part_copy(
        self, bucket: str, key: str, upload_id: str, number: int, source: ObjectInfo, first: int, last: int
    ) -> PartInfo:
        return self.upload_part(bucket, key, upload_id, number, read_range(source, first, last), Expected())

    def _commit_part(self, part: S3Part) -> PartInfo:
        old = None
        try:
            with self.sessions.begin() as s:
                if s.get(S3Upload, part.upload_id) is None:  # aborted or completed meanwhile
                    raise error("NoSuchUpload", "The specified upload does not exist.", 404, UploadId=part.upload_id)
                current = s.get(S3Part, (part.upload_id, part.number))
                if current is not None:
                    old = current.blob
                    s.delete(current)
                    s.flush()
                s.add(part)
        except BaseException:
            self._drop_blob(part.blob)
            raise
        self._drop_blob(old)
        return PartInfo(part.number, part.size, part.etag, dict(part.checksums), part.last_modified)

    def parts(self, bucket: str, key: str, upload_id: str, after: int = 0, max_parts: int = 1000) -> list[PartInfo]:
        with self.sessions() as s:
            self._upload(s, bucket, key, upload_id)
            rows = s.scalars(
                select(S3Part)
                .where(S3Part.upload_id == upload_id, S3Part.number > after)
                .order_by(S3Part.number)
                .limit(max(0, min(max_parts, 1000)) + 1)
            )
            return [PartInfo(p.number, p.size, p.etag, dict(p.checksums), p.last_modified) for p in rows]

    def uploads(
        self, bucket: str, prefix: str = "", after_key: str = "", after_id: str = "", limit: int = 1000
    ) -> list[S3Upload]:
        with self.sessions() as s:
            self._bucket(s, bucket)
            q = select(S3Upload).where(S3Upload.bucket == bucket)
            if prefix:
                q = q.where(S3Upload.key.startswith(prefix, autoescape=True))
            rows = [
                u
                for u in s.scalars(q.order_by(S3Upload.key, S3Upload.initiated))
                if (u.key, u.upload_id) > (after_key, after_id) or not after_key
            ]
            return rows[: max(0, min(limit, 1000)) + 1]

    def complete(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str, dict[str, str]]]
    ) -> ObjectInfo:
        """CompleteMultipartUpload: the listed parts, in order, become the object; its ETag is the MD5 of the
        parts' binary MD5s and ``-N``; its checksum, when the upload has an algorithm, the composite one."""
        if not parts:
            raise error(
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our published schema",
            )
        numbers = [n for n, _, _ in parts]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise error(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            )
        with self.sessions() as s:
            upload = self._upload(s, bucket, key, upload_id)
            stored = {p.number: p for p in s.scalars(select(S3Part).where(S3Part.upload_id == upload_id))}
            algorithm = upload.checksum_algorithm
            content_type, meta, headers = upload.content_type, dict(upload.meta), dict(upload.headers)
        chosen = []
        for i, (number, etag, given) in enumerate(parts):
            part = stored.get(number)
            if part is None or part.etag != etag.strip('"'):
                raise error(
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part may not have been uploaded, or "
                    "the specified entity tag may not match the part's entity tag.",
                    PartNumber=str(number),
                )
            if i < len(parts) - 1 and part.size < LIMITS.min_part_bytes:
                raise error(
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed object size.",
                    ProposedSize=str(part.size),
                    MinSizeAllowed=str(LIMITS.min_part_bytes),
                    PartNumber=str(number),
                )
            for alg, value in given.items():
                if part.checksums.get(alg.lower()) not in (None, value):
                    raise error("InvalidPart", f"The {alg.upper()} of part {number} does not match what was uploaded.")
            chosen.append(part)
        total = sum(p.size for p in chosen)
        if total > LIMITS.multipart_object_bytes:
            raise error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")

        blob = self._join([self.blob_path(p.blob) for p in chosen])
        digests = b"".join(bytes.fromhex(p.etag) for p in chosen)
        checksums: dict[str, str] = {}
        if algorithm and all(algorithm in p.checksums for p in chosen):
            combined = b"".join(base64.b64decode(p.checksums[algorithm]) for p in chosen)
            digest = {
                "crc32": lambda b: zlib.crc32(b).to_bytes(4, "big"),
                "sha1": lambda b: hashlib.sha1(b).digest(),
                "sha256": lambda b: hashlib.sha256(b).digest(),
            }[algorithm](combined)
            checksums[algorithm] = f"{base64.b64encode(digest).decode()}-{len(chosen)}"
        row = S3Object(
            bucket=bucket,
            key=key,
            blob=blob,
            size=total,
            etag=f"{hashlib.md5(digests).hexdigest()}-{len(chosen)}",
            content_type=content_type,
            meta=meta,
            headers=headers,
            checksums=checksums,
            checksum_type="COMPOSITE" if checksums else None,
            last_modified=time.time(),
        )
        info = self._commit(row)
        with self.sessions.begin() as s:
            blobs = list(s.scalars(select(S3Part.blob).where(S3Part.upload_id == upload_id)))
            s.execute(delete(S3Part).where(S3Part.upload_id == upload_id))
            s.execute(delete(S3Upload).where(S3Upload.upload_id == upload_id))
        for b in blobs:
            self._drop_blob(b)
        return info

    def abort(self, bucket: str, key: str, upload_id: str) -> None:
        with self.sessions.begin() as s:
            self._upload(s, bucket, key, upload_id)
            blobs = list(s.scalars(select(S3Part.blob).where(S3Part.upload_id == upload_id)))
            s.execute(delete(S3Part).where(S3Part.upload_id == upload_id))
            s.execute(delete(S3Upload).where(S3Upload.upload_id == upload_id))
        for b in blobs:
            self._drop_blob(b)


def read_range(info: ObjectInfo, first: int = 0, last: int | None = None) -> Iterator[bytes]:
    """An object's bytes ``first`` to ``last`` (inclusive; the end when None), a mebibyte at a time."""
    last = info.size - 1 if last is None else last
    with open(info.path, "rb") as f:
        f.seek(first)
        remaining = last - first + 1
        while remaining > 0:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def etag_matches(condition: str, etag: str) -> bool:
    """An ``If-Match``/``If-None-Match`` list against an ETag: quotes and weak markers ignored, ``*`` matches."""
    for candidate in condition.split(","):
        c = candidate.strip().removeprefix("W/").strip('"')
        if c == "*" or c == etag:
            return True
    return False


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
