"""The training-job service without HTTP: validation, listing, limits, stop, metrics."""

import threading
import time

import pytest
from sqlalchemy import select, text

from helpers import Api, make_rec_split
from roost.aws import ServiceError
from roost.storage.database import open_database
from roost.storage.tables import SecondaryStatus, StatusTransition, TrainingJob
from roost.storage.uri import DataRoots
from roost.training.service import DEFAULT_JOB_ENV_ALLOW, EnvironmentPolicy, TrainingJobService, set_status


@pytest.fixture()
def service(database_url):
    return TrainingJobService(open_database(database_url), max_active_jobs=2)


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    return make_rec_split(tmp_path_factory.mktemp("d"), per_class=4)


def request(recs, name, **extra):
    train, val, n = recs
    req = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "OutputDataConfig": {"S3OutputPath": "file:///tmp/out"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        "HyperParameters": {"num_classes": "3", "num_training_samples": str(n), "mini_batch_size": "4"},
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(train)}}},
            {
                "ChannelName": "validation",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(val)}},
            },
        ],
    }
    req.update(extra)
    return req


def test_validation_messages_are_sagemakers(service, recs):
    """The model's rules (checked before the handler, as the server does) and the one rule it does not state."""
    api = Api(service)
    with pytest.raises(ServiceError) as err:
        api("CreateTrainingJob", request(recs, "-bad", RoleArn=None))
    assert err.value.code == "ValidationException"
    assert err.value.message.startswith("2 validation errors detected: ")
    assert "Value '-bad' at 'trainingJobName' failed to satisfy constraint: Member must satisfy" in err.value.message
    assert "Value null at 'roleArn' failed to satisfy constraint: Member must not be null" in err.value.message
    with pytest.raises(ServiceError, match="enum value set: \\[Pipe, File, FastFile\\]"):
        api("CreateTrainingJob", request(recs, "ok", AlgorithmSpecification={"TrainingInputMode": "Stream"}))
    without_data = request(recs, "ok")
    del without_data["InputDataConfig"]
    with pytest.raises(ServiceError, match="InputDataConfig is required: the image-classification algorithm"):
        api("CreateTrainingJob", without_data)


def test_limits_listing_and_stop(service, recs):
    for name in ("b-job", "a-job"):
        service.create_training_job(request(recs, name))
    with pytest.raises(ServiceError) as err:
        service.create_training_job(request(recs, "c-job"))
    assert err.value.code == "ResourceLimitExceeded"
    names = [j["TrainingJobName"] for j in service.list_training_jobs({"SortBy": "Name"})["TrainingJobSummaries"]]
    assert names == ["a-job", "b-job"]
    page = service.list_training_jobs({"MaxResults": 1, "SortBy": "CreationTime", "SortOrder": "Descending"})
    assert page["TrainingJobSummaries"][0]["TrainingJobName"] == "a-job" and "NextToken" in page
    nxt = service.list_training_jobs(
        {"MaxResults": 1, "SortBy": "CreationTime", "SortOrder": "Descending", "NextToken": page["NextToken"]}
    )
    assert nxt["TrainingJobSummaries"][0]["TrainingJobName"] == "b-job" and "NextToken" not in nxt
    assert service.list_training_jobs({"NameContains": "a-"})["TrainingJobSummaries"][0]["TrainingJobName"] == "a-job"
    service.stop_training_job({"TrainingJobName": "a-job"})
    d = service.describe_training_job({"TrainingJobName": "a-job"})
    assert d["TrainingJobStatus"] == "Stopping" and d["SecondaryStatusTransitions"][-1]["Status"] == "Stopping"
    with pytest.raises(ServiceError) as err:
        service.stop_training_job({"TrainingJobName": "zzz"})
    assert err.value.code == "ResourceNotFound"
    with pytest.raises(ServiceError, match="Invalid pagination token"):
        service.list_training_jobs({"NextToken": "garbage"})


# --------------------------------------------------------------------------- what a request may not do


def test_environment_is_an_allow_list(database_url, recs):
    service = TrainingJobService(open_database(database_url), environment=EnvironmentPolicy(DEFAULT_JOB_ENV_ALLOW))
    attack = {"PYTHONWARNINGS": "ignore::antigravity.x", "BROWSER": "/bin/sh -c 'id > marker' #%s"}
    with pytest.raises(ServiceError) as err:
        service.create_training_job(request(recs, "env", Environment=attack))
    assert err.value.code == "ValidationException"
    assert "Environment variables BROWSER, PYTHONWARNINGS not allowed" in err.value.message
    for name in ("LD_PRELOAD", "PATH", "ROOST_THREADS", "ROOST_PRETRAINED_DIR"):
        with pytest.raises(ServiceError, match=f"Environment variable {name} not allowed"):
            service.create_training_job(request(recs, "env", Environment={name: "x"}))
    service.create_training_job(request(recs, "env", Environment={"CUDA_VISIBLE_DEVICES": "0", "SM_HOSTS": "[]"}))
    service.create_training_job(request(recs, "plan", Environment={"ROOST_PROCESSES_PER_HOST": "cores"}))
    service.create_training_job(request(recs, "math", Environment={"ROOST_FLOAT32_MATH": "bf16"}))
    with pytest.raises(ServiceError, match="ROOST_FLOAT32_MATH='fast': give one of ieee, bf16"):
        service.create_training_job(request(recs, "math2", Environment={"ROOST_FLOAT32_MATH": "fast"}))
    for plan in ("0", "many", "99999"):
        with pytest.raises(ServiceError, match="ROOST_PROCESSES_PER_HOST=.*give a number of processes per host"):
            service.create_training_job(request(recs, "plan2", Environment={"ROOST_PROCESSES_PER_HOST": plan}))
    extended = TrainingJobService(
        open_database(database_url), environment=EnvironmentPolicy((*DEFAULT_JOB_ENV_ALLOW, "MY_APP_*"))
    )
    extended.create_training_job(request(recs, "env2", Environment={"MY_APP_MODE": "fast"}))


def test_a_job_reads_and_writes_only_below_the_data_roots(database_url, recs, tmp_path):
    train, val, _ = recs
    service = TrainingJobService(open_database(database_url), roots=DataRoots([train.parent, tmp_path]))
    out = {"S3OutputPath": (tmp_path / "out").as_uri()}
    for uri in (
        "file:///etc",
        "/etc/passwd",
        f"{train.parent}/../../../../etc",
        f"file://{train.parent}/../../../../etc",
    ):
        req = request(recs, "escape", OutputDataConfig=out)
        req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = uri
        with pytest.raises(ServiceError, match="is outside the folders this server reads and writes"):
            service.create_training_job(req)
    link = tmp_path / "innocent"
    link.symlink_to("/etc")
    req = request(recs, "escape", OutputDataConfig=out)
    req["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = str(link)
    with pytest.raises(ServiceError, match="is outside the folders"):
        service.create_training_job(req)
    with pytest.raises(ServiceError, match="OutputDataConfig location /etc/cron.d is outside"):
        service.create_training_job(request(recs, "escape", OutputDataConfig={"S3OutputPath": "/etc/cron.d"}))
    service.create_training_job(request(recs, "inside", OutputDataConfig=out))


def test_two_creates_of_one_name_at_once_answer_resource_in_use(database_url, recs):
    service = TrainingJobService(open_database(database_url), max_active_jobs=100)
    results: list = []

    def create() -> None:
        try:
            results.append(service.create_training_job(request(recs, "racy")))
        except ServiceError as err:
            results.append(err.code)

    for _ in range(5):
        threads = [threading.Thread(target=create) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    codes = [r for r in results if isinstance(r, str)]
    assert len(results) == 20 and len(codes) == 19 and set(codes) == {"ResourceInUse"}


def _scalar(sessions, query):
    with sessions() as s:
        return s.execute(query).scalar()


def test_a_status_change_takes_the_jobs_row_before_its_transitions(database_url, recs):
    """One lock order for a job's rows, the job's first: the runner's change of step and a stop (a tuning job
    ending its trials) took them in opposite orders, and PostgreSQL broke the deadlock by failing one of them,
    which failed the tuning job."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no row locks: a writer holds the whole database")
    sessions = open_database(database_url)
    TrainingJobService(sessions, max_active_jobs=10).create_training_job(request(recs, "locked"))
    with sessions.begin() as s:
        set_status(s, s.get(TrainingJob, "locked"), None, SecondaryStatus.STARTING, "Starting the training job")
    holder = sessions()
    holder.execute(select(TrainingJob).where(TrainingJob.name == "locked").with_for_update())  # as a stop holds it
    done = threading.Event()

    def change_step() -> None:  # as the runner does
        with sessions.begin() as s:
            set_status(s, s.get(TrainingJob, "locked"), None, SecondaryStatus.TRAINING, "Training")
        done.set()

    worker = threading.Thread(target=change_step)
    worker.start()
    try:
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        deadline = time.monotonic() + 30
        while _scalar(sessions, text(waiting)) == 0:  # a new transaction each time: the view is a snapshot
            assert time.monotonic() < deadline and not done.is_set(), "the step change never waited for the job's row"
            time.sleep(0.05)
        # it waits for the job's row holding none of the job's transitions, so the holder can still change them
        probe = sessions()
        try:
            rows = probe.execute(
                select(StatusTransition).where(StatusTransition.job_name == "locked").with_for_update(nowait=True)
            ).all()
            assert rows
        finally:
            probe.rollback()
            probe.close()
    finally:
        holder.rollback()
        holder.close()
        worker.join(30)
    assert done.is_set()
