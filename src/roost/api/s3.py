"""S3's REST API on the server's port, over the embedded store (``roost.storage.objects``).

A request is S3's when its signature says so - ``Credential=<key>/<date>/<region>/s3/aws4_request`` in the
``Authorization`` header or in a presigned URL's ``X-Amz-Credential``, or a SigV2 presigned URL's
``AWSAccessKeyId`` and ``Signature`` - the way LocalStack routes one port to many services. Everything else goes
on to the SageMaker API and the console, so a bucket named ``console`` and the console never shadow each other.
Path-style addressing (``/<bucket>/<key>``, what botocore sends to a custom endpoint) and virtual-hosted style
(``<bucket>.localhost:<port>``) are both read.

Every request is signed with the server's key pair (SigV4, checked with botocore's own S3 signer over the path
as received, or SigV2 for the presigned URLs botocore makes by default) or is an unexpired presigned URL; the
payload is checked as it streams in (the signed SHA-256, ``UNSIGNED-PAYLOAD``, and aws-chunked bodies with their
trailing checksums). Answers are serialized from botocore's ``s3`` model: members in headers where the model
puts them, the rest as XML; errors are S3's ``<Error>`` documents.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from botocore.auth import UNSIGNED_PAYLOAD, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from botocore.model import ListShape, OperationModel, Shape, StructureShape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from roost.aws import ServiceError
from roost.aws.shapes import service_model
from roost.serving.http import blocking_chunks
from roost.storage.objects import (
    CHECKSUMS,
    CHUNK,
    LIMITS,
    Expected,
    ObjectInfo,
    ObjectStore,
    etag_matches,
    read_range,
)

log = logging.getLogger(__name__)

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_SKEW = dt.timedelta(minutes=15)
MAX_PRESIGN_SECONDS = 604800
#: XML request bodies (DeleteObjects, CompleteMultipartUpload: 1,000 keys or 10,000 parts) are read whole
MAX_XML_BYTES = 2 * 1024 * 1024
STREAMING_UNSIGNED = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

#: the operations served (docs/compatibility.md lists them beside those that are not)
OPERATIONS = (
    "ListBuckets",
    "CreateBucket",
    "HeadBucket",
    "DeleteBucket",
    "GetBucketLocation",
    "ListObjectsV2",
    "ListObjects",
    "PutObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "DeleteObjects",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
    "ListMultipartUploads",
)

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")


# --------------------------------------------------------------------------- routing


def signing_service(scope: Scope) -> str | None:
    """The service a request is signed for (``s3``, ``sagemaker``, ...), from its Authorization header or a
    presigned URL; ``s3`` for SigV2 (only S3 uses it); None when it says nothing."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.startswith("AWS "):
                return "s3"
            m = _CREDENTIAL.search(text)
            return m.group(4) if m else None
    query = scope.get("query_string", b"").decode("latin-1")
    if "X-Amz-Credential=" in query:
        m = _CREDENTIAL.search("Credential=" + unquote(query.split("X-Amz-Credential=", 1)[1].split("&", 1)[0]))
        return m.group(4) if m else None
    if "AWSAccessKeyId=" in query and "Signature=" in query:
        return "s3"
    return None


class S3Router:
    """Sends S3's requests to the S3 app, everything else on (the outermost part of the server's app)."""

    def __init__(self, app: ASGIApp, s3: ASGIApp) -> None:
        self.app, self.s3 = app, s3

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and signing_service(scope) == "s3":
            await self.s3(scope, receive, send)
        else:
            await self.app(scope, receive, send)


# --------------------------------------------------------------------------- errors and answers


def s3_error(code: str, message: str, status: int = 400, **members: Any) -> ServiceError:
    return ServiceError(code, message, status, **members)


def _error_response(err: ServiceError, resource: str, request_id: str, head: bool) -> Response:
    headers = {"x-amz-request-id": request_id, "x-amz-id-2": request_id}
    if head:  # HEAD answers carry no body: botocore reads the status alone
        return Response(status_code=err.status, headers=headers)
    root = ET.Element("Error")
    ET.SubElement(root, "Code").text = err.code
    ET.SubElement(root, "Message").text = err.message
    for name, value in err.members.items():
        ET.SubElement(root, name).text = str(value)
    ET.SubElement(root, "Resource").text = resource
    ET.SubElement(root, "RequestId").text = request_id
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, status_code=err.status, media_type="application/xml", headers=headers)


def _iso(ts: float) -> str:
    when = dt.datetime.fromtimestamp(ts, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _xml(shape: Shape, value: Any, parent: ET.Element) -> None:
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            item = value.get(name)
            if item is None or member.serialization.get("location"):
                continue
            tag = member.serialization.get("name", name)
            if isinstance(member, ListShape) and member.serialization.get("flattened"):
                for element in item:
                    _xml(member.member, element, ET.SubElement(parent, tag))
            else:
                _xml(member, item, ET.SubElement(parent, tag))
    elif isinstance(shape, ListShape):
        for item in value:
            _xml(shape.member, item, ET.SubElement(parent, shape.member.serialization.get("name", "member")))
    elif shape.type_name == "timestamp":
        parent.text = _iso(float(value))
    elif shape.type_name == "boolean":
        parent.text = "true" if value else "false"
    else:
        parent.text = str(value)


def answer(operation: str, result: dict[str, Any], root: str, status: int = 200) -> Response:
    """``result`` (members named as in botocore's output shape) as S3 answers it: header members as headers, the
    rest as an XML document whose root is ``root`` (or the payload member's)."""
    op: OperationModel = service_model("s3").operation_model(operation)
    shape = op.output_shape
    headers: dict[str, str] = {}
    body = b""
    if shape is not None:
        for name, member in shape.members.items():
            value = result.get(name)
            if value is None or member.serialization.get("location") != "header":
                continue
            headers[member.serialization["name"]] = (
                _http_date(float(value)) if member.type_name == "timestamp" else str(value)
            )
        payload = shape.serialization.get("payload")
        document: tuple[Shape, Any, str] | None = None
        if payload:
            member = shape.members[payload]
            if result.get(payload) is not None and isinstance(member, StructureShape):
                document = (member, result[payload], member.serialization.get("name", payload))
        elif any(not m.serialization.get("location") for m in shape.members.values()):
            document = (shape, result, root)
        if document is not None:
            element = ET.Element(document[2], xmlns=NAMESPACE)
            _xml(document[0], document[1], element)
            body = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return Response(body, status_code=status, media_type="application/xml" if body else None, headers=headers)


def _checksum_members(checksums: dict[str, str]) -> dict[str, str]:
    return {f"Checksum{alg.upper()}": value for alg, value in checksums.items()}


# --------------------------------------------------------------------------- the request


class S3Request:
    """One request: its bucket and key (decoded once, as received), its query, and how its body is checked."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.method = request.method
        self.headers = request.headers
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        self.raw_path = raw_path.decode("latin-1")
        self.raw_query = request.scope.get("query_string", b"").decode("latin-1")
        self.query = dict(parse_qsl(self.raw_query, keep_blank_values=True))
        try:
            path = unquote(self.raw_path, errors="strict")
        except UnicodeDecodeError:
            raise s3_error("InvalidURI", "Couldn't parse the specified URI.") from None
        host = self.headers.get("host", "").rsplit(":", 1)[0].lower()
        virtual = _virtual_bucket(host)
        if virtual is not None:
            self.bucket, self.key = virtual, path[1:]
        else:
            self.bucket, _, self.key = path[1:].partition("/")
        self.resource = path
        self.payload = UNSIGNED_PAYLOAD
        self.access_key = ""
        self.signing_key: bytes | None = None  # for aws-chunked signed bodies
        self.seed_signature = ""
        self.scope_text = ""
        self.amz_date = ""


def _virtual_bucket(host: str) -> str | None:
    """``<bucket>.localhost`` or ``<bucket>.s3.<anything>``: the bucket named in the host."""
    if host.endswith(".localhost"):
        return host[: -len(".localhost")] or None
    if ".s3." in host:
        return host.split(".s3.", 1)[0] or None
    return None


# --------------------------------------------------------------------------- signatures


def _forbidden(code: str, message: str) -> ServiceError:
    return s3_error(code, message, 403)


def _signature_mismatch() -> ServiceError:
    return _forbidden(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. Check your key and "
        "signing method.",
    )


def authenticate(req: S3Request, keys: dict[str, str], now: dt.datetime | None = None) -> None:
    """Check the request's signature (header or presigned, SigV4 or SigV2); sets what the body check needs."""
    now = now or dt.datetime.now(dt.UTC)
    auth = req.headers.get("authorization", "")
    if auth.startswith("AWS4-HMAC-SHA256"):
        _header_v4(req, auth, keys, now)
    elif "X-Amz-Signature" in req.query:
        _presigned_v4(req, keys, now)
    elif "Signature" in req.query and "AWSAccessKeyId" in req.query:
        _presigned_v2(req, keys, now)
    else:
        raise _forbidden("AccessDenied", "Access Denied: anonymous requests are refused; sign the request.")


def _url(req: S3Request, query: str) -> str:
    host = req.headers.get("host", "localhost")
    return f"http://{host}{req.raw_path}" + (f"?{query}" if query else "")


def _secret(keys: dict[str, str], key: str) -> str:
    secret = keys.get(key)
    if secret is None:
        raise _forbidden("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    return secret


def _when(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise _forbidden("AccessDenied", "X-Amz-Date is missing or malformed.") from None


def _header_v4(req: S3Request, auth: str, keys: dict[str, str], now: dt.datetime) -> None:
    m = re.match(
        r"AWS4-HMAC-SHA256\s+Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request,\s*SignedHeaders=([^,]+),\s*"
        r"Signature=([0-9a-f]{64})",
        auth.strip(),
    )
    if not m:
        raise s3_error("AuthorizationHeaderMalformed", "The authorization header is malformed.")
    key, date, region, signed, signature = m.groups()
    secret = _secret(keys, key)
    amz_date = req.headers.get("x-amz-date", "")
    if abs(now - _when(amz_date)) > MAX_SKEW:
        raise _forbidden(
            "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
        )
    payload = req.headers.get("x-amz-content-sha256")
    if payload is None:
        raise s3_error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    lower = {k.lower(): v for k, v in req.headers.items()}
    aws = AWSRequest(
        method=req.method, url=_url(req, req.raw_query), headers={h: lower.get(h, "") for h in signed.split(";")}
    )
    if "x-amz-content-sha256" not in signed.split(";"):
        raise s3_error("InvalidRequest", "x-amz-content-sha256 must be among the signed headers.")
    aws.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(key, secret), "s3", region)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if not hmac.compare_digest(expected, signature):
        raise _signature_mismatch()
    req.access_key, req.payload = key, payload
    req.seed_signature, req.amz_date = signature, amz_date
    req.scope_text = f"{date}/{region}/s3/aws4_request"
    req.signing_key = _signing_key(secret, date, region)


def _signing_key(secret: str, date: str, region: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def _presigned_v4(req: S3Request, keys: dict[str, str], now: dt.datetime) -> None:
    q = req.query
    m = _CREDENTIAL.match("Credential=" + q.get("X-Amz-Credential", ""))
    if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or not m or m.group(4) != "s3":
        raise s3_error("AuthorizationQueryParametersError", "X-Amz-Algorithm and X-Amz-Credential are malformed.")
    key, region = m.group(1), m.group(3)
    secret = _secret(keys, key)
    try:
        expires = int(q.get("X-Amz-Expires", ""))
    except ValueError:
        expires = -1
    if not 0 < expires <= MAX_PRESIGN_SECONDS:
        raise s3_error(
            "AuthorizationQueryParametersError",
            f"X-Amz-Expires must be a number of seconds from 1 to {MAX_PRESIGN_SECONDS}.",
        )
    signed_at = _when(q.get("X-Amz-Date", ""))
    if now > signed_at + dt.timedelta(seconds=expires):
        raise _forbidden("AccessDenied", "Request has expired")
    if signed_at > now + MAX_SKEW:
        raise _forbidden("AccessDenied", "Request is not valid yet")
    # the canonical query is every parameter but the signature, as the client sent them
    query = "&".join(p for p in req.raw_query.split("&") if not p.startswith("X-Amz-Signature="))
    lower = {k.lower(): v for k, v in req.headers.items()}
    signed = q.get("X-Amz-SignedHeaders", "host").split(";")
    aws = AWSRequest(method=req.method, url=_url(req, query), headers={h: lower.get(h, "") for h in signed})
    aws.context["timestamp"] = q["X-Amz-Date"]
    signer = S3SigV4QueryAuth(Credentials(key, secret), "s3", region, expires=expires)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    if not hmac.compare_digest(expected, q.get("X-Amz-Signature", "")):
        raise _signature_mismatch()
    req.access_key, req.payload = key, UNSIGNED_PAYLOAD


class _SigV2(HmacV1QueryAuth):
    """botocore's SigV2 query signer, with the URL's own Expires where botocore would compute one from the clock."""

    def __init__(self, credentials: Credentials, expires: str) -> None:
        super().__init__(credentials)
        self._expires_at = expires

    def _get_date(self) -> str:
        return self._expires_at


def _presigned_v2(req: S3Request, keys: dict[str, str], now: dt.datetime) -> None:
    q = req.query
    key = q.get("AWSAccessKeyId", "")
    secret = _secret(keys, key)
    try:
        expires = int(q.get("Expires", ""))
    except ValueError:
        raise s3_error("AuthorizationQueryParametersError", "Expires must be seconds since the epoch.") from None
    if now.timestamp() > expires:
        raise _forbidden("AccessDenied", "Request has expired")
    if expires - now.timestamp() > MAX_PRESIGN_SECONDS:
        raise s3_error("AuthorizationQueryParametersError", "Expires is more than 7 days in the future.")
    signer = _SigV2(Credentials(key, secret), str(expires))
    signed_query = [
        p for p in req.raw_query.split("&") if not p.startswith(("Signature=", "AWSAccessKeyId=", "Expires="))
    ]
    headers = HTTPHeaders()
    for name, value in req.headers.items():
        if name.lower() in ("content-md5", "content-type") or name.lower().startswith("x-amz-"):
            headers[name.lower()] = value
    expected = signer.get_signature(req.method, urlsplit(_url(req, "&".join(signed_query))), headers)
    if not hmac.compare_digest(expected, q.get("Signature", "")):
        raise _signature_mismatch()
    req.access_key, req.payload = key, UNSIGNED_PAYLOAD


# --------------------------------------------------------------------------- bodies


class Body:
    """The request body as the store reads it - a plain iterator of chunks, in the store's worker thread - taken
    from the event loop as it arrives, aws-chunked bodies decoded (and their chunk signatures checked) on the way,
    their trailing checksums handed to ``expected``. Never held whole in memory."""

    def __init__(self, req: S3Request, expected: Expected) -> None:
        self.req = req
        self.expected = expected
        self._pieces = blocking_chunks(req.request.stream(), CHUNK)
        self.chunked = req.payload in (STREAMING_UNSIGNED, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
        self._buffer = b""
        self._done = False
        self._previous = req.seed_signature

    def _pull(self) -> bytes:
        return next(self._pieces, b"")

    def __iter__(self) -> Iterator[bytes]:
        if not self.chunked:
            while chunk := self._pull():
                yield chunk
            return
        yield from self._chunks()

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            more = self._pull()
            if not more:
                raise s3_error("IncompleteBody", "The aws-chunked body ended in the middle of a chunk header.")
            self._buffer += more
            if len(self._buffer) > 64 * 1024 and b"\r\n" not in self._buffer:
                raise s3_error("InvalidRequest", "An aws-chunked chunk header is too long.")
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _exactly(self, n: int) -> Iterator[bytes]:
        while n > 0:
            if not self._buffer:
                self._buffer = self._pull()
                if not self._buffer:
                    raise s3_error("IncompleteBody", "The aws-chunked body ended in the middle of a chunk.")
            piece, self._buffer = self._buffer[:n], self._buffer[n:]
            n -= len(piece)
            yield piece

    def _chunks(self) -> Iterator[bytes]:
        signed = self.req.payload != STREAMING_UNSIGNED
        while True:
            header = self._line().decode("latin-1")
            size_text, _, extension = header.partition(";")
            try:
                size = int(size_text, 16)
            except ValueError:
                raise s3_error("InvalidRequest", f"Malformed aws-chunked chunk header {header[:40]!r}.") from None
            if size > 16 * CHUNK:
                raise s3_error("InvalidRequest", "An aws-chunked chunk is larger than 16 MiB.")
            digest = hashlib.sha256()
            for piece in self._exactly(size):
                digest.update(piece)
                if size:
                    yield piece
            if signed:
                self._check_chunk(extension, digest.hexdigest())
            if size == 0:
                self._trailers(signed)
                return
            if self._line() != b"":
                raise s3_error("InvalidRequest", "An aws-chunked chunk is not followed by CRLF.")

    def _check_chunk(self, extension: str, data_hash: str) -> None:
        claimed = extension.removeprefix("chunk-signature=")
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.req.amz_date,
                self.req.scope_text,
                self._previous,
                hashlib.sha256(b"").hexdigest(),
                data_hash,
            ]
        )
        assert self.req.signing_key is not None
        expected = hmac.new(self.req.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, claimed):
            raise _signature_mismatch()
        self._previous = expected

    def _trailers(self, signed: bool) -> None:
        lines = []
        while (raw := self._line()) != b"":
            lines.append(raw.decode("latin-1"))
        trailer_lines: list[str] = []
        for text in lines:
            name, _, value = text.partition(":")
            name = name.strip().lower()
            if name == "x-amz-trailer-signature":
                if signed:
                    self._check_trailer(trailer_lines, value.strip())
                continue
            trailer_lines.append(f"{name}:{value.strip()}")
            if name.startswith("x-amz-checksum-"):
                self.expected.trailer[name.removeprefix("x-amz-checksum-")] = value.strip()

    def _check_trailer(self, lines: list[str], claimed: str) -> None:
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                self.req.amz_date,
                self.req.scope_text,
                self._previous,
                hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest(),
            ]
        )
        assert self.req.signing_key is not None
        expected = hmac.new(self.req.signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, claimed):
            raise _signature_mismatch()


def expected_of(req: S3Request) -> Expected:
    h = req.headers
    chunked = req.payload in (STREAMING_UNSIGNED, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
    length_text = h.get("x-amz-decoded-content-length") if chunked else h.get("content-length")
    if chunked and length_text is None:
        raise s3_error("MissingContentLength", "You must provide the x-amz-decoded-content-length header.", 411)
    checksums = {
        alg: h[f"x-amz-checksum-{alg}"] for alg in (*CHECKSUMS, "crc32c", "crc64nvme") if f"x-amz-checksum-{alg}" in h
    }
    sha = req.payload if re.fullmatch(r"[0-9a-fA-F]{64}", req.payload) else None
    # a checksum that comes in a trailer is declared up front: its algorithm runs over the body as it streams
    declared = h.get("x-amz-trailer", "").strip().lower().removeprefix("x-amz-checksum-") or None
    return Expected(
        length=int(length_text) if length_text and length_text.isdigit() else None,
        sha256_hex=sha,
        md5_b64=h.get("content-md5"),
        checksums=checksums,
        algorithm=h.get("x-amz-sdk-checksum-algorithm") or h.get("x-amz-checksum-algorithm") or declared,
    )


# --------------------------------------------------------------------------- the operations


def _object_headers(req: S3Request) -> tuple[str, dict[str, str], dict[str, str]]:
    h = req.headers
    meta = {k[len("x-amz-meta-") :]: v for k, v in h.items() if k.lower().startswith("x-amz-meta-")}
    kept = {
        name: h[name] for name in ("cache-control", "content-disposition", "content-language", "expires") if name in h
    }
    encoding = ",".join(e for e in h.get("content-encoding", "").split(",") if e.strip() and e.strip() != "aws-chunked")
    if encoding:
        kept["content-encoding"] = encoding
    return h.get("content-type") or "binary/octet-stream", meta, kept


def _info_headers(info: ObjectInfo, checksum_mode: bool) -> dict[str, str]:
    headers = {
        "ETag": f'"{info.etag}"',
        "Last-Modified": _http_date(info.last_modified),
        "Accept-Ranges": "bytes",
        "Content-Type": info.content_type,
        **{k: v for k, v in info.headers.items()},
        **{f"x-amz-meta-{k}": v for k, v in info.meta.items()},
    }
    if checksum_mode:
        for alg, value in info.checksums.items():
            headers[f"x-amz-checksum-{alg}"] = value
        if info.checksum_type:
            headers["x-amz-checksum-type"] = info.checksum_type
    return headers


def _conditions(req: S3Request, info: ObjectInfo) -> int | None:
    """RFC 9110's order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since; the status to answer
    instead of the object (412 or 304), or None."""
    h = req.headers
    if "if-match" in h:
        if not etag_matches(h["if-match"], info.etag):
            return 412
    elif "if-unmodified-since" in h and _since(h["if-unmodified-since"]) is not None:
        if int(info.last_modified) > _since(h["if-unmodified-since"]):  # type: ignore[operator]
            return 412
    if "if-none-match" in h:
        if etag_matches(h["if-none-match"], info.etag):
            return 304
    elif "if-modified-since" in h and _since(h["if-modified-since"]) is not None:
        if int(info.last_modified) <= _since(h["if-modified-since"]):  # type: ignore[operator]
            return 304
    return None


def _since(text: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError):
        return None


def _range(text: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``a-`` / ``-n`` as (first, last), clamped; None to send everything (a form S3 ignores);
    ``InvalidRange`` when it starts past the end."""
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", text.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        first = int(m.group(1))
        last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if m.group(2) and int(m.group(2)) < first:
            return None
    else:
        n = int(m.group(2))
        if n == 0:
            raise s3_error("InvalidRange", "The requested range is not satisfiable", 416, ActualObjectSize=str(size))
        first, last = max(0, size - n), size - 1
    if first >= size:
        raise s3_error("InvalidRange", "The requested range is not satisfiable", 416, ActualObjectSize=str(size))
    return first, last


class S3App:
    """The ASGI app of S3's operations on one store."""

    def __init__(self, store: ObjectStore, keys: dict[str, str], region: str = "us-east-1") -> None:
        self.store, self.keys, self.region = store, keys, region

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = uuid.uuid4().hex.upper()[:16]
        head = request.method == "HEAD"
        resource = scope.get("path", "/")
        try:
            req = S3Request(request)
            resource = req.resource
            authenticate(req, self.keys)
            response = await self.dispatch(req)
        except ServiceError as err:
            response = _error_response(err, resource, request_id, head)
        except Exception:  # noqa: BLE001 - a client gets S3's error shape, never a traceback
            log.exception("S3 %s %s failed", request.method, resource)
            internal = s3_error("InternalError", "We encountered an internal error. Please try again.", 500)
            response = _error_response(internal, resource, request_id, head)
        response.headers["x-amz-request-id"] = request_id
        response.headers["x-amz-id-2"] = request_id
        await response(scope, receive, send)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return run_in_threadpool(fn, *args, **kwargs)

    async def dispatch(self, req: S3Request) -> Response:
        m, q, bucket, key = req.method, req.query, req.bucket, req.key
        unsupported = {
            "acl",
            "tagging",
            "versioning",
            "policy",
            "lifecycle",
            "cors",
            "website",
            "versions",
            "torrent",
            "restore",
            "select",
            "select-type",
            "retention",
            "legal-hold",
            "object-lock",
            "replication",
            "encryption",
            "notification",
            "logging",
            "accelerate",
            "requestPayment",
            "ownershipControls",
            "publicAccessBlock",
            "analytics",
            "metrics",
            "inventory",
            "intelligent-tiering",
            "attributes",
            "renameObject",
        }
        if unsupported & set(q):
            raise s3_error(
                "NotImplemented", f"Roost's S3 store does not serve ?{sorted(unsupported & set(q))[0]}.", 501
            )
        if not bucket:
            if m == "GET":
                return await self.list_buckets()
            raise s3_error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)
        if not key:
            if m == "PUT":
                return await self.create_bucket(req)
            if m == "HEAD":
                b = await self._call(self.store.bucket, bucket)
                return Response(status_code=200, headers={"x-amz-bucket-region": b.region})
            if m == "DELETE":
                await self._call(self.store.delete_bucket, bucket)
                return Response(status_code=204)
            if m == "GET" and "location" in q:
                b = await self._call(self.store.bucket, bucket)
                root = ET.Element("LocationConstraint", xmlns=NAMESPACE)
                root.text = None if b.region == "us-east-1" else b.region
                return Response(ET.tostring(root, encoding="utf-8", xml_declaration=True), media_type="application/xml")
            if m == "GET" and "uploads" in q:
                return await self.list_uploads(req)
            if m == "GET":
                return await self.list_objects(req, v2=q.get("list-type") == "2")
            if m == "POST" and "delete" in q:
                return await self.delete_objects(req)
            raise s3_error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)
        if m == "PUT":
            if "uploadId" in q and "partNumber" in q:
                if "x-amz-copy-source" in req.headers:
                    return await self.upload_part_copy(req)
                return await self.upload_part(req)
            if "x-amz-copy-source" in req.headers:
                return await self.copy_object(req)
            return await self.put_object(req)
        if m in ("GET", "HEAD"):
            if "uploadId" in q and m == "GET":
                return await self.list_parts(req)
            return await self.get_object(req, head=m == "HEAD")
        if m == "DELETE":
            if "uploadId" in q:
                await self._call(self.store.abort, bucket, key, q["uploadId"])
                return Response(status_code=204)
            await self._call(self.store.delete, bucket, key)
            return Response(status_code=204)
        if m == "POST":
            if "uploads" in q:
                content_type, meta, headers = _object_headers(req)
                algorithm = req.headers.get("x-amz-checksum-algorithm")
                upload_id = await self._call(
                    self.store.create_upload,
                    bucket,
                    key,
                    content_type=content_type,
                    meta=meta,
                    headers=headers,
                    checksum_algorithm=algorithm,
                )
                result = {"Bucket": bucket, "Key": key, "UploadId": upload_id, "ChecksumAlgorithm": algorithm}
                return answer("CreateMultipartUpload", result, "InitiateMultipartUploadResult")
            if "uploadId" in q:
                return await self.complete(req)
        raise s3_error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)

    # ------------------------------------------------------------------ buckets

    async def list_buckets(self) -> Response:
        rows = await self._call(self.store.buckets)
        result = {
            "Buckets": [{"Name": b.name, "CreationDate": b.creation_time, "BucketRegion": b.region} for b in rows],
            "Owner": {"ID": "roost", "DisplayName": "roost"},
        }
        return answer("ListBuckets", result, "ListAllMyBucketsResult")

    async def create_bucket(self, req: S3Request) -> Response:
        root = await _xml_body(req)
        region = self.region
        if root is not None:
            constraint = root.find(f"{{{NAMESPACE}}}LocationConstraint")
            if constraint is None:
                constraint = root.find("LocationConstraint")
            if constraint is not None and constraint.text:
                if constraint.text == "us-east-1":
                    raise s3_error("InvalidLocationConstraint", "The specified location-constraint is not valid")
                region = constraint.text
        created = await self._call(self.store.create_bucket, req.bucket, region)
        if not created and region != "us-east-1":
            raise s3_error(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
                409,
                BucketName=req.bucket,
            )
        return Response(status_code=200, headers={"Location": f"/{req.bucket}"})

    # ------------------------------------------------------------------ listing

    async def list_objects(self, req: S3Request, v2: bool) -> Response:
        q = req.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        encoding = q.get("encoding-type")
        if encoding not in (None, "url"):
            raise s3_error("InvalidArgument", "Invalid Encoding Method specified in Request")
        try:
            max_keys = int(q.get("max-keys", LIMITS.max_keys))
        except ValueError:
            raise s3_error("InvalidArgument", "Provided max-keys not an integer or within integer range") from None
        if max_keys < 0:
            raise s3_error("InvalidArgument", "max-keys must be a non-negative integer")
        if v2:
            token = q.get("continuation-token")
            after = _read_token(token) if token else q.get("start-after", "")
        else:
            after = q.get("marker", "")
        listing = await self._call(self.store.list_objects, req.bucket, prefix, delimiter, after, max_keys)

        def enc(text: str) -> str:
            return quote(text, safe="-_.~/") if encoding == "url" else text

        contents = [
            {
                "Key": enc(o.key),
                "LastModified": o.last_modified,
                "ETag": f'"{o.etag}"',
                "Size": o.size,
                "StorageClass": "STANDARD",
                **({"ChecksumAlgorithm": [a.upper() for a in o.checksums]} if o.checksums else {}),
            }
            for o in listing.objects
        ]
        result: dict[str, Any] = {
            "Name": req.bucket,
            "Prefix": enc(prefix),
            "MaxKeys": min(max_keys, LIMITS.max_keys),
            "IsTruncated": listing.truncated,
            "Contents": contents,
            "CommonPrefixes": [{"Prefix": enc(p)} for p in listing.prefixes],
        }
        if delimiter:
            result["Delimiter"] = enc(delimiter)
        if encoding:
            result["EncodingType"] = encoding
        if v2:
            result["KeyCount"] = len(contents) + len(listing.prefixes)
            if "continuation-token" in q:
                result["ContinuationToken"] = q["continuation-token"]
            if q.get("start-after"):
                result["StartAfter"] = enc(q["start-after"])
            if listing.truncated and listing.next_after is not None:
                result["NextContinuationToken"] = _write_token(listing.next_after)
            return answer("ListObjectsV2", result, "ListBucketResult")
        result["Marker"] = enc(after)
        if listing.truncated and delimiter and listing.next_after is not None:
            result["NextMarker"] = enc(listing.next_after)
        return answer("ListObjects", result, "ListBucketResult")

    # ------------------------------------------------------------------ objects

    async def put_object(self, req: S3Request) -> Response:
        content_type, meta, headers = _object_headers(req)
        expected = expected_of(req)
        body = Body(req, expected)
        info = await self._call(
            self.store.put,
            req.bucket,
            req.key,
            body,
            expected,
            content_type=content_type,
            meta=meta,
            headers=headers,
            if_none_match=req.headers.get("if-none-match"),
            if_match=req.headers.get("if-match"),
        )
        result = {"ETag": f'"{info.etag}"', **_checksum_members(info.checksums)}
        if info.checksum_type:
            result["ChecksumType"] = info.checksum_type
        return answer("PutObject", result, "PutObjectResult")

    async def get_object(self, req: S3Request, head: bool) -> Response:
        info: ObjectInfo = await self._call(self.store.head, req.bucket, req.key)
        status = _conditions(req, info)
        if status == 412:
            raise s3_error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
        checksum_mode = req.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
        headers = _info_headers(info, checksum_mode)
        if status == 304:
            return Response(
                status_code=304, headers={"ETag": headers["ETag"], "Last-Modified": headers["Last-Modified"]}
            )
        ranged = _range(req.headers["range"], info.size) if "range" in req.headers and info.size else None
        if "range" in req.headers and not info.size and _range_given(req.headers["range"]):
            raise s3_error("InvalidRange", "The requested range is not satisfiable", 416, ActualObjectSize="0")
        first, last = ranged if ranged else (0, info.size - 1)
        if ranged:
            headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
            for name in [h for h in headers if h.startswith("x-amz-checksum")]:  # never a whole object's on a part
                del headers[name]
        headers["Content-Length"] = str(max(0, last - first + 1))
        code = 206 if ranged else 200
        if head:
            return Response(status_code=code, headers=headers)
        media = headers.pop("Content-Type")
        return StreamingResponse(read_range(info, first, last), status_code=code, headers=headers, media_type=media)

    async def copy_object(self, req: S3Request) -> Response:
        source = await self._source(req)
        replace = req.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
        content_type, meta, headers = _object_headers(req)
        info = await self._call(
            self.store.copy,
            source,
            req.bucket,
            req.key,
            replace=replace,
            content_type=content_type,
            meta=meta,
            headers=headers,
        )
        result = {
            "CopyObjectResult": {
                "ETag": f'"{info.etag}"',
                "LastModified": info.last_modified,
                **_checksum_members(info.checksums),
            }
        }
        return answer("CopyObject", result, "CopyObjectResult")

    async def _source(self, req: S3Request) -> ObjectInfo:
        text = unquote(req.headers["x-amz-copy-source"]).lstrip("/").split("?versionId=", 1)[0]
        bucket, _, key = text.partition("/")
        if not bucket or not key:
            raise s3_error(
                "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"
            )
        info: ObjectInfo = await self._call(self.store.head, bucket, key)
        h = req.headers
        if "x-amz-copy-source-if-match" in h and not etag_matches(h["x-amz-copy-source-if-match"], info.etag):
            raise s3_error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
        if "x-amz-copy-source-if-none-match" in h and etag_matches(h["x-amz-copy-source-if-none-match"], info.etag):
            raise s3_error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
        return info

    async def delete_objects(self, req: S3Request) -> Response:
        root = await _xml_body(req)
        if root is None:
            raise s3_error("MalformedXML", "The XML you provided was not well-formed.")
        objects = [o for o in root.iter() if o.tag.endswith("Object")]
        if len(objects) > LIMITS.delete_keys:
            raise s3_error("MalformedXML", f"A DeleteObjects request names at most {LIMITS.delete_keys} keys.")
        quiet = any(e.tag.endswith("Quiet") and (e.text or "").lower() == "true" for e in root.iter())
        deleted, errors = [], []
        for o in objects:
            key_element = next((e for e in o if e.tag.endswith("Key")), None)
            key = key_element.text if key_element is not None and key_element.text else ""
            try:
                await self._call(self.store.delete, req.bucket, key)
                deleted.append({"Key": key})
            except ServiceError as err:
                if err.code == "NoSuchBucket":
                    raise
                errors.append({"Key": key, "Code": err.code, "Message": err.message})
        return answer("DeleteObjects", {"Deleted": [] if quiet else deleted, "Errors": errors}, "DeleteResult")

    # ------------------------------------------------------------------ multipart

    def _part_number(self, req: S3Request) -> int:
        try:
            return int(req.query["partNumber"])
        except ValueError:
            raise s3_error("InvalidArgument", f"Part number must be an integer between 1 and {LIMITS.parts}") from None

    async def upload_part(self, req: S3Request) -> Response:
        expected = expected_of(req)
        info = await self._call(
            self.store.upload_part,
            req.bucket,
            req.key,
            req.query["uploadId"],
            self._part_number(req),
            Body(req, expected),
            expected,
        )
        return answer("UploadPart", {"ETag": f'"{info.etag}"', **_checksum_members(info.checksums)}, "UploadPartResult")

    async def upload_part_copy(self, req: S3Request) -> Response:
        source = await self._source(req)
        first, last = 0, source.size - 1
        if "x-amz-copy-source-range" in req.headers:
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", req.headers["x-amz-copy-source-range"].strip())
            if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) >= source.size:
                raise s3_error(
                    "InvalidArgument",
                    "The x-amz-copy-source-range value must be of the form bytes=first-last, the zero-based "
                    "offsets of the first and last bytes to copy, within the source",
                )
            first, last = int(m.group(1)), int(m.group(2))
        info = await self._call(
            self.store.upload_part_copy,
            req.bucket,
            req.key,
            req.query["uploadId"],
            self._part_number(req),
            source,
            first,
            last,
        )
        result = {"CopyPartResult": {"ETag": f'"{info.etag}"', "LastModified": info.last_modified}}
        return answer("UploadPartCopy", result, "CopyPartResult")

    async def complete(self, req: S3Request) -> Response:
        root = await _xml_body(req)
        if root is None:
            raise s3_error("MalformedXML", "The XML you provided was not well-formed.")
        parts = []
        for part in (e for e in root if e.tag.endswith("Part")):
            fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in part}
            try:
                number = int(fields.get("PartNumber", ""))
            except ValueError:
                raise s3_error("MalformedXML", "A Part has no PartNumber.") from None
            checksums = {k[len("Checksum") :].lower(): v for k, v in fields.items() if k.startswith("Checksum")}
            parts.append((number, fields.get("ETag", ""), checksums))
        info = await self._call(self.store.complete, req.bucket, req.key, req.query["uploadId"], parts)
        result = {
            "Location": f"/{req.bucket}/{quote(req.key)}",
            "Bucket": req.bucket,
            "Key": req.key,
            "ETag": f'"{info.etag}"',
            **_checksum_members(info.checksums),
        }
        if info.checksum_type:
            result["ChecksumType"] = info.checksum_type
        return answer("CompleteMultipartUpload", result, "CompleteMultipartUploadResult")

    async def list_parts(self, req: S3Request) -> Response:
        q = req.query
        try:
            after = int(q.get("part-number-marker", "0") or 0)
            max_parts = int(q.get("max-parts", "1000"))
        except ValueError:
            raise s3_error("InvalidArgument", "part-number-marker and max-parts must be integers") from None
        upload = await self._call(self.store.upload, req.bucket, req.key, q["uploadId"])
        parts = await self._call(self.store.parts, req.bucket, req.key, q["uploadId"], after, max_parts)
        truncated = len(parts) > max_parts
        parts = parts[:max_parts]
        result: dict[str, Any] = {
            "Bucket": req.bucket,
            "Key": req.key,
            "UploadId": q["uploadId"],
            "PartNumberMarker": after,
            "MaxParts": max_parts,
            "IsTruncated": truncated,
            "StorageClass": "STANDARD",
            "Parts": [
                {
                    "PartNumber": p.number,
                    "LastModified": p.last_modified,
                    "ETag": f'"{p.etag}"',
                    "Size": p.size,
                    **_checksum_members(p.checksums),
                }
                for p in parts
            ],
        }
        if upload.checksum_algorithm:
            result["ChecksumAlgorithm"] = upload.checksum_algorithm.upper()
        if truncated and parts:
            result["NextPartNumberMarker"] = parts[-1].number
        return answer("ListParts", result, "ListPartsResult")

    async def list_uploads(self, req: S3Request) -> Response:
        q = req.query
        try:
            limit = int(q.get("max-uploads", "1000"))
        except ValueError:
            raise s3_error("InvalidArgument", "max-uploads must be an integer") from None
        rows = await self._call(
            self.store.uploads,
            req.bucket,
            q.get("prefix", ""),
            q.get("key-marker", ""),
            q.get("upload-id-marker", ""),
            limit,
        )
        truncated = len(rows) > limit
        rows = rows[:limit]
        result: dict[str, Any] = {
            "Bucket": req.bucket,
            "KeyMarker": q.get("key-marker", ""),
            "UploadIdMarker": q.get("upload-id-marker", ""),
            "MaxUploads": limit,
            "IsTruncated": truncated,
            "Uploads": [
                {"UploadId": u.upload_id, "Key": u.key, "Initiated": u.initiated, "StorageClass": "STANDARD"}
                for u in rows
            ],
        }
        if q.get("prefix"):
            result["Prefix"] = q["prefix"]
        if truncated and rows:
            result["NextKeyMarker"], result["NextUploadIdMarker"] = rows[-1].key, rows[-1].upload_id
        return answer("ListMultipartUploads", result, "ListMultipartUploadsResult")


def _range_given(text: str) -> bool:
    return bool(re.fullmatch(r"bytes=(\d*)-(\d*)", text.strip()))


def _write_token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode()


def _read_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise s3_error("InvalidArgument", "The continuation token provided is incorrect") from None


async def _xml_body(req: S3Request) -> ET.Element | None:
    """The request's XML document, or None for an empty body. expat refuses entity-expansion bombs itself."""
    body = await _small_body(req)
    if not body.strip():
        return None
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        raise s3_error("MalformedXML", "The XML you provided was not well-formed.") from None


async def _small_body(req: S3Request) -> bytes:
    """An XML request body, read whole up to :data:`MAX_XML_BYTES` (and checked against the signed hash)."""
    chunks, size = [], 0
    async for chunk in req.request.stream():
        size += len(chunk)
        if size > MAX_XML_BYTES:
            raise s3_error("MaxMessageLengthExceeded", "Your request was too big.")
        chunks.append(chunk)
    body = b"".join(chunks)
    if re.fullmatch(r"[0-9a-fA-F]{64}", req.payload) and hashlib.sha256(body).hexdigest() != req.payload.lower():
        raise s3_error(
            "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    md5 = req.headers.get("content-md5")
    if md5 is not None and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
        raise s3_error("BadDigest", "The Content-MD5 you specified did not match what we received.")
    return body
