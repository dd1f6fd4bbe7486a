"""Training metrics as CloudWatch has them: datapoints from log lines, statistics over periods."""

import pytest

from roost.aws import ServiceError
from roost.cloudwatch.metrics import NAMESPACE, MetricExtractor, MetricsService, final_metrics
from roost.storage.database import open_database

DEFINITIONS = [
    {"Name": "validation:accuracy", "Regex": r"Validation-accuracy=([0-9.]+)"},
    {"Name": "bad", "Regex": "("},
    {"Name": "absent", "Regex": "nothing=(\\d)"},
]
LINES = [
    (100.0, "Epoch[0] Validation-accuracy=0.5"),
    (101.0, "noise"),
    (130.0, "Epoch[1] Validation-accuracy=0.75"),
    (190.0, "Epoch[2] Validation-accuracy=nan"),  # not a datapoint: CloudWatch takes finite values only
    (200.0, "Epoch[3] Validation-accuracy=0.25"),
]


@pytest.fixture()
def sessions(database_url):
    sessions = open_database(database_url)
    extractor = MetricExtractor(DEFINITIONS)
    with sessions.begin() as s:
        for when, line in LINES:
            s.add_all(extractor.datapoints("job-a", when, line))
        s.add_all(extractor.datapoints("job-b", 100.0, "Validation-accuracy=0.9"))
    return sessions


def test_a_bad_regex_is_skipped_and_the_last_value_is_final(sessions):
    assert [name for name, _ in MetricExtractor(DEFINITIONS).patterns] == ["validation:accuracy", "absent"]
    with sessions() as s:
        got = final_metrics(s, "job-a", DEFINITIONS)
    assert got == [{"MetricName": "validation:accuracy", "Value": 0.25, "Timestamp": 200.0}]


def statistics(sessions, **extra):
    req = {
        "Namespace": NAMESPACE,
        "MetricName": "validation:accuracy",
        "Dimensions": [{"Name": "TrainingJobName", "Value": "job-a"}],
        "StartTime": 0,
        "EndTime": 600,
        "Period": 60,
        **extra,
    }
    return MetricsService(sessions).get_metric_statistics(req)["Datapoints"]


def test_statistics_per_period(sessions):
    points = statistics(sessions, Statistics=["Average", "Maximum", "SampleCount"], ExtendedStatistics=["p50"])
    assert [(p["Timestamp"], p["Average"], p["Maximum"], p["SampleCount"]) for p in points] == [
        (60, 0.5, 0.5, 1.0),
        (120, 0.75, 0.75, 1.0),
        (180, 0.25, 0.25, 1.0),
    ]
    (whole,) = statistics(sessions, Statistics=["Minimum", "Sum"], Period=600)
    assert (whole["Minimum"], whole["Sum"]) == (0.25, 1.5)
    # another job's series and other dimensions are apart
    assert statistics(sessions, Statistics=["Sum"], Dimensions=[{"Name": "Host", "Value": "job-a"}]) == []


def test_bad_requests_name_the_problem(sessions):
    with pytest.raises(ServiceError, match="Statistics or ExtendedStatistics"):
        statistics(sessions)
    with pytest.raises(ServiceError, match="exceeds the limit of 1440"):
        statistics(sessions, Statistics=["Sum"], Period=1, EndTime=100_000)
    with pytest.raises(ServiceError, match="unknown value: p1000"):
        statistics(sessions, ExtendedStatistics=["p1000"])


def test_list_metrics_names_each_series_once(sessions):
    metrics = MetricsService(sessions).list_metrics({"Namespace": NAMESPACE})["Metrics"]
    assert [(m["MetricName"], m["Dimensions"][0]["Value"]) for m in metrics] == [
        ("validation:accuracy", "job-a"),
        ("validation:accuracy", "job-b"),
    ]
