"""Channel and artifact locations: local paths, ``file://`` URIs and ``s3://`` URIs.

S3 goes through boto3 and the standard AWS configuration (credentials, region,
and ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3-compatible stores such
as MinIO), so a real bucket and a local store take the same code path.

On a shared server, local locations are confined by :class:`DataRoots`: nothing
outside the folders the operator named is read or written, symbolic links
included. The command-line tools work on the user's own files and pass no roots.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from roost.aws import ServiceError
from roost.errors import UserError
from roost.formats import recordio
from roost.paths import Confinement, OutsideRoot
from roost.storage.objects import Expected, ObjectInfo, ObjectStore


class StorageError(UserError):
    """A location that cannot be read or written (the user's to fix)."""


@dataclass(frozen=True)
class Location:
    scheme: str  # "file" or "s3"
    bucket: str  # S3 only
    key: str  # S3 key prefix, or a local path

    @classmethod
    def parse(cls, uri: str) -> Location:
        if uri.startswith("s3://"):
            # S3 keys may hold "?" and "#": everything after the bucket is the key
            bucket, _, key = uri[len("s3://") :].partition("/")
            if not bucket:
                raise StorageError(f"{uri!r}: an S3 URI needs a bucket, e.g. s3://bucket/prefix")
            return cls("s3", bucket, key)
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            if parsed.query or parsed.fragment or parsed.netloc not in ("", "localhost"):
                raise StorageError(f"{uri!r}: a file:// URI names a local file: no host, query or fragment")
            return cls("file", "", unquote(parsed.path))
        if parsed.scheme == "":
            return cls("file", "", os.path.abspath(uri))
        raise StorageError(f"{uri!r}: unsupported location; use a local path, file:// or s3://")

    def join(self, *parts: str) -> str:
        if self.scheme == "s3":
            key = "/".join([self.key.rstrip("/"), *parts]) if self.key else "/".join(parts)
            return f"s3://{self.bucket}/{key}"
        return str(Path(self.key, *parts))


class OutsideDataRoots(StorageError, OutsideRoot):
    """A local location outside the server's data roots."""


class DataRoots(Confinement):
    """The local folders a server may read and write; every local location is checked against them
    (:mod:`roost.paths`' rule, refusing)."""

    error = OutsideDataRoots

    def __init__(self, roots: list[str | os.PathLike]) -> None:
        super().__init__(
            roots,
            refuse=True,
            where="the folders this server reads and writes ({})".format(", ".join(os.path.realpath(r) for r in roots)),
            fix="put the data below one of them, or have the server started with --data-root for its folder",
        )

    def __str__(self) -> str:
        return ", ".join(map(str, self.folders))

    def check_uri(self, uri: str, what: str) -> None:
        loc = Location.parse(uri)
        if loc.scheme == "file":
            self.check(loc.key, what)


def _check(roots: DataRoots | None, path: str | os.PathLike, what: str) -> None:
    if roots is not None:
        roots.check(path, what)


def s3_client():
    import boto3

    return boto3.session.Session().client("s3")


#: the server's own S3 store, when s3:// locations mean it (``roost server``'s default); None: boto3's S3
_embedded: ObjectStore | None = None


def use_embedded_store(store: ObjectStore | None) -> None:
    """Let ``s3://`` locations of this process mean ``store`` (no network hop; objects linked, not copied), or,
    with None, whatever boto3's configuration names (AWS, MinIO, ``AWS_ENDPOINT_URL_S3``)."""
    global _embedded
    _embedded = store


def _embedded_keys(store: ObjectStore, loc: Location) -> list[ObjectInfo]:
    found: list[ObjectInfo] = []
    after = ""
    while True:
        page = store.list_objects(loc.bucket, prefix=loc.key, after=after)
        found += [o for o in page.objects if not o.key.endswith("/")]
        if not page.truncated or page.next_after is None:
            return found
        after = page.next_after


def _embedded_error(uri: str, err: ServiceError) -> StorageError:
    if err.code == "NoSuchBucket":
        return StorageError(
            f"{uri}: the bucket does not exist in this server's own S3 store (the embedded one); create it first "
            f"(aws s3 mb s3://{Location.parse(uri).bucket}), or have the server use another store with "
            "roost server --s3-endpoint URL|aws"
        )
    return StorageError(f"{uri}: {err.message}")


def _unreachable(uri: str, doing: str, err: Exception) -> StorageError:
    """An ``s3://`` location that could not be reached, naming the store tried and the setting that changes it."""
    try:
        endpoint = s3_client().meta.endpoint_url
    except Exception:  # noqa: BLE001 - no region, no configuration: the message still says what to do
        endpoint = None
    if endpoint and "amazonaws.com" not in endpoint:
        store = f"the S3-compatible store at {endpoint}"
        fix = "check that it runs and that AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) of the server names it"
    else:
        store = "AWS S3"
        fix = (
            "give the server AWS credentials, or point it at another S3 store with AWS_ENDPOINT_URL_S3 (or "
            "AWS_ENDPOINT_URL); or use a local path or file:// URI below one of the server's data roots"
        )
    return StorageError(f"{uri}: cannot {doing} {store} ({err}); {fix}")


def _s3_objects(loc: Location, client=None) -> list[str]:
    client = client or s3_client()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return keys


def exists(uri: str, roots: DataRoots | None = None) -> bool:
    """Whether anything is stored at ``uri`` (a file, a non-empty folder, or objects under an S3 prefix)."""
    loc = Location.parse(uri)
    if loc.scheme == "file":
        _check(roots, loc.key, "the location")
        p = Path(loc.key)
        return p.is_file() or (p.is_dir() and any(p.iterdir()))
    if _embedded is not None:
        try:
            page = _embedded.list_objects(loc.bucket, prefix=loc.key, max_keys=2)
        except ServiceError as err:
            raise _embedded_error(uri, err) from None
        return any(not o.key.endswith("/") for o in page.objects)
    try:
        return bool(_s3_objects(loc))
    except Exception as err:  # noqa: BLE001 - any S3 failure means "not readable"
        raise _unreachable(uri, "list objects in", err) from None


def download(
    uri: str, dest: Path, roots: DataRoots | None = None, shard: tuple[int, int] = (0, 1), client=None
) -> list[Path]:
    """Copy what is at ``uri`` into the folder ``dest`` (SageMaker's File mode); returns the files.

    ``shard=(i, n)``: only every ``n``-th object from the ``i``-th on, in key order (ShardedByS3Key for host
    ``i`` of ``n``; a host may get none when there are fewer objects than hosts, as on SageMaker).
    ``client``: the boto3 S3 client that reads ``s3://`` (a host on a cluster node reads the server's store
    through the server's URL); by default the embedded store, else boto3's configuration.
    """
    index, count = shard
    loc = Location.parse(uri)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    if loc.scheme == "file":
        src = Path(loc.key)
        _check(roots, src, "the location")
        if src.is_file():
            if index != 0:
                return []
            for f in [src, *recordio.companions(src)]:  # a .rec's index and class names travel with it
                _check(roots, f, f"{uri}: the file")
                _link_or_copy(f, dest / f.name)
            return [dest / src.name]
        if not src.is_dir():
            raise StorageError(f"{uri}: no such file or folder")
        for f in [f for f in sorted(src.rglob("*")) if f.is_file()][index::count]:
            if f.is_file():
                _check(roots, f, f"{uri}: the file")  # a link inside may point anywhere
                target = dest / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(f, target)
                out.append(target)
        if not out and count == 1:  # as for an S3 prefix without objects
            raise StorageError(f"{uri}: the folder holds no files")
        return out
    if _embedded is not None and client is None:
        return _embedded_download(_embedded, uri, loc, dest, index, count)
    client = client or s3_client()
    keys = _s3_objects(loc, client)
    if not keys:
        raise StorageError(f"No S3 objects found under S3 URL '{uri}' given in input data source")
    prefix = loc.key if loc.key.endswith("/") or len(keys) > 1 or keys[0] != loc.key else os.path.dirname(loc.key)
    if index == 0 and keys == [loc.key]:  # one .rec object: its companions beside it come too, when they exist
        folder = loc.key.rpartition("/")[0]
        for name in recordio.companion_names(os.path.basename(loc.key)):
            sibling = f"{folder}/{name}" if folder else name
            try:
                client.head_object(Bucket=loc.bucket, Key=sibling)
            except Exception:  # noqa: BLE001 - absent (or unreadable): the channel goes without it
                continue
            keys.append(sibling)
    for key in sorted(keys)[index::count]:
        rel = key[len(prefix) :].lstrip("/") if prefix else key
        target = (dest / (rel or os.path.basename(key))).resolve()
        if dest.resolve() not in target.parents:  # keys like "a/../../x" must not leave the folder
            raise StorageError(f"s3://{loc.bucket}/{key}: the key leaves the folder it is downloaded to")
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(loc.bucket, key, str(target))
        out.append(target)
    return out


def _embedded_download(store: ObjectStore, uri: str, loc: Location, dest: Path, index: int, count: int) -> list[Path]:
    """As :func:`download` from S3, from the server's own store: each object's file linked into ``dest`` (its
    blob never changes, so the job's copy costs nothing however large the .rec)."""
    try:
        objects = _embedded_keys(store, loc)
        if objects and index == 0 and [o.key for o in objects] == [loc.key]:  # one .rec: its companions too
            folder = loc.key.rpartition("/")[0]
            for name in recordio.companion_names(os.path.basename(loc.key)):
                try:
                    objects.append(store.head(loc.bucket, f"{folder}/{name}" if folder else name))
                except ServiceError:
                    continue
    except ServiceError as err:
        raise _embedded_error(uri, err) from None
    if not objects:
        raise StorageError(f"No S3 objects found under S3 URL '{uri}' given in input data source")
    keys = [o.key for o in objects]
    prefix = loc.key if loc.key.endswith("/") or len(keys) > 1 or keys[0] != loc.key else os.path.dirname(loc.key)
    out = []
    for info in sorted(objects, key=lambda o: o.key)[index::count]:
        rel = info.key[len(prefix) :].lstrip("/") if prefix else info.key
        target = (dest / (rel or os.path.basename(info.key))).resolve()
        if dest.resolve() not in target.parents:  # keys like "a/../../x" must not leave the folder
            raise StorageError(f"s3://{loc.bucket}/{info.key}: the key leaves the folder it is downloaded to")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        _link_or_copy(info.path, target)
        out.append(target)
    return out


def _link_or_copy(src: Path, target: Path) -> None:
    # hard links cost nothing and keep the job's input immutable to later edits of the source's name
    real = os.path.realpath(src)
    try:
        os.link(real, target)
    except OSError:
        shutil.copy2(real, target)


def upload(path: Path, uri: str, roots: DataRoots | None = None) -> str:
    loc = Location.parse(uri)
    if loc.scheme == "file":
        target = Path(loc.key)
        _check(roots, target, "the output location")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        shutil.copy2(path, tmp)
        os.replace(tmp, target)
        return str(target)
    if _embedded is not None:
        try:
            with open(path, "rb") as f:
                _embedded.put(
                    loc.bucket, loc.key, iter(lambda: f.read(1 << 20), b""), Expected(length=path.stat().st_size)
                )
        except ServiceError as err:
            raise _embedded_error(uri, err) from None
        return uri
    try:
        s3_client().upload_file(str(path), loc.bucket, loc.key)
    except Exception as err:  # noqa: BLE001
        raise _unreachable(uri, "upload to", err) from None
    return uri


#: files a writer is still writing (they appear under their final name when complete) are never synced
_IN_PROGRESS = (".partial", ".tmp")

Snapshot = dict[str, tuple[int, int]]  # relative path -> (size, mtime in ns)


def sync_folder(folder: Path, uri: str, before: Snapshot, roots: DataRoots | None = None) -> Snapshot:
    """Mirror ``folder`` to ``uri`` as SageMaker mirrors a checkpoint folder to ``CheckpointConfig.S3Uri``: new
    and changed files are written, files deleted locally are deleted there; ``before`` is what the previous call
    returned (empty the first time). Returns the folder's state now."""
    now: Snapshot = {}
    if folder.is_dir():
        for f in sorted(folder.rglob("*")):
            if f.is_file() and not f.name.endswith(_IN_PROGRESS):
                st = f.stat()
                now[f.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    loc = Location.parse(uri)
    base = loc.key.rstrip("/")
    for rel, state in now.items():
        if before.get(rel) != state:
            target = f"{base}/{rel}" if base else rel
            upload(folder / rel, target if loc.scheme == "file" else f"s3://{loc.bucket}/{target}", roots)
    for rel in set(before) - set(now):
        if loc.scheme == "file":
            gone = Path(base) / rel
            _check(roots, gone, "the checkpoint location")
            gone.unlink(missing_ok=True)
        elif _embedded is not None:
            try:
                _embedded.delete(loc.bucket, f"{base}/{rel}" if base else rel)
            except ServiceError as err:
                raise _embedded_error(uri, err) from None
        else:
            try:
                s3_client().delete_object(Bucket=loc.bucket, Key=f"{base}/{rel}" if base else rel)
            except Exception as err:  # noqa: BLE001
                raise StorageError(f"cannot delete {rel} under {uri}: {err}") from None
    return now
