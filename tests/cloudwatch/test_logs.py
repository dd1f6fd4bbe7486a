"""Logs as CloudWatch Logs: the filter-pattern rules, groups and streams, paging, the buffered writer."""

import pytest

from roost.aws import ServiceError
from roost.cloudwatch.logs import LogService, LogSink, matches
from roost.storage.database import open_database


def test_filter_patterns():
    assert matches("Epoch[3] Validation-accuracy=0.5", '"Validation-accuracy"')
    assert matches("a b c", "a c") and not matches("a b", "a c")
    assert not matches("Epoch[1] Train-accuracy", "Epoch -Train")
    assert (
        matches("ERROR disk", "?ERROR ?WARN")
        and matches("WARN x", "?ERROR ?WARN")
        and not matches("INFO", "?ERROR ?WARN")
    )
    assert not matches("ERROR disk", "?ERROR ?WARN -disk")


@pytest.fixture()
def sessions(database_url):
    return open_database(database_url)


def test_groups_and_streams_page_without_a_token_at_the_end(sessions):
    sink = LogSink(sessions)
    for i in range(5):
        sink.write("/aws/sagemaker/Endpoints/e1", f"AllTraffic/i-{i}", f"line {i}")
    sink.write("/aws/sagemaker/TrainingJobs", "job/algo-1-1", "Epoch[0] Validation-accuracy=0.5")
    sink.close()
    logs = LogService(sessions)
    first = logs.describe_log_streams({"logGroupName": "/aws/sagemaker/Endpoints/e1", "limit": 3})
    assert [s["logStreamName"] for s in first["logStreams"]] == ["AllTraffic/i-0", "AllTraffic/i-1", "AllTraffic/i-2"]
    rest = logs.describe_log_streams(
        {"logGroupName": "/aws/sagemaker/Endpoints/e1", "limit": 3, "nextToken": first["nextToken"]}
    )
    assert [s["logStreamName"] for s in rest["logStreams"]] == ["AllTraffic/i-3", "AllTraffic/i-4"]
    assert "nextToken" not in rest  # the SDK's log tailing loops for as long as one comes back
    latest = logs.describe_log_streams(
        {"logGroupName": "/aws/sagemaker/Endpoints/e1", "orderBy": "LastEventTime", "descending": True, "limit": 1}
    )
    assert latest["logStreams"][0]["logStreamName"] == "AllTraffic/i-4"
    assert latest["logStreams"][0]["storedBytes"] == len("line 4")

    groups = logs.describe_log_groups({})["logGroups"]
    assert [g["logGroupName"] for g in groups] == ["/aws/sagemaker/Endpoints/e1", "/aws/sagemaker/TrainingJobs"]
    assert groups[0]["logGroupArn"] == "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/e1"
    assert [
        g["logGroupName"] for g in logs.describe_log_groups({"logGroupNamePattern": "trainingjobs"})["logGroups"]
    ] == ["/aws/sagemaker/TrainingJobs"]
    page = logs.describe_log_groups({"limit": 1})
    assert len(page["logGroups"]) == 1 and "nextToken" in page
    assert "nextToken" not in logs.describe_log_groups({"limit": 1, "nextToken": page["nextToken"]})


def test_unknown_groups_streams_and_bad_combinations_are_refused(sessions):
    logs = LogService(sessions)
    with pytest.raises(ServiceError, match="log group does not exist") as err:
        logs.describe_log_streams({"logGroupName": "/aws/sagemaker/TrainingJobs"})
    assert err.value.code == "ResourceNotFoundException"
    sink = LogSink(sessions)
    sink.write("/aws/sagemaker/TrainingJobs", "job/algo-1-1", "x")
    sink.flush()
    with pytest.raises(ServiceError, match="log stream does not exist"):
        logs.get_log_events({"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamName": "other/algo-1-1"})
    with pytest.raises(ServiceError, match="LastEventTime"):
        logs.describe_log_streams(
            {"logGroupName": "/aws/sagemaker/TrainingJobs", "orderBy": "LastEventTime", "logStreamNamePrefix": "j"}
        )
    with pytest.raises(ServiceError, match="nextToken is invalid"):
        logs.filter_log_events({"logGroupName": "/aws/sagemaker/TrainingJobs", "nextToken": "garbage"})


def test_a_flood_keeps_the_newest_lines_and_says_how_many_were_dropped(sessions):
    sink = LogSink(sessions, flush_every=60, capacity=10)
    for i in range(25):
        sink.write("g", "s", f"line {i}")
    sink.close()
    lines = [e["message"] for e in LogService(sessions).filter_log_events({"logGroupName": "g"})["events"]]
    assert lines == [f"line {i}" for i in range(15, 25)] + [
        "[roost] 15 log lines dropped: the log was written faster than stored"
    ]
