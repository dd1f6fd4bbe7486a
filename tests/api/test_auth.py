"""Credentials and SigV4: keys made on first start, botocore's signatures accepted, tampering refused."""

import datetime as dt
import hashlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from roost.api.auth import AuthError, load_or_create_keys, verify


def test_first_start_creates_keys(tmp_path):
    pair, created = load_or_create_keys(tmp_path, {})
    assert created == tmp_path / "credentials.json" and oct(created.stat().st_mode)[-3:] == "600"
    again, created2 = load_or_create_keys(tmp_path, {})
    assert again == pair and created2 is None
    env_pair, _ = load_or_create_keys(tmp_path, {"ROOST_ACCESS_KEY_ID": "K", "ROOST_SECRET_ACCESS_KEY": "S"})
    assert env_pair.access_key_id == "K"


def _signed(secret="S", when=None, body=b"{}", **extra_headers):
    req = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8080/",
        data=body,
        headers={
            "X-Amz-Target": "SageMaker.ListTrainingJobs",
            "Content-Type": "application/x-amz-json-1.1",
            **extra_headers,
        },
    )
    SigV4Auth(Credentials("K", secret), "sagemaker", "us-east-1").add_auth(req)
    return dict(req.headers.items())


def test_sigv4_accepts_botocore_and_rejects_tampering():
    headers = _signed()
    assert verify("POST", "http://127.0.0.1:8080/", headers, b"{}", {"K": "S"}) == "K"
    with pytest.raises(AuthError) as err:
        verify("POST", "http://127.0.0.1:8080/", headers, b'{"x": 1}', {"K": "S"})
    assert err.value.code == "InvalidSignatureException"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    with pytest.raises(AuthError, match="Signature expired"):
        verify("POST", "http://127.0.0.1:8080/", headers, b"{}", {"K": "S"}, now=later)


def test_the_body_is_covered_by_the_signature_even_when_the_client_names_its_hash():
    """A captured DeleteModel for "decoy", replayed with a body naming "victim", must not pass."""
    decoy = b'{"ModelName": "decoy"}'
    headers = _signed(body=decoy, **{"X-Amz-Content-SHA256": hashlib.sha256(decoy).hexdigest()})
    assert verify("POST", "http://127.0.0.1:8080/", headers, decoy, {"K": "S"}) == "K"
    with pytest.raises(AuthError) as err:
        verify("POST", "http://127.0.0.1:8080/", headers, b'{"ModelName": "victim"}', {"K": "S"})
    assert err.value.code == "InvalidSignatureException" and "x-amz-content-sha256" in err.value.message


def test_unsigned_payloads_are_refused():
    headers = _signed(body=b'{"ModelName": "x"}', **{"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(AuthError, match="UNSIGNED-PAYLOAD is not accepted"):
        verify("POST", "http://127.0.0.1:8080/", headers, b'{"ModelName": "other"}', {"K": "S"})
