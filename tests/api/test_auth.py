"""Credentials and SigV4: keys made on first start, botocore's signatures accepted, tampering refused."""

import datetime as dt

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


def _signed(secret="S", when=None, body=b"{}"):
    req = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8080/",
        data=body,
        headers={"X-Amz-Target": "SageMaker.ListTrainingJobs", "Content-Type": "application/x-amz-json-1.1"},
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
