"""S3 in the box through the real clients: boto3 (client, transfer manager, presigned URLs), the AWS CLI, and
requests made by hand where no Python client sends them (aws-chunked bodies). The store is the server's own."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from helpers import KEY, SECRET, Server

pytestmark = pytest.mark.slow  # starts a server

SMALL_PARTS = TransferConfig(
    multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=4
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url):
    """One server for the module's tests, on SQLite and on PostgreSQL (the store's metadata lives in either)."""
    srv = Server(tmp_path_factory.mktemp("s3") / "data", database_url=module_database_url).start()
    yield srv
    srv.stop()


def _s3(server, **config):
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def _code(fn, **kwargs) -> str:
    with pytest.raises(ClientError) as err:
        fn(**kwargs)
    return err.value.response["Error"]["Code"]


def test_buckets_objects_and_listings_with_boto3(server):
    s3 = _s3(server)
    s3.create_bucket(Bucket="lab")
    s3.create_bucket(Bucket="lab")  # us-east-1: creating one's own bucket again succeeds
    assert "lab" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="lab")
    assert s3.get_bucket_location(Bucket="lab")["LocationConstraint"] is None
    assert _code(s3.create_bucket, Bucket="Bad_Name") == "InvalidBucketName"
    assert _code(s3.head_bucket, Bucket="nobody") == "404"

    keys = ["train/a b+c.rec", "train/sub/x.rec", "train/é.rec", "val/v.rec", "../escape", "/lead", "dir//x", "top"]
    for key in keys:
        s3.put_object(Bucket="lab", Key=key, Body=key.encode(), Metadata={"origin": "test"}, ContentType="x/y")
    for key in keys:
        got = s3.get_object(Bucket="lab", Key=key)
        assert (
            got["Body"].read() == key.encode() and got["Metadata"] == {"origin": "test"} and got["ContentType"] == "x/y"
        )
    listed = s3.list_objects_v2(Bucket="lab", Prefix="train/", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["train/a b+c.rec", "train/é.rec"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["train/sub/"]
    # ETags agree between a listing, HEAD and GET (ranged downloads send If-Match with the listing's)
    etag = listed["Contents"][0]["ETag"]
    assert s3.head_object(Bucket="lab", Key="train/a b+c.rec")["ETag"] == etag
    assert s3.get_object(Bucket="lab", Key="train/a b+c.rec", IfMatch=etag)["ETag"] == etag
    assert _code(s3.get_object, Bucket="lab", Key="train/a b+c.rec", IfMatch='"nope"') == "PreconditionFailed"
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="lab", PaginationConfig={"PageSize": 3})
    assert [o["Key"] for page in pages for o in page.get("Contents", [])] == sorted(keys, key=lambda k: k.encode())
    v1 = s3.get_paginator("list_objects").paginate(Bucket="lab", PaginationConfig={"PageSize": 2})
    assert len([o for page in v1 for o in page.get("Contents", [])]) == len(keys)
    # LastModified keeps sub-second precision (a second `aws s3 sync` must not upload again)
    assert any(o["LastModified"].microsecond for o in s3.list_objects_v2(Bucket="lab")["Contents"])

    part = s3.get_object(Bucket="lab", Key="train/a b+c.rec", Range="bytes=2-5", ChecksumMode="ENABLED")
    assert part["Body"].read() == b"ain/" and part["ContentRange"] == "bytes 2-5/15" and "ChecksumCRC32" not in part
    assert _code(s3.get_object, Bucket="lab", Key="top", Range="bytes=100-") == "InvalidRange"
    full = s3.get_object(Bucket="lab", Key="top", ChecksumMode="ENABLED")
    assert full["ChecksumCRC32"] and full["Body"].read() == b"top"

    s3.copy_object(Bucket="lab", Key="copy", CopySource={"Bucket": "lab", "Key": "train/a b+c.rec"})
    assert s3.head_object(Bucket="lab", Key="copy")["Metadata"] == {"origin": "test"}
    s3.copy_object(Bucket="lab", Key="copy", CopySource="lab/copy", MetadataDirective="REPLACE", Metadata={"new": "1"})
    assert s3.head_object(Bucket="lab", Key="copy")["Metadata"] == {"new": "1"}
    assert _code(s3.copy_object, Bucket="lab", Key="copy", CopySource="lab/copy") == "InvalidRequest"

    deleted = s3.delete_objects(Bucket="lab", Delete={"Objects": [{"Key": "copy"}, {"Key": "never-was"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy", "never-was"]
    assert _code(s3.get_object, Bucket="lab", Key="copy") == "NoSuchKey"
    assert _code(s3.delete_bucket, Bucket="lab") == "BucketNotEmpty"


def test_multipart_with_the_transfer_manager_and_by_hand(server, tmp_path):
    s3 = _s3(server)
    s3.create_bucket(Bucket="big")
    data = os.urandom(12 * 1024 * 1024 + 123)
    (tmp_path / "up").write_bytes(data)
    s3.upload_file(str(tmp_path / "up"), "big", "data/train.rec", Config=SMALL_PARTS)  # 3 parts in parallel
    head = s3.head_object(Bucket="big", Key="data/train.rec")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"')
    s3.download_file("big", "data/train.rec", str(tmp_path / "down"), Config=SMALL_PARTS)  # ranged GETs, If-Match
    assert (tmp_path / "down").read_bytes() == data

    upload = s3.create_multipart_upload(Bucket="big", Key="hand")["UploadId"]
    e1 = s3.upload_part(Bucket="big", Key="hand", UploadId=upload, PartNumber=1, Body=b"a" * 5 * 1024 * 1024)["ETag"]
    e2 = s3.upload_part_copy(
        Bucket="big",
        Key="hand",
        UploadId=upload,
        PartNumber=2,
        CopySource="big/data/train.rec",
        CopySourceRange="bytes=0-99",
    )["CopyPartResult"]["ETag"]
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="big", Key="hand", UploadId=upload)["Parts"]] == [1, 2]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket="big")["Uploads"]] == ["hand"]
    parts = {"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}
    assert _code(s3.complete_multipart_upload, Bucket="big", Key="hand", UploadId=upload, MultipartUpload=parts) == (
        "InvalidPartOrder"
    )
    parts["Parts"].reverse()
    s3.complete_multipart_upload(Bucket="big", Key="hand", UploadId=upload, MultipartUpload=parts)
    assert s3.get_object(Bucket="big", Key="hand", Range="bytes=-100")["Body"].read() == data[:100]
    assert _code(s3.abort_multipart_upload, Bucket="big", Key="hand", UploadId=upload) == "NoSuchUpload"


def test_presigned_urls_in_both_forms_and_no_anonymous_access(server):
    s3 = _s3(server)
    s3.create_bucket(Bucket="shared")
    s3.put_object(Bucket="shared", Key="model.tar.gz", Body=b"model bytes")
    v2 = s3.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": "model.tar.gz"})
    assert "AWSAccessKeyId=" in v2 and requests.get(v2).content == b"model bytes"  # botocore's us-east-1 default
    v4 = _s3(server, signature_version="s3v4")
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": "model.tar.gz"}, ExpiresIn=60)
    assert "X-Amz-Credential=" in url and requests.get(url).content == b"model bytes"
    put = v4.generate_presigned_url("put_object", Params={"Bucket": "shared", "Key": "up"})
    assert requests.put(put, data=b"via presign").status_code == 200
    assert s3.get_object(Bucket="shared", Key="up")["Body"].read() == b"via presign"
    assert requests.get(url.replace("model.tar.gz", "up")).status_code == 403  # the signature covers the key
    expired = v4.generate_presigned_url("get_object", Params={"Bucket": "shared", "Key": "up"}, ExpiresIn=1)
    time.sleep(2)
    r = requests.get(expired)
    assert r.status_code == 403 and b"<Code>AccessDenied</Code>" in r.content and b"expired" in r.content
    wrong = boto3.client(
        "s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id=KEY, aws_secret_access_key="wrong"
    )
    assert _code(wrong.get_object, Bucket="shared", Key="up") == "SignatureDoesNotMatch"


def test_a_body_that_does_not_match_what_was_signed_stores_nothing(server):
    s3 = _s3(server)
    s3.create_bucket(Bucket="checked")
    s3.put_object(Bucket="checked", Key="k", Body=b"first")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="checked", Key="k", Body=b"second", ChecksumCRC32="AAAAAA==")
    assert err.value.response["Error"]["Code"] == "BadDigest"
    r = _signed_put(server, "/checked/k", b"tampered", payload_hash=hashlib.sha256(b"other").hexdigest())
    assert r.status_code == 400 and b"XAmzContentSHA256Mismatch" in r.content
    assert s3.get_object(Bucket="checked", Key="k")["Body"].read() == b"first"
    assert not list((server.data_dir / "s3" / "tmp").iterdir())


def test_hostile_xml_bodies_get_malformed_xml_and_the_server_goes_on(server):
    s3 = _s3(server)
    s3.create_bucket(Bucket="xml")
    s3.put_object(Bucket="xml", Key="kept", Body=b"kept")
    entities = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (  # a billion laughs: ten to the ninth characters from a few hundred bytes
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e0 "xxxxxxxxxx">{entities}]>'
        "<Delete><Object><Key>&e9;</Key></Object></Delete>"
    )
    for body in (bomb.encode(), b"", b"<Delete><Object><Key>kept</Key>"):
        r = _signed_put(server, "/xml?delete", body, hashlib.sha256(body).hexdigest(), method="POST")
        assert r.status_code == 400 and b"<Code>MalformedXML</Code>" in r.content, r.content
    assert s3.get_object(Bucket="xml", Key="kept")["Body"].read() == b"kept"


def _signed_put(server, path: str, body: bytes, payload_hash: str, headers: dict | None = None, method: str = "PUT"):
    """A request (a PUT unless told) signed with botocore's S3 signer, its payload hash and headers as given (what
    no client sends)."""
    req = AWSRequest(method=method, url=server.url + path, data=body, headers=dict(headers or {}))
    req.headers["X-Amz-Content-SHA256"] = payload_hash
    signer = S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1")
    signer._modify_request_before_signing = lambda request: None  # keep the payload hash given  # noqa: SLF001
    req.context["timestamp"] = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    req.headers["X-Amz-Date"] = req.context["timestamp"]
    signer.add_auth(req)
    return requests.request(method, server.url + path, data=body, headers=dict(req.headers.items()))


def _aws_chunked(chunks: list[bytes], seed: str, key: bytes, amz_date: str, scope: str, trailer: str | None) -> bytes:
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD body (AWS's documented chunk signing), optionally with a signed trailer."""
    out, previous = b"", seed
    empty = hashlib.sha256(b"").hexdigest()
    for chunk in [*chunks, b""]:
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, empty, hashlib.sha256(chunk).hexdigest()]
        )
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + (b"\r\n" if chunk else b"")
    if trailer is None:
        return out + b"\r\n"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous, hashlib.sha256((trailer + "\n").encode()).hexdigest()]
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return out + f"{trailer}\r\nx-amz-trailer-signature:{signature}\r\n\r\n".encode()


@pytest.mark.parametrize("trailer", [False, True])
def test_aws_chunked_signed_uploads_are_checked_chunk_by_chunk(server, trailer):
    """No Python client sends signed aws-chunked bodies (Java and Go SDKs do): the test signs them itself."""
    import base64
    import zlib

    s3 = _s3(server)
    s3.create_bucket(Bucket="chunked")
    chunks = [b"x" * 8192, b"y" * 100]
    data = b"".join(chunks)
    amz_date = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" if trailer else "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        **({"x-amz-trailer": "x-amz-checksum-crc32"} if trailer else {}),
    }
    req = AWSRequest(method="PUT", url=server.url + "/chunked/obj", headers=headers)
    req.headers["X-Amz-Content-SHA256"] = mode
    req.headers["X-Amz-Date"] = amz_date
    req.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1")
    signer._modify_request_before_signing = lambda request: None  # noqa: SLF001
    signer.add_auth(req)
    seed = req.headers["Authorization"].rsplit("Signature=", 1)[1]
    key = ("AWS4" + SECRET).encode()  # AWS's documented key derivation, for the chunk signatures
    for part in (amz_date[:8], "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    body = _aws_chunked(chunks, seed, key, amz_date, scope, f"x-amz-checksum-crc32:{crc}" if trailer else None)
    r = requests.put(server.url + "/chunked/obj", data=body, headers=dict(req.headers.items()))
    assert r.status_code == 200, r.content
    got = s3.get_object(Bucket="chunked", Key="obj", ChecksumMode="ENABLED")
    assert got["Body"].read() == data and "ContentEncoding" not in got
    if trailer:
        assert got["ChecksumCRC32"] == crc
    tampered = body.replace(b"y" * 100, b"z" * 100)
    r = requests.put(server.url + "/chunked/obj2", data=tampered, headers=dict(req.headers.items()))
    assert r.status_code == 403 and b"SignatureDoesNotMatch" in r.content
    assert _code(s3.head_object, Bucket="chunked", Key="obj2") == "404"


def test_a_bucket_named_console_and_the_console_stay_apart(server):
    s3 = _s3(server)
    s3.create_bucket(Bucket="console")
    s3.put_object(Bucket="console", Key="jobs", Body=b"an object")
    assert s3.get_object(Bucket="console", Key="jobs")["Body"].read() == b"an object"
    page = requests.get(server.url + "/console/jobs", allow_redirects=False)
    assert page.status_code in (200, 303) and b"an object" not in page.content


def _aws(server, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "awscli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "AWS_ENDPOINT_URL": server.url,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(server.data_dir.parent / "aws-config"),
            **(env or {}),
        },
    )


def test_the_aws_cli_as_lab_1_uses_it(server, tmp_path):
    (server.data_dir.parent / "aws-config").write_text(
        "[default]\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n"
    )
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "train.rec").write_bytes(os.urandom(6 * 1024 * 1024))  # above the threshold: multipart
    (data / "train" / "train.idx").write_text("0\t0\n")
    (data / "classes.json").write_text(json.dumps(["bird", "cat"]))
    assert _aws(server, "s3", "mb", "s3://lab1").returncode == 0
    r = _aws(server, "s3", "cp", data / "train" / "train.rec", "s3://lab1/train/")
    assert r.returncode == 0, r.stderr
    first = _aws(server, "s3", "sync", data, "s3://lab1/data/")
    assert first.returncode == 0 and first.stdout.count("upload:") == 3, first.stdout + first.stderr
    second = _aws(server, "s3", "sync", data, "s3://lab1/data/")
    assert second.returncode == 0 and "upload:" not in second.stdout, second.stdout  # nothing changed
    listing = _aws(server, "s3", "ls", "--recursive", "s3://lab1/").stdout
    assert "data/train/train.rec" in listing and "train/train.rec" in listing
    r = _aws(server, "s3", "cp", "s3://lab1/train/train.rec", tmp_path / "back.rec")
    assert r.returncode == 0 and (tmp_path / "back.rec").read_bytes() == (data / "train" / "train.rec").read_bytes()
    url = _aws(server, "s3", "presign", "s3://lab1/data/classes.json").stdout.strip()
    assert requests.get(url).json() == ["bird", "cat"]
    assert _aws(server, "s3", "rb", "s3://lab1").returncode != 0  # not empty
    assert _aws(server, "s3", "rm", "--recursive", "s3://lab1/").returncode == 0
    assert _aws(server, "s3", "rb", "s3://lab1").returncode == 0
    me = json.loads(_aws(server, "sts", "get-caller-identity").stdout)
    assert me["Account"] == "000000000000" and ":assumed-role/" in me["Arn"]


def _sdk3_python() -> Path:
    """SDK v3's interpreter: ``make test`` builds .venv-sdk3 (v3 and v2 both own the ``sagemaker`` package)."""
    python = Path(os.environ.get("ROOST_SDK3_PYTHON") or Path(__file__).parents[2] / ".venv-sdk3" / "bin" / "python")
    if not python.exists():
        pytest.skip(f"SDK v3 is not installed at {python}: `make test` builds it (or set ROOST_SDK3_PYTHON)")
    return python


def test_sdk_v3_uploads_downloads_and_validates_its_role_with_one_variable(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    env |= {
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    script = Path(__file__).with_name("sdk3_client.py")
    run = subprocess.run([_sdk3_python(), script, tmp_path], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.splitlines()[-1])
    assert seen["uri"] == "s3://sdk3/train/train.rec" and seen["listed"] == [seen["uri"]] and seen["same"]
    assert seen["roles"] == [
        "arn:aws:iam::000000000000:role/service-role/SageMakerRole",
        "arn:aws:iam::000000000000:role/service-role/RoostExecutionRole",
    ]
    assert not seen["unverified"]  # SimulatePrincipalPolicy answered: the check passed, not merely shrugged
    s3 = _s3(server)
    head = s3.head_object(Bucket="sdk3", Key="train/train.rec")
    assert head["ContentLength"] == 9 * 1024 * 1024 and head["ETag"].endswith('-2"')  # went up in parts


def test_an_unsigned_trailer_body_as_boto3_sends_it_over_https(server):
    """botocore's default over HTTPS: aws-chunked, unsigned, the CRC32 in a trailer (here sent by hand over HTTP)."""
    import base64
    import zlib

    _s3(server).create_bucket(Bucket="trailer")
    crc = base64.b64encode(zlib.crc32(b"hello world").to_bytes(4, "big")).decode()
    body = f"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": "11",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    r = _signed_put(server, "/trailer/k", body, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers)
    assert r.status_code == 200, r.content
    got = _s3(server).get_object(Bucket="trailer", Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"hello world" and got["ChecksumCRC32"] == crc
    wrong = body.replace(crc.encode(), b"AAAAAA==")
    r = _signed_put(server, "/trailer/k", wrong, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", headers)
    assert r.status_code == 400 and b"BadDigest" in r.content
    assert _s3(server).get_object(Bucket="trailer", Key="k")["Body"].read() == b"hello world"


def test_a_training_job_reads_and_writes_the_embedded_store(server, recs, tmp_path):
    """Lab 2 with nothing but the server: channels and output as s3:// in its own store, the artifact at
    SageMaker's key, the channel's .rec linked into the job rather than copied."""
    import tarfile

    from helpers import FAST, training_request

    s3 = _s3(server)
    s3.create_bucket(Bucket="lab2")
    train, val, _ = recs
    for path, key in (
        (train, "train/train.rec"),
        (val, "validation/val.rec"),
        (train.parent / "classes.json", "train/classes.json"),
    ):
        s3.upload_file(str(path), "lab2", key)
    request = training_request(recs, tmp_path)
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://lab2/train/"
    request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://lab2/validation"
    request["OutputDataConfig"]["S3OutputPath"] = "s3://lab2/output"
    sm = server.client()
    sm.create_training_job(**request)
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=request["TrainingJobName"], WaiterConfig=FAST
    )
    job = sm.describe_training_job(TrainingJobName=request["TrainingJobName"])
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    key = f"output/{request['TrainingJobName']}/output/model.tar.gz"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://lab2/{key}"
    s3.download_file("lab2", key, str(tmp_path / "model.tar.gz"))
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        assert json.load(tar.extractfile("roost-model.json"))["class_names"] == json.loads(
            (train.parent / "classes.json").read_text()
        )
    # the console's job page links the artifact to its place on the S3 page ("drill down ... find model.tar.gz")
    console = requests.Session()
    token = console.get(server.url + "/console/login").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    console.post(server.url + "/console/login", data={"csrf": token, "access_key_id": KEY, "secret_access_key": SECRET})
    page = console.get(server.url + f"/console/jobs/{request['TrainingJobName']}").text
    assert f"/console/s3/lab2?prefix=output%2F{request['TrainingJobName']}%2Foutput%2F&amp;highlight=" in page
    listing = console.get(server.url + f"/console/s3/lab2?prefix=output/{request['TrainingJobName']}/output/").text
    assert f'data-key="{key}"' in listing
    channel = next((server.data_dir / "jobs" / request["TrainingJobName"]).rglob("train.rec"))
    assert channel.stat().st_nlink >= 2  # a link to the store's object, not a copy
    missing = training_request(recs, tmp_path)
    missing["OutputDataConfig"]["S3OutputPath"] = "s3://lab2/output"
    missing["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://no-such-bucket/train/"
    with pytest.raises(ClientError, match="does not exist in this server's own S3 store"):
        sm.create_training_job(**missing)


def test_over_tls_uploads_carry_trailing_checksums(tmp_path):
    """Over HTTPS botocore stops signing the payload and sends aws-chunked bodies with the CRC32 in a trailer."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    srv = Server(tmp_path / "data", tls_cert=cert, tls_key=key).start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=srv.url,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            verify=str(cert),
        )
        sent = []
        s3.meta.events.register("before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers)))
        s3.create_bucket(Bucket="tls")
        s3.put_object(Bucket="tls", Key="k", Body=b"over tls")
        assert sent[0]["X-Amz-Content-SHA256"] == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        got = s3.get_object(Bucket="tls", Key="k", ChecksumMode="ENABLED")
        assert got["Body"].read() == b"over tls" and got["ChecksumCRC32"]
        data = os.urandom(6 * 1024 * 1024)
        (tmp_path / "f").write_bytes(data)
        s3.upload_file(str(tmp_path / "f"), "tls", "big", Config=SMALL_PARTS)
        assert s3.get_object(Bucket="tls", Key="big")["Body"].read() == data
        login = requests.get(srv.url + "/console/login", verify=str(cert))
        token = login.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        r = requests.post(
            srv.url + "/console/login",
            data={"csrf": token, "access_key_id": KEY, "secret_access_key": SECRET},
            cookies=login.cookies,
            verify=str(cert),
            allow_redirects=False,
        )
        assert "secure" in r.headers["set-cookie"].lower()
    finally:
        srv.stop()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_bodies_stream_through_a_bounded_server(server, tmp_path):
    """256 MB up and down: the server's memory does not grow with the object (the benchmark measures 2 GB)."""
    s3 = _s3(server)
    s3.create_bucket(Bucket="streamed")
    big = tmp_path / "big"
    with open(big, "wb") as f:
        for _ in range(256):
            f.write(os.urandom(1024 * 1024))
    before = _rss_mb(server.proc.pid)
    s3.upload_file(str(big), "streamed", "big", Config=TransferConfig(multipart_threshold=1024**3))  # one PUT
    s3.download_file("streamed", "big", str(tmp_path / "back"), Config=TransferConfig(multipart_threshold=1024**3))
    assert _rss_mb(server.proc.pid) - before < 100
    assert (tmp_path / "back").stat().st_size == big.stat().st_size


def test_a_kill_during_an_upload_leaves_no_object_and_no_temporary_file(tmp_path):
    import http.client

    srv = Server(tmp_path / "data").start()
    try:
        _s3(srv).create_bucket(Bucket="crash")
        total = 64 * 1024 * 1024
        req = AWSRequest(method="PUT", url=srv.url + "/crash/half", headers={"Content-Length": str(total)})
        req.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
        signer = S3SigV4Auth(Credentials(KEY, SECRET), "s3", "us-east-1")
        signer._modify_request_before_signing = lambda request: None  # noqa: SLF001
        req.context["timestamp"] = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        req.headers["X-Amz-Date"] = req.context["timestamp"]
        signer.add_auth(req)
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.putrequest("PUT", "/crash/half", skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{srv.port}")  # signed (botocore signs the URL's host)
        for name, value in req.headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        for _ in range(16):  # a quarter of the body, then the server is killed
            conn.send(b"x" * (1024 * 1024))
        deadline = time.time() + 10
        while not any((srv.data_dir / "s3" / "tmp").iterdir()) and time.time() < deadline:
            time.sleep(0.05)
        assert any((srv.data_dir / "s3" / "tmp").iterdir())  # the write was under way
        srv.kill()
        conn.close()
        srv.start()
        assert _code(_s3(srv).head_object, Bucket="crash", Key="half") == "404"
        assert not list((srv.data_dir / "s3" / "tmp").iterdir())
    finally:
        srv.stop()
