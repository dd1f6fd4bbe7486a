"""Tuning jobs in the console over HTTP: the form (ranges beside static values, errors at their rows), a tuning
job's page with counters, best job, sortable training jobs and charts, Clone, Stop."""

from __future__ import annotations

import html as html_text
import re

import pytest

from helpers import Server, server_sent_events
from roost.tuning.objective import Objective
from roost.tuning.search import SearchSpace
from roost.web.tuning import parallel_coordinates, request_from_tuning_form

from .test_app import signed_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("web-tuning") / "data").start()
    yield srv
    srv.stop()


def form(recs, tmp_path, name: str, **ranges) -> dict:
    train, val, n = recs
    data = {
        "hyperParameterTuningJobName": name,
        "hyperParameterTuningJobConfig.strategy": "Grid",
        "hyperParameterTuningJobConfig.hyperParameterTuningJobObjective.metricName": "validation:accuracy",
        "hyperParameterTuningJobConfig.hyperParameterTuningJobObjective.type": "Maximize",
        "hyperParameterTuningJobConfig.resourceLimits.maxParallelTrainingJobs": "2",
        "hyperParameterTuningJobConfig.trainingJobEarlyStoppingType": "Off",
        "trainingJobDefinition.roleArn": "arn:aws:iam::000000000000:role/console",
        "trainingJobDefinition.algorithmSpecification.trainingImage": "image-classification",
        "trainingJobDefinition.algorithmSpecification.trainingInputMode": "File",
        "trainingJobDefinition.hyperParameterTuningResourceConfig.instanceType": "ml.m5.large",
        "trainingJobDefinition.hyperParameterTuningResourceConfig.instanceCount": "1",
        "trainingJobDefinition.hyperParameterTuningResourceConfig.volumeSizeInGB": "5",
        "trainingJobDefinition.stoppingCondition.maxRuntimeInSeconds": "3600",
        "trainingJobDefinition.outputDataConfig.s3OutputPath": (tmp_path / "out").as_uri(),
    }
    for i, (channel, path) in enumerate((("train", train), ("validation", val)), 1):
        p = f"trainingJobDefinition.inputDataConfig.{i}.member."
        data[p + "channelName"] = channel
        data[p + "dataSource.s3DataSource.s3Uri"] = str(path)
        data[p + "dataSource.s3DataSource.s3DataType"] = "S3Prefix"
        data[p + "contentType"] = "application/x-recordio"
    static = {"num_classes": "3", "num_training_samples": str(n), "image_shape": "3,16,16", "num_layers": "8"}
    static |= {"epochs": "2", "mini_batch_size": "8", "learning_rate": "0.05"}
    for k, v in static.items():
        data[f"trainingJobDefinition.staticHyperParameters.{k}"] = v
        data[f"range.{k}.kind"] = "Static"
    for k, spec in ranges.items():
        data[f"range.{k}.kind"] = spec[0]
        if spec[0] == "Categorical":
            data[f"range.{k}.values"] = spec[1]
        else:
            data[f"range.{k}.min"], data[f"range.{k}.max"] = spec[1], spec[2]
            data[f"range.{k}.scaling"] = "Auto"
    return data


def test_form_rows_become_ranges_and_static_values():
    req, where = request_from_tuning_form(
        [
            ("hyperParameterTuningJobName", "t"),
            ("trainingJobDefinition.staticHyperParameters.epochs", "3"),
            ("range.epochs.kind", "Static"),
            ("trainingJobDefinition.staticHyperParameters.learning_rate", "0.1"),
            ("range.learning_rate.kind", "Continuous"),
            ("range.learning_rate.min", "0.01"),
            ("range.learning_rate.max", "0.2"),
            ("range.learning_rate.scaling", "Logarithmic"),
            ("range.optimizer.kind", "Categorical"),
            ("range.optimizer.values", "sgd, adam"),
        ]
    )
    assert req["TrainingJobDefinition"]["StaticHyperParameters"] == {"epochs": "3"}  # a tuned value is not static
    ranges = req["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "learning_rate", "MinValue": "0.01", "MaxValue": "0.2", "ScalingType": "Logarithmic"}
    ]
    assert ranges["CategoricalParameterRanges"] == [{"Name": "optimizer", "Values": ["sgd", "adam"]}]
    assert ranges["IntegerParameterRanges"] == []  # all three lists, as the SDK sends them
    assert (
        where["hyperParameterTuningJobConfig.parameterRanges.continuousParameterRanges.1"] == "range.learning_rate.kind"
    )


def test_parallel_coordinates_put_each_job_on_every_axis():
    space = SearchSpace.parse(
        {
            "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.001", "MaxValue": "0.1"}],
            "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam"]}],
        },
        {"num_classes": "2", "num_training_samples": "10"},
    )
    jobs = [
        {
            "TrainingJobName": "a",
            "TunedHyperParameters": {"learning_rate": "0.001", "optimizer": "sgd"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"Value": 0.5},
        },
        {
            "TrainingJobName": "b",
            "TunedHyperParameters": {"learning_rate": "0.1", "optimizer": "adam"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"Value": 0.9},
        },
        {"TrainingJobName": "c", "TunedHyperParameters": {"learning_rate": "0.01", "optimizer": "adam"}},
    ]
    g = parallel_coordinates(jobs, space, Objective("validation:accuracy"))
    assert [a["name"] for a in g["axes"]] == ["learning_rate", "optimizer", "objective"]
    a, b, c = g["lines"]
    assert len(a["points"].split()) == 3 and len(c["points"].split()) == 2 and c["dashed"]
    # learning_rate is searched on a log scale: 0.01 sits half way between 0.001 and 0.1
    y = [float(line["points"].split()[0].split(",")[1]) for line in (a, b, c)]
    assert abs(y[2] - (y[0] + y[1]) / 2) < 0.5
    assert b["colour"] == "#1e3a8a" and a["colour"] == "#fde725"  # the best job darkest


def test_a_tuning_job_from_the_form_to_its_page(server, recs, tmp_path):
    s, token = signed_in(server)
    page = s.get(server.url + "/console/tuning-jobs/new")
    assert page.ok and 'name="range.learning_rate.kind"' in page.text and "SageMaker suggests tuning this" in page.text

    bad = form(recs, tmp_path, "console-bad", learning_rate=("Continuous", "0.01", "2"))
    r = s.post(server.url + "/console/tuning-jobs/new", data={"csrf": token, **bad})
    assert r.status_code == 400
    error = re.search(r'id="err-range\.learning_rate\.kind"[^>]*>([^<]*)<', r.text).group(1)
    assert "learning_rate allows" in html_text.unescape(error)

    good = form(recs, tmp_path, "console-tune", optimizer=("Categorical", "sgd, adam"))
    r = s.post(server.url + "/console/tuning-jobs/new", data={"csrf": token, **good}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/tuning-jobs/console-tune", r.text
    # the page's live part comes again as it changes, and the stream ends with the tuning job
    panels = [data for event, data in server_sent_events(s, server.url + "/console/tuning-jobs/console-tune/events")]
    assert panels[-1] == "" and 'id="tuning-status">Completed<' in panels[-2], panels[-2][:3000]
    page = s.get(server.url + "/console/tuning-jobs/console-tune").text
    assert 'id="best-job-link"' in page and page.count("<polyline") == 2
    assert 'id="count-completed">2<' in page and "data-live" not in page.split('id="tuning-panel"')[1][:200]
    rows = re.findall(r'<tr data-job="([^"]+)"', page)
    assert len(rows) == 2 and all(r.startswith("console-tune-00") for r in rows)
    objective = s.get(server.url + "/console/tuning-jobs/console-tune?sort=objective&order=desc").text
    values = [float(v) for v in re.findall(r'<td class="num">(\d\.\d{4})</td>', objective)]
    assert values == sorted(values, reverse=True)

    listing = s.get(server.url + "/console/tuning-jobs").text
    assert 'data-tuning-job="console-tune"' in listing and "Grid" in listing
    clone = s.get(server.url + "/console/tuning-jobs/new?clone=console-tune").text
    assert 'value="console-tune-clone-1"' in clone
    select = re.search(r'name="range.optimizer.kind".*?</select>', clone, re.S).group(0)
    assert "<option selected>Categorical</option>" in select
    r = s.post(server.url + "/console/tuning-jobs/console-tune/stop", data={"csrf": token})
    assert r.status_code == 400 and "cannot be stopped" in r.text
