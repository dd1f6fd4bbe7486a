"""The workshop's own clients against Roost: the SageMaker Python SDK v2 as seed 002 uses it, the AWS CLI, and
CloudWatch's metrics in both of its wire protocols. Only endpoint URLs and credentials change."""

import json
import os
import subprocess
import sys
import time

import boto3
import pytest

from helpers import FAST, KEY, SECRET, Server

pytestmark = pytest.mark.slow  # trains and serves through real clients

_sleep, _time = time.sleep, time.time  # the real ones, before a test shortens the waits
ROLE = "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Roost - the SageMaker API and S3 on one port - the animal silhouettes in a bucket of its own store, and the
    environment clients read: AWS_ENDPOINT_URL alone points every client at both."""
    from roost.data import im2rec
    from roost.data.samples import ANIMAL_CLASSES, export_animal_shapes
    from roost.formats.lst import write_list

    tmp = tmp_path_factory.mktemp("clients")
    srv = Server(tmp / "roost").start()
    sdk_config = tmp / "sagemaker.yaml"
    sdk_config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    env = {
        "AWS_ENDPOINT_URL": srv.url,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(sdk_config),
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        for k, v in env.items():
            mp.setenv(k, v)
        export_animal_shapes(tmp / "images", 12, list(ANIMAL_CLASSES))
        split = im2rec.split_class_folders(tmp / "images", val_ratio=0.25)
        for name, entries in (("train", split.train), ("val", split.val)):
            write_list(tmp / f"{name}.lst", entries)
            im2rec.pack_list(tmp / f"{name}.lst", tmp / "images")
        boto3.client("s3").create_bucket(Bucket="bucket")  # AWS_ENDPOINT_URL: Roost's own S3
        here = os.getcwd()
        os.chdir(tmp)  # seed 002 uploads files named relative to its folder
        bucket = "bucket"

        def upload_to_s3(channel, file):  # seed 002's own function, as written
            s3 = boto3.resource("s3")
            data = open(file, "rb")
            key = channel + "/" + file
            s3.Bucket(bucket).put_object(Key=key, Body=data)

        (tmp / "cifar10_train.rec").write_bytes((tmp / "train.rec").read_bytes())
        try:
            upload_to_s3("ic-fulltraining/train", "cifar10_train.rec")
        finally:
            os.chdir(here)
        # the SDK's own upload (v2's Session.upload_data), for the other channel
        (tmp / "cifar10_val.rec").write_bytes((tmp / "val.rec").read_bytes())
        import sagemaker

        uri = sagemaker.Session(default_bucket="bucket").upload_data(
            str(tmp / "cifar10_val.rec"), bucket="bucket", key_prefix="ic-fulltraining/validation"
        )
        assert uri == "s3://bucket/ic-fulltraining/validation/cifar10_val.rec"
        yield {
            "server": srv,
            "tmp": tmp,
            "env": env,
            "train_count": len(split.train),
            "image": next((tmp / "images" / "bird").iterdir()),
        }
    srv.stop()


class _ShortWaits:
    """``time`` as the clients see it, with their polls cut to 0.5 s: each sleep moves a virtual clock on by
    what the client asked for, so a client that acts "every 30 s" (the SDK describes a job every 30 s while it
    tails its logs) acts after the same number of polls as in AWS, not after 30 real seconds."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def sleep(self, seconds: float) -> None:
        _sleep(min(seconds, 0.5))
        self.skipped += max(seconds - 0.5, 0.0)

    def time(self) -> float:
        return _time() + self.skipped

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def short_waits(monkeypatch):
    """The flows are the seeds'; only their waits are shortened (botocore's waiters sleep through ``time``)."""
    import sagemaker.session

    clock = _ShortWaits()
    monkeypatch.setattr(time, "sleep", clock.sleep)
    monkeypatch.setattr(sagemaker.session, "time", clock)
    return clock


def test_seed_002_with_the_sagemaker_sdk(stack, capsys, short_waits):
    import sagemaker
    from sagemaker.analytics import TrainingJobAnalytics
    from sagemaker.inputs import TrainingInput
    from sagemaker.serializers import IdentitySerializer

    sess = sagemaker.Session(default_bucket="bucket")
    prefix = "ic-fulltraining"
    training_image = sagemaker.image_uris.retrieve("image-classification", sess.boto_region_name, version="latest")
    ic = sagemaker.estimator.Estimator(
        training_image,
        ROLE,
        instance_count=1,
        instance_type="ml.p2.xlarge",
        volume_size=50,
        max_run=360000,
        input_mode="File",
        output_path=f"s3://bucket/{prefix}/output",
        sagemaker_session=sess,
    )
    # the seed's hyperparameters; only the data-size ones fit this small data set
    ic.set_hyperparameters(
        num_layers=18,
        image_shape="3,28,28",
        num_classes=10,
        num_training_samples=stack["train_count"],
        mini_batch_size=16,
        epochs=2,
        learning_rate=0.01,
        top_k=2,
        precision_dtype="float32",
    )
    train_data = TrainingInput(
        f"s3://bucket/{prefix}/train/",
        distribution="FullyReplicated",
        content_type="application/x-recordio",
        s3_data_type="S3Prefix",
    )
    validation_data = TrainingInput(
        f"s3://bucket/{prefix}/validation/",
        distribution="FullyReplicated",
        content_type="application/x-recordio",
        s3_data_type="S3Prefix",
    )
    ic.fit(inputs={"train": train_data, "validation": validation_data}, logs=True)
    shown = capsys.readouterr().out
    assert "Epoch[1] Validation-accuracy=" in shown and "Completed - Training job completed" in shown
    assert "num_layers 18 has no recipe for images of height 28" in shown
    job = ic.latest_training_job.name

    attached = sagemaker.estimator.Estimator.attach(job, sagemaker_session=sess)
    assert attached.model_data == f"s3://bucket/{prefix}/output/{job}/output/model.tar.gz"
    assert attached.hyperparameters()["num_layers"] == "18"

    named = TrainingJobAnalytics(job, metric_names=["validation:accuracy"], sagemaker_session=sess).dataframe()
    assert list(named["metric_name"]) == ["validation:accuracy"] * len(named) and len(named) >= 1
    everything = TrainingJobAnalytics(job, sagemaker_session=sess).dataframe()  # names from MetricDefinitions
    assert {"train:accuracy", "validation:accuracy", "train:top_k_accuracy"} <= set(everything["metric_name"])

    predictor = ic.deploy(initial_instance_count=1, instance_type="ml.c5.large")
    try:
        predictor.serializer = IdentitySerializer("image/png")
        probabilities = json.loads(predictor.predict(stack["image"].read_bytes()))
        assert len(probabilities) == 10 and abs(sum(probabilities) - 1) < 1e-4
    finally:
        predictor.delete_model()  # it reads the endpoint's configuration, which delete_endpoint removes
        predictor.delete_endpoint()

    # batch transform from the estimator, and attaching to it later as another session would
    s3 = boto3.client("s3")
    birds = sorted(stack["image"].parent.iterdir())[:2]
    for path in birds:
        s3.upload_file(str(path), "bucket", f"{prefix}/batch-in/{path.name}")
    transformer = ic.transformer(
        instance_count=1, instance_type="ml.m5.large", output_path=f"s3://bucket/{prefix}/batch-out"
    )
    transformer.transform(f"s3://bucket/{prefix}/batch-in/", content_type="image/png", wait=True, logs=False)
    again = sagemaker.transformer.Transformer.attach(transformer.latest_transform_job.name, sagemaker_session=sess)
    assert (again.model_name, again.output_path) == (transformer.model_name, f"s3://bucket/{prefix}/batch-out")
    outputs = s3.list_objects_v2(Bucket="bucket", Prefix=f"{prefix}/batch-out/")["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in outputs) == [p.name + ".out" for p in birds]


def test_tuning_with_the_sdks_hyperparameter_tuner(stack, short_waits):
    """Seed 001's "if you had more time": HyperparameterTuner over the workshop's estimator, then the best job
    deployed and the analytics dataframe, exactly as the SDK's tuning notebooks do it."""
    import sagemaker
    from sagemaker.analytics import HyperparameterTuningJobAnalytics
    from sagemaker.inputs import TrainingInput
    from sagemaker.serializers import IdentitySerializer
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner, IntegerParameter

    sess = sagemaker.Session(default_bucket="bucket")
    image = sagemaker.image_uris.retrieve("image-classification", sess.boto_region_name, version="latest")
    ic = sagemaker.estimator.Estimator(
        image,
        ROLE,
        instance_count=1,
        instance_type="ml.p3.2xlarge",
        output_path="s3://bucket/tuning/output",
        sagemaker_session=sess,
    )
    ic.set_hyperparameters(
        num_layers=8,
        image_shape="3,28,28",
        num_classes=10,
        num_training_samples=stack["train_count"],
        epochs=2,
        top_k=2,
        precision_dtype="float32",
        augmentation_type="crop",
    )
    ranges = {
        "learning_rate": ContinuousParameter(0.001, 0.1),
        "mini_batch_size": IntegerParameter(8, 16),
        "optimizer": CategoricalParameter(["sgd", "adam"]),
    }
    tuner = HyperparameterTuner(
        ic,
        "validation:accuracy",
        ranges,
        objective_type="Maximize",
        max_jobs=2,
        max_parallel_jobs=2,
        strategy="Bayesian",
        early_stopping_type="Auto",
        base_tuning_job_name="ic-tuning",
    )
    channel = dict(distribution="FullyReplicated", content_type="application/x-recordio", s3_data_type="S3Prefix")
    tuner.fit(
        {
            "train": TrainingInput("s3://bucket/ic-fulltraining/train/", **channel),
            "validation": TrainingInput("s3://bucket/ic-fulltraining/validation/", **channel),
        },
        include_cls_metadata=False,
    )
    tuner.wait()
    name = tuner.latest_tuning_job.name
    sm = boto3.client("sagemaker")
    described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert described["HyperParameterTuningJobStatus"] == "Completed", described.get("FailureReason")
    assert described["TrainingJobStatusCounters"]["Completed"] == 2
    best = tuner.best_training_job()
    assert best == described["BestTrainingJob"]["TrainingJobName"] and best.startswith(f"{name}-00")

    frame = HyperparameterTuningJobAnalytics(name, sagemaker_session=sess).dataframe()
    assert len(frame) == 2 and {"learning_rate", "mini_batch_size", "optimizer", "FinalObjectiveValue"} <= set(frame)
    assert set(frame["TrainingJobStatus"]) == {"Completed"} and frame["FinalObjectiveValue"].between(0, 1).all()
    pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=name, PaginationConfig={"PageSize": 1}
    )
    assert sorted(j["TrainingJobName"] for p in pages for j in p["TrainingJobSummaries"]) == sorted(
        frame["TrainingJobName"]
    )
    job = sm.describe_training_job(TrainingJobName=best)
    assert job["HyperParameters"]["_tuning_objective_metric"] == "validation:accuracy"
    assert job["TuningJobArn"] == described["HyperParameterTuningJobArn"]

    predictor = tuner.deploy(initial_instance_count=1, instance_type="ml.c5.large")
    try:
        predictor.serializer = IdentitySerializer("image/png")
        probabilities = json.loads(predictor.predict(stack["image"].read_bytes()))
        assert len(probabilities) == 10
    finally:
        predictor.delete_model()
        predictor.delete_endpoint()


def test_seed_003_with_boto3_as_written(stack, short_waits):
    """Seed 003's cells in order; the client finds Roost through AWS_ENDPOINT_URL alone, no code changes but
    the v1 helpers (get_image_uri, get_execution_role) that only work inside AWS."""
    import sagemaker

    role = ROLE
    bucket = "bucket"
    training_image = sagemaker.image_uris.retrieve("image-classification", boto3.Session().region_name)
    trainpath = f"s3://{bucket}/ic-fulltraining/train/"
    testpath = f"s3://{bucket}/ic-fulltraining/validation/"
    job_name = "DEMO-imageclassification-" + time.strftime("-%Y-%m-%d-%H-%M-%S", time.gmtime())
    training_params = {
        "AlgorithmSpecification": {"TrainingImage": training_image, "TrainingInputMode": "File"},
        "RoleArn": role,
        "OutputDataConfig": {"S3OutputPath": "s3://{}/sagemaker/{}/output".format(bucket, "DEMO-imageclassification-")},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.p3.16xlarge", "VolumeSizeInGB": 50},
        "TrainingJobName": job_name,
        "HyperParameters": {
            "image_shape": "3,28,28",
            "num_layers": "18",
            "num_training_samples": str(stack["train_count"]),
            "num_classes": "10",
            "mini_batch_size": "16",
            "epochs": "1",
            "learning_rate": "0.01",
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 360000},
        "InputDataConfig": [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": path,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/x-recordio",
                "CompressionType": "None",
            }
            for channel, path in (("train", trainpath), ("validation", testpath))
        ],
    }
    sm = boto3.client(service_name="sagemaker")
    sm.create_training_job(**training_params)
    assert sm.describe_training_job(TrainingJobName=job_name)["TrainingJobStatus"] == "InProgress"
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=job_name)
    training_info = sm.describe_training_job(TrainingJobName=job_name)
    assert training_info["TrainingJobStatus"] == "Completed", training_info.get("FailureReason")

    sage = boto3.Session().client(service_name="sagemaker")
    model_name = "DEMO--classification-model" + time.strftime("-%Y-%m-%d-%H-%M-%S", time.gmtime())
    info = sage.describe_training_job(TrainingJobName=job_name)
    model_data = info["ModelArtifacts"]["S3ModelArtifacts"]
    assert model_data == f"s3://bucket/sagemaker/DEMO-imageclassification-/output/{job_name}/output/model.tar.gz"
    hosting_image = sagemaker.image_uris.retrieve("image-classification", boto3.Session().region_name)
    primary_container = {"Image": hosting_image, "ModelDataUrl": model_data}
    create_model_response = sage.create_model(
        ModelName=model_name, ExecutionRoleArn=role, PrimaryContainer=primary_container
    )
    assert create_model_response["ModelArn"].endswith(f"model/{model_name.lower()}")


def _training_request(stack, name: str, output: str) -> dict:
    return {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {"TrainingImage": "image-classification", "TrainingInputMode": "File"},
        "HyperParameters": {
            "num_layers": "8",
            "image_shape": "3,28,28",
            "num_classes": "10",
            "num_training_samples": str(stack["train_count"]),
            "mini_batch_size": "16",
            "epochs": "2",
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "application/x-recordio",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/ic-fulltraining/train/"}
                },
            },
            {
                "ChannelName": "validation",
                "ContentType": "application/x-recordio",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/ic-fulltraining/validation/"}
                },
            },
        ],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.p2.xlarge", "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


@pytest.fixture(scope="module")
def finished_job(stack):
    sm = stack["server"].client()
    sm.create_training_job(**_training_request(stack, "metrics-job", "s3://bucket/metrics/output"))
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName="metrics-job", WaiterConfig=FAST)
    return "metrics-job"


def _aws(stack, *args, check=True):
    r = subprocess.run(
        [sys.executable, "-m", "awscli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **stack["env"]},
        timeout=300,
    )
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_the_aws_cli(stack, mxnet_fixtures):
    tmp = stack["tmp"]
    name = f"cli-job-{int(time.time())}"
    request = _training_request(stack, name, "s3://bucket/cli/output")
    (tmp / "request.json").write_text(json.dumps(request))
    arn = json.loads(
        _aws(stack, "sagemaker", "create-training-job", "--cli-input-json", f"file://{tmp / 'request.json'}").stdout
    )["TrainingJobArn"]
    assert arn.endswith(f"training-job/{name}")
    sm = stack["server"].client()
    sm.get_waiter("training_job_completed_or_stopped").wait(TrainingJobName=name, WaiterConfig=FAST)
    _aws(stack, "sagemaker", "wait", "training-job-completed-or-stopped", "--training-job-name", name)

    stream = json.loads(
        _aws(
            stack,
            "logs",
            "describe-log-streams",
            "--log-group-name",
            "/aws/sagemaker/TrainingJobs",
            "--log-stream-name-prefix",
            name,
        ).stdout
    )["logStreams"][0]["logStreamName"]
    events = json.loads(
        _aws(
            stack,
            "logs",
            "filter-log-events",
            "--log-group-name",
            "/aws/sagemaker/TrainingJobs",
            "--log-stream-names",
            stream,
            "--filter-pattern",
            '"Validation-accuracy"',
        ).stdout
    )["events"]
    assert len(events) == 2 and all("Validation-accuracy=" in e["message"] for e in events)

    d = sm.describe_training_job(TrainingJobName=name)
    stats = json.loads(
        _aws(
            stack,
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "/aws/sagemaker/TrainingJobs",
            "--metric-name",
            "validation:accuracy",
            "--dimensions",
            f"Name=TrainingJobName,Value={name}",
            "--start-time",
            d["TrainingStartTime"].isoformat(),
            "--end-time",
            (d["TrainingEndTime"].timestamp() + 60),
            "--period",
            "60",
            "--statistics",
            "Average",
            "Maximum",
        ).stdout
    )
    assert stats["Label"] == "validation:accuracy" and stats["Datapoints"]
    assert 0 <= stats["Datapoints"][0]["Maximum"] <= 1

    url = str(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz")
    sm.create_model(ModelName="cli-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "x", "ModelDataUrl": url})
    sm.create_endpoint_config(
        EndpointConfigName="cli-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "cli-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName="cli-endpoint", EndpointConfigName="cli-config")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="cli-endpoint", WaiterConfig=FAST)
    _aws(
        stack,
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        "cli-endpoint",
        "--content-type",
        "image/png",
        "--body",
        f"fileb://{mxnet_fixtures / 'model' / 'test_0.png'}",
        tmp / "answer.json",
    )
    assert len(json.loads((tmp / "answer.json").read_text())) == 4

    # the endpoint's own log group, one stream per instance, as SageMaker keeps it
    groups = json.loads(
        _aws(stack, "logs", "describe-log-groups", "--log-group-name-prefix", "/aws/sagemaker/Endpoints/").stdout
    )["logGroups"]
    assert "/aws/sagemaker/Endpoints/cli-endpoint" in [g["logGroupName"] for g in groups]
    loaded = json.loads(
        _aws(
            stack,
            "logs",
            "filter-log-events",
            "--log-group-name",
            "/aws/sagemaker/Endpoints/cli-endpoint",
            "--filter-pattern",
            '"Model loaded"',
        ).stdout
    )["events"]
    assert len(loaded) == 1 and loaded[0]["logStreamName"].startswith("AllTraffic/i-")


def test_cloudwatch_in_its_query_protocol_as_older_clients_speak_it(stack, finished_job):
    """botocore before 1.42.7 (and the CLIs pinned to it) send CloudWatch a form and read XML back."""
    import requests
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.parsers import create_parser
    from botocore.serialize import create_serializer

    from roost.aws.shapes import service_model

    model = service_model("cloudwatch")
    job = finished_job

    def call(operation, params):
        op = model.operation_model(operation)
        request = create_serializer("query").serialize_to_request(params, op)
        aws = AWSRequest(
            method="POST", url=stack["server"].url + "/", data=request["body"], headers=dict(request["headers"])
        )
        SigV4Auth(Credentials(KEY, SECRET), "monitoring", "us-east-1").add_auth(aws)
        r = requests.post(aws.url, data=aws.body, headers=dict(aws.headers.items()))
        parsed = create_parser("query").parse(
            {"status_code": r.status_code, "headers": r.headers, "body": r.content}, op.output_shape
        )
        return r.status_code, parsed

    status, listed = call(
        "ListMetrics",
        {"Namespace": "/aws/sagemaker/TrainingJobs", "Dimensions": [{"Name": "TrainingJobName", "Value": job}]},
    )
    assert status == 200 and {"train:accuracy", "validation:accuracy"} <= {m["MetricName"] for m in listed["Metrics"]}
    status, stats = call(
        "GetMetricStatistics",
        {
            "Namespace": "/aws/sagemaker/TrainingJobs",
            "MetricName": "validation:accuracy",
            "Dimensions": [{"Name": "TrainingJobName", "Value": job}],
            "StartTime": 0,
            "EndTime": time.time() + 60,
            "Period": 3600 * 24 * 365 * 60 // 1440 + 60,
            "Statistics": ["Average", "SampleCount"],
        },
    )
    assert status == 200 and stats["Label"] == "validation:accuracy" and stats["Datapoints"][0]["SampleCount"] >= 1
    status, error = call(
        "GetMetricStatistics", {"Namespace": "x", "MetricName": "y", "StartTime": 0, "EndTime": 60, "Period": 60}
    )
    assert status == 400 and error["Error"]["Code"] == "InvalidParameterCombination"
