"""The serving container contract over HTTP: /ping, /invocations, bad requests."""

import base64
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import requests

from helpers import free_port

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


@pytest.fixture(scope="module")
def served(mxnet_fixtures, tmp_path_factory):
    """`roost container serve` on an /opt/ml folder holding an unpacked SageMaker artifact."""
    root = tmp_path_factory.mktemp("opt_ml")
    with tarfile.open(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz") as tar:
        tar.extractall(root / "model", filter="data")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", "container", "serve", "--root", str(root), "--port", str(port)],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(url + "/ping", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        raise RuntimeError(proc.stderr.read().decode())
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def test_container_contract(served, mxnet_fixtures):
    folder = mxnet_fixtures / "model"
    expected = json.loads((folder / "resnet20_3x28x28" / "predictions.json").read_text())["probabilities"]
    img = (folder / "test_3.png").read_bytes()
    r = requests.post(served + "/invocations", data=img, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    np.testing.assert_allclose(r.json(), expected["test_3.png"], atol=1e-4)
    r = requests.post(
        served + "/invocations",
        data=img,
        headers={"Content-Type": "application/x-image", "Accept": "application/jsonlines"},
    )
    assert r.status_code == 200 and list(json.loads(r.text.strip())) == ["prediction"]
    r = requests.post(
        served + "/invocations",
        data=img,
        headers={"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "top_k=2,class_names=true"},
    )
    body = r.json()
    assert [t["class"] for t in body["top_k"]] == list(np.argsort(expected["test_3.png"])[::-1][:2])
    several = {"instances": [base64.b64encode((folder / f"test_{i}.png").read_bytes()).decode() for i in range(3)]}
    r = requests.post(served + "/invocations", json=several)
    assert r.status_code == 200 and len(r.json()) == 3
    np.testing.assert_allclose(r.json()[1]["prediction"], expected["test_1.png"], atol=1e-4)


@pytest.mark.parametrize(
    "body,ctype,status,message",
    [
        (b"\x89PNG broken", "image/png", 400, "cannot be decoded"),
        (b"x", "text/csv", 415, "unsupported content type"),
        (b"\0" * (6 * 1024 * 1024 + 1), "image/png", 413, "the limit is 6291456 bytes"),
        (b'{"instances": 3}', "application/json", 400, "instances"),
    ],
)
def test_container_rejects_bad_requests(served, body, ctype, status, message):
    r = requests.post(served + "/invocations", data=body, headers={"Content-Type": ctype})
    assert r.status_code == status and message in r.json()["error"]
    assert requests.get(served + "/ping").status_code == 200  # the worker is still up


def test_bodies_are_bounded_before_they_are_read(served):
    """A declared length above 6 MB is refused at once; a body without a length stops at the limit."""
    import http.client
    from urllib.parse import urlsplit

    host, port = urlsplit(served).hostname, urlsplit(served).port
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.putrequest("POST", "/invocations")
    conn.putheader("Content-Type", "image/png")
    conn.putheader("Content-Length", str(200 * 1024 * 1024))
    conn.endheaders()  # and never send the 200 MB
    r = conn.getresponse()
    assert r.status == 413 and "the limit is 6291456 bytes" in json.loads(r.read())["error"]
    conn.close()

    def chunks():
        for _ in range(100):
            yield b"\0" * (1024 * 1024)

    r = requests.post(served + "/invocations", data=chunks(), headers={"Content-Type": "image/png"})
    assert r.status_code == 413 and "larger than the limit of 6291456 bytes" in r.json()["error"]
    assert requests.get(served + "/openapi.json").status_code == 404
