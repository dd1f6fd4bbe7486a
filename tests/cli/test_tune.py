"""``roost tune``: ranges on the command line, a request file, the followed table, and its errors."""

import json
import os
import subprocess
import sys

import click
import pytest

from helpers import KEY, SECRET, Server
from roost.cli.tune import parse_range


def test_ranges_on_the_command_line():
    assert parse_range("mini_batch_size=16:128") == (
        "IntegerParameterRanges",
        {"Name": "mini_batch_size", "MinValue": "16", "MaxValue": "128", "ScalingType": "Auto"},
    )
    assert parse_range("learning_rate=0.001:0.5:log")[1]["ScalingType"] == "Logarithmic"
    assert parse_range("momentum=0.5:0.999:reverse-log")[0] == "ContinuousParameterRanges"
    assert parse_range("optimizer=sgd,adam") == (
        "CategoricalParameterRanges",
        {"Name": "optimizer", "Values": ["sgd", "adam"]},
    )
    for bad in ("learning_rate", "learning_rate=0.1:0.2:cubic", "x=1:2:3:4"):
        with pytest.raises(click.BadParameter):
            parse_range(bad)


@pytest.mark.slow
def test_tune_follows_a_tuning_job_to_its_best_job(recs, tmp_path):
    srv = Server(tmp_path / "srv").start()
    try:
        env = {
            **os.environ,
            "ROOST_ACCESS_KEY_ID": KEY,
            "ROOST_SECRET_ACCESS_KEY": SECRET,
            "ROOST_ENDPOINT_URL": srv.url,
        }

        def roost(*args):
            return subprocess.run(
                [sys.executable, "-m", "roost", "tune", *map(str, args)],
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
            )

        train, val, n = recs
        common = ["--train", train, "--validation", val, "--output", (tmp_path / "out").as_uri()]
        hp = [
            "-H",
            f"num_training_samples={n}",
            "-H",
            "num_classes=3",
            "-H",
            "image_shape=3,16,16",
            "-H",
            "num_layers=8",
        ]
        hp += ["-H", "epochs=2", "-H", "mini_batch_size=8"]
        r = roost(
            "--name",
            "cli-tune",
            "--strategy",
            "Random",
            "--seed",
            "3",
            "--max-jobs",
            "2",
            "--max-parallel",
            "2",
            "--range",
            "learning_rate=0.01:0.1:log",
            "--range",
            "optimizer=sgd,adam",
            *common,
            *hp,
        )
        assert r.returncode == 0, r.stderr
        lines = r.stdout.strip().splitlines()
        assert lines[-1].startswith("Completed. Best: cli-tune-00") and "validation:accuracy=" in lines[-1]
        assert sum(" Completed objective=" in line for line in lines) == 2

        sm = srv.client()
        d = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="cli-tune")
        static = d["TrainingJobDefinition"]["StaticHyperParameters"]
        assert static["num_layers"] == "8" and "learning_rate" not in static

        # the request file: what boto3 takes, here the first job's own definition with a new name
        req = {k: d[k] for k in ("HyperParameterTuningJobConfig", "TrainingJobDefinition")}
        req["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"][0]["MaxValue"] = "3"
        (tmp_path / "req.json").write_text(json.dumps({"HyperParameterTuningJobName": "from-file", **req}))
        r = roost(tmp_path / "req.json", "--no-wait")
        assert r.returncode == 1 and "ValidationException" in r.stderr and "learning_rate allows '3.0'" in r.stderr
        r = roost("--range", "learning_rate=0.01:0.1")
        assert r.returncode == 2 and "--from-job JOB, or --train" in r.stderr
    finally:
        srv.stop()
