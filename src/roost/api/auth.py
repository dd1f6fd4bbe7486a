"""AWS Signature Version 4, checked with botocore's own signer.

The server rebuilds the canonical request from what it received - method,
path, query, the headers the client says it signed, the body - and computes
the signature with the secret key of the access key named in the credential
scope. botocore computes it exactly as every AWS SDK does, so nothing of the
algorithm is re-implemented here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from botocore.auth import UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from roost.aws import ServiceError
from roost.storage.folder import create_private_file

AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,\s*"
    r"SignedHeaders=(?P<signed>[^,]+),\s*Signature=(?P<sig>[0-9a-f]{64})"
)
MAX_SKEW = dt.timedelta(minutes=15)


class AuthError(ServiceError):
    """A request that is not signed, or not signed right: 403 unless AWS says otherwise."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(code, message, status)


@dataclass(frozen=True)
class KeyPair:
    access_key_id: str
    secret_access_key: str


def load_or_create_keys(data_dir: Path, env: dict) -> tuple[KeyPair, Path | None]:
    """``ROOST_ACCESS_KEY_ID``/``ROOST_SECRET_ACCESS_KEY`` when set, else ``credentials.json`` in the data
    folder, created on first start. Returns the pair and the file it was created in (or None)."""
    if env.get("ROOST_ACCESS_KEY_ID") and env.get("ROOST_SECRET_ACCESS_KEY"):
        return KeyPair(env["ROOST_ACCESS_KEY_ID"], env["ROOST_SECRET_ACCESS_KEY"]), None
    path = data_dir / "credentials.json"
    if path.is_file():
        d = json.loads(path.read_text())
        return KeyPair(d["aws_access_key_id"], d["aws_secret_access_key"]), None
    pair = KeyPair("RK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"aws_access_key_id": pair.access_key_id, "aws_secret_access_key": pair.secret_access_key})
    create_private_file(path, text)
    return pair, path


def verify(
    method: str, url: str, headers: dict[str, str], body: bytes, keys: dict[str, str], now: dt.datetime | None = None
) -> str:
    """Check a SigV4-signed request; returns the access key id, or raises :class:`AuthError` as AWS would."""
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization")
    if not auth:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = AUTH_RE.match(auth.strip())
    if not m:
        raise AuthError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' (AWS4-HMAC-SHA256).",
        )
    secret = keys.get(m["key"])
    if secret is None:
        raise AuthError("UnrecognizedClientException", "The security token included in the request is invalid.")
    amz_date = lower.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthError("IncompleteSignatureException", "X-Amz-Date is missing or malformed.", 400) from None
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - when) > MAX_SKEW:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {(now - MAX_SKEW):%Y%m%dT%H%M%SZ}.",
        )
    claimed = lower.get("x-amz-content-sha256")
    if claimed is not None:
        # botocore's signer takes the client's word for the payload hash: check it against the body received,
        # or a signature captured once would authorise any other body
        if claimed == UNSIGNED_PAYLOAD:
            raise AuthError("InvalidSignatureException", "UNSIGNED-PAYLOAD is not accepted: sign the request body.")
        if not hmac.compare_digest(claimed.lower(), hashlib.sha256(body).hexdigest()):
            raise AuthError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                400,
            )
    signed = m["signed"].split(";")
    req = AWSRequest(method=method, url=url, data=body, headers={h: lower[h] for h in signed if h in lower})
    req.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(m["key"], secret), m["service"], m["region"])
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    if not hmac.compare_digest(expected, m["sig"]):
        raise AuthError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your "
            "AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )
    return m["key"]
