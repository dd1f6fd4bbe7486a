"""The worst rows an older Roost, a migration or a past bug could leave in the database: every Describe, List and
console page still answers, and no one row breaks a page for everyone."""

from __future__ import annotations

import time

import pytest

from helpers import Server, server_sent_events
from roost.storage.database import database_url, open_database
from roost.storage.tables import Endpoint, EndpointConfig, Model, TrainingJob, TransformJob, TuningJob

from .test_app import signed_in

pytestmark = pytest.mark.slow

ACCOUNT = "arn:aws:sagemaker:us-east-1:000000000000"

#: CreateTrainingJob requests as a past bug could have stored them (the API refuses each of them today)
ODD_TRAINING_REQUESTS = {
    "odd-nulls": {
        "AlgorithmSpecification": None,
        "ResourceConfig": None,
        "InputDataConfig": [None, {"ChannelName": "train", "DataSource": None}],
        "OutputDataConfig": None,
        "HyperParameters": None,
        "StoppingCondition": None,
    },
    "odd-empty": {},
    "odd-not-an-object": ["not", "a", "request"],
    "odd-kinds": {
        "AlgorithmSpecification": "image-classification",
        "HyperParameters": {"epochs": 5},
        "Environment": "x",
        "InputDataConfig": "s3://bucket/train",
        "OutputDataConfig": {"S3OutputPath": 7},
        "ResourceConfig": {"InstanceCount": "two"},
    },
}


def _write_odd_rows(data_dir) -> None:
    sessions = open_database(database_url(data_dir))
    now = time.time()
    with sessions.begin() as s:
        for i, (name, request) in enumerate(ODD_TRAINING_REQUESTS.items()):
            s.add(
                TrainingJob(
                    name=name,
                    arn=f"{ACCOUNT}:training-job/{name}",
                    request=request,
                    status=("Failed", "Completed", "Stopped", "Failed")[i],
                    secondary_status=("Failed", "Completed", "Stopped", "Failed")[i],
                    failure_reason="x" * 5000 if i == 0 else None,
                    creation_time=now + i,
                    last_modified_time=now + i,
                    final_metrics=[{"MetricName": "validation:accuracy"}, "junk"] if i == 1 else None,
                    stop_requested=False,
                    log_stream=f"{name}/algo-1-1",
                )
            )
        s.add(
            TuningJob(
                name="odd-tuning",
                arn=f"{ACCOUNT}:hyper-parameter-tuning-job/odd-tuning",
                request={"HyperParameterTuningJobConfig": None, "TrainingJobDefinition": "x"},
                status="Failed",
                creation_time=now,
                last_modified_time=now,
                stop_requested=False,
            )
        )
        s.add(
            Model(
                name="odd-model",
                arn=f"{ACCOUNT}:model/odd-model",
                request={"PrimaryContainer": None},
                creation_time=now,
            )
        )
        s.add(
            EndpointConfig(
                name="odd-config",
                arn=f"{ACCOUNT}:endpoint-config/odd-config",
                request={"ProductionVariants": None},
                creation_time=now,
            )
        )
        s.add(
            Endpoint(
                name="odd-endpoint",
                arn=f"{ACCOUNT}:endpoint/odd-endpoint",
                config_name="no-such-config",
                status="Failed",
                creation_time=now,
                last_modified_time=now,
            )
        )
        s.add(
            TransformJob(
                name="odd-transform",
                arn=f"{ACCOUNT}:transform-job/odd-transform",
                request={"TransformInput": None},
                status="Failed",
                creation_time=now,
            )
        )
    sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("odd") / "data").start()
    _write_odd_rows(srv.data_dir)
    yield srv
    srv.stop()


def test_every_describe_and_list_answers_odd_rows(server):
    sm = server.client()
    for name in ODD_TRAINING_REQUESTS:
        job = sm.describe_training_job(TrainingJobName=name)
        assert job["TrainingJobName"] == name and job["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert {j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]} >= set(ODD_TRAINING_REQUESTS)
    sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="odd-tuning")
    sm.list_hyper_parameter_tuning_jobs()
    sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName="odd-tuning")
    sm.describe_model(ModelName="odd-model")
    sm.describe_endpoint_config(EndpointConfigName="odd-config")
    sm.describe_endpoint(EndpointName="odd-endpoint")
    sm.describe_transform_job(TransformJobName="odd-transform")
    for op in ("list_models", "list_endpoint_configs", "list_endpoints", "list_transform_jobs"):
        getattr(sm, op)()
    # and they can be deleted
    sm.delete_model(ModelName="odd-model")


PAGES = [
    "/console/jobs",
    "/console/jobs/odd-nulls",
    "/console/jobs/odd-empty",
    "/console/jobs/odd-not-an-object",
    "/console/jobs/odd-kinds",
    "/console/jobs/new?clone=odd-nulls",
    "/console/jobs/new?clone=odd-kinds",
    "/console/compare?job=odd-nulls&job=odd-empty&job=odd-kinds",
    "/console/tuning-jobs",
    "/console/tuning-jobs/odd-tuning",
    "/console/tuning-jobs/new?clone=odd-tuning",
    "/console/models",
    "/console/endpoint-configs",
    "/console/endpoints",
    "/console/endpoints/odd-endpoint",
    "/console/transform-jobs",
]


def test_every_console_page_renders_odd_rows(server):
    s, _ = signed_in(server)
    for page in PAGES:
        r = s.get(server.url + page, timeout=30)
        assert r.status_code in (200, 286), (page, r.status_code, r.text[-2000:])  # 286: htmx, stop polling
        assert "Traceback" not in r.text and "Internal" not in r.text, page


def test_live_parts_stream_odd_rows(server):
    s, _ = signed_in(server)
    for url in ("/console/jobs/events", "/console/tuning-jobs/events"):
        event, rows = next(server_sent_events(s, server.url + url, timeout=30))
        assert event == "rows" and "odd-" in rows
    events = list(server_sent_events(s, server.url + "/console/tuning-jobs/odd-tuning/events", timeout=30))
    assert [e for e, _ in events] == ["panel", "end"]
