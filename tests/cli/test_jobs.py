"""``roost jobs`` and ``roost predict <job name>`` against a running server."""

import os
import subprocess
import sys

import pytest

from helpers import FAST, KEY, SECRET, Server, training_request

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("srv")).start()
    yield srv
    srv.stop()


def test_jobs_command_line(server, recs, tmp_path):
    import json

    env = {
        **os.environ,
        "ROOST_ACCESS_KEY_ID": KEY,
        "ROOST_SECRET_ACCESS_KEY": SECRET,
        "ROOST_ENDPOINT_URL": server.url,
    }

    def roost(*args):
        return subprocess.run([sys.executable, "-m", "roost", "jobs", *args], capture_output=True, text=True, env=env)

    p = training_request(recs, tmp_path, epochs=2)
    request = tmp_path / "request.json"
    request.write_text(json.dumps(p))
    r = roost("create", "--from-json", str(request))
    assert r.returncode == 0 and r.stdout.strip().endswith(p["TrainingJobName"].lower()), r.stderr
    r = roost("logs", p["TrainingJobName"], "--follow", "--filter", '"Validation-accuracy"')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and all("Validation-accuracy=" in line for line in lines)
    r = roost("describe", p["TrainingJobName"])
    assert r.returncode == 0 and "Completed" in r.stdout and "validation:accuracy" in r.stdout
    r = roost("list", "--json")
    assert p["TrainingJobName"] in [j["TrainingJobName"] for j in json.loads(r.stdout)]
    assert p["TrainingJobName"] in roost("list").stdout
    r = roost("stop", "no-such-job")
    assert r.returncode == 1 and "ResourceNotFound: Training job no-such-job does not exist." in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "roost", "jobs", "--endpoint-url", "http://127.0.0.1:9", "list"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 1 and "cannot reach Roost" in r.stderr


def test_predict_by_training_job_name(server, recs, tmp_path):
    sm = server.client()
    p = training_request(recs, tmp_path, epochs=1)
    sm.create_training_job(**p)
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=p["TrainingJobName"], WaiterConfig=FAST)
    import cv2
    import numpy as np

    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.full((16, 16, 3), 200, np.uint8))
    env = {
        **os.environ,
        "ROOST_ACCESS_KEY_ID": KEY,
        "ROOST_SECRET_ACCESS_KEY": SECRET,
        "ROOST_ENDPOINT_URL": server.url,
    }
    r = subprocess.run(
        [sys.executable, "-m", "roost", "predict", p["TrainingJobName"], str(img), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    row = __import__("json").loads(r.stdout)
    assert len(row["probabilities"]) == 3 and abs(sum(row["probabilities"]) - 1) < 1e-5
    # the channels are .rec files with a classes.json beside them: it travelled with them, so names stand in for ids
    names = __import__("json").loads((recs[0].parent / "classes.json").read_text())
    assert row["top_k"][0]["label"] in names
