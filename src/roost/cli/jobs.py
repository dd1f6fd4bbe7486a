"""``roost jobs``: the training-job API from the command line, through boto3 as any client would."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import click

from roost.cli import ui


def _clients(ctx: click.Context):
    return clients(**ctx.obj)


def clients(endpoint_url: str, data_dir: str, region: str):
    """boto3's sagemaker and logs clients for the server at ``endpoint_url``, signed with its keys."""
    import boto3
    from botocore.config import Config

    key, secret = os.environ.get("ROOST_ACCESS_KEY_ID"), os.environ.get("ROOST_SECRET_ACCESS_KEY")
    creds = Path(data_dir) / "credentials.json"
    if not (key and secret) and creds.is_file():
        d = json.loads(creds.read_text())
        key, secret = d["aws_access_key_id"], d["aws_secret_access_key"]
    kwargs = dict(
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(retries={"max_attempts": 2}, connect_timeout=5),
    )
    if key and secret:
        kwargs.update(aws_access_key_id=key, aws_secret_access_key=secret)
    return boto3.client("sagemaker", **kwargs), boto3.client("logs", **kwargs)


def call(fn, **kwargs):
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    try:
        return fn(**kwargs)
    except ClientError as err:
        e = err.response["Error"]
        raise click.ClickException(f"{e.get('Code')}: {e.get('Message')}") from None
    except EndpointConnectionError as err:
        raise click.ClickException(
            f"cannot reach Roost at {err.kwargs.get('endpoint_url')}; start it with "
            "`roost server` or pass --endpoint-url"
        ) from None
    except NoCredentialsError:
        raise click.ClickException(
            "no credentials: set ROOST_ACCESS_KEY_ID/ROOST_SECRET_ACCESS_KEY or pass "
            "--data-dir of the server (its credentials.json)"
        ) from None


def _time(ts) -> str:
    if ts is None:
        return "-"
    if isinstance(ts, (int, float)):
        ts = dt.datetime.fromtimestamp(ts, dt.UTC)
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def dump(obj) -> str:
    return json.dumps(obj, indent=2, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))


def server_options(command):
    """``--endpoint-url``, ``--data-dir`` and ``--region``: which server a client command talks to, and how."""
    for option in reversed(
        (
            click.option(
                "--endpoint-url",
                envvar="ROOST_ENDPOINT_URL",
                default="http://127.0.0.1:8080",
                show_default=True,
                help="The Roost server.",
            ),
            click.option(
                "--data-dir",
                default="roost-data",
                show_default=True,
                type=click.Path(file_okay=False),
                help="The server's data folder, for its credentials.json (unless ROOST_ACCESS_KEY_ID is set).",
            ),
            click.option("--region", default="us-east-1", show_default=True),
        )
    ):
        command = option(command)
    return command


@click.group("jobs", short_help="Create, list, describe, stop and follow jobs on a server.")
@server_options
@click.pass_context
def jobs_cmd(ctx, endpoint_url, data_dir, region) -> None:
    """Create, list, describe, stop and follow training jobs on a Roost server."""
    ctx.obj = {"endpoint_url": endpoint_url, "data_dir": data_dir, "region": region}


@jobs_cmd.command("create")
@click.option(
    "--from-json",
    "request_file",
    required=True,
    type=click.File("r"),
    help="A CreateTrainingJob request (the training_params dict of the SageMaker examples) as JSON.",
)
@click.option("--name", help="Override TrainingJobName.")
@click.pass_context
def create(ctx, request_file, name) -> None:
    """Create a training job from a CreateTrainingJob request."""
    try:
        req = json.load(request_file)
    except json.JSONDecodeError as err:
        raise click.ClickException(f"{request_file.name}: not valid JSON ({err})") from None
    if name:
        req["TrainingJobName"] = name
    sm, _ = _clients(ctx)
    click.echo(call(sm.create_training_job, **req)["TrainingJobArn"])


@jobs_cmd.command("list")
@click.option("--status", type=click.Choice(["InProgress", "Completed", "Failed", "Stopping", "Stopped"]))
@click.option("--name-contains")
@click.option("--max", "max_items", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx, status, name_contains, max_items, as_json) -> None:
    """Jobs, newest first."""
    sm, _ = _clients(ctx)
    args = {"SortBy": "CreationTime", "SortOrder": "Descending"}
    if status:
        args["StatusEquals"] = status
    if name_contains:
        args["NameContains"] = name_contains
    pages = sm.get_paginator("list_training_jobs").paginate(**args, PaginationConfig={"MaxItems": max_items})
    jobs = [j for page in call(lambda: list(pages)) for j in page["TrainingJobSummaries"]]
    if as_json:
        click.echo(dump(jobs))
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("name", no_wrap=True, min_width=20)  # names are what users copy: never cut them
    for col in ("status", "created", "ended"):
        table.add_column(col)
    for j in jobs:
        table.add_row(
            j["TrainingJobName"], j["TrainingJobStatus"], _time(j["CreationTime"]), _time(j.get("TrainingEndTime"))
        )
    ui.out().print(table)


@jobs_cmd.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def describe(ctx, name, as_json) -> None:
    """Status, history, metrics and artifact of one job."""
    sm, _ = _clients(ctx)
    d = call(sm.describe_training_job, TrainingJobName=name)
    d.pop("ResponseMetadata", None)
    if as_json:
        click.echo(dump(d))
        return

    c = ui.out()
    c.print(f"[bold]{d['TrainingJobName']}[/]  {d['TrainingJobStatus']} - {d['SecondaryStatus']}")
    c.print(f"  arn:       {d['TrainingJobArn']}")
    c.print(f"  created:   {_time(d['CreationTime'])}   trained: {d.get('TrainingTimeInSeconds', '-')} s")
    if d.get("FailureReason"):
        c.print(f"  [red]failure:[/]   {d['FailureReason']}")
    if d.get("ModelArtifacts"):
        c.print(f"  artifact:  {d['ModelArtifacts']['S3ModelArtifacts']}")
    for m in d.get("FinalMetricDataList", []):
        c.print(f"  metric:    {m['MetricName']} = {m['Value']:g}")
    c.print("  history:")
    for t in d.get("SecondaryStatusTransitions", []):
        c.print(f"    {_time(t['StartTime'])}  {t['Status']:<20} {t.get('StatusMessage', '')}")


@jobs_cmd.command("stop")
@click.argument("name")
@click.pass_context
def stop(ctx, name) -> None:
    """Stop a job: SIGTERM to the algorithm, which keeps the model trained so far."""
    sm, _ = _clients(ctx)
    call(sm.stop_training_job, TrainingJobName=name)
    click.echo(f"stopping {name}")


@jobs_cmd.command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the job ends.")
@click.option(
    "--filter", "pattern", help="Only lines with these terms, CloudWatch-style, e.g. '\"Validation-accuracy\"'."
)
@click.pass_context
def logs(ctx, name, follow, pattern) -> None:
    """Print a job's log (its CloudWatch-style stream)."""
    from botocore.exceptions import ClientError

    from roost.cloudwatch.logs import TRAINING_GROUP as GROUP
    from roost.cloudwatch.logs import matches

    sm, cw = _clients(ctx)
    while True:
        # the stream appears when the job starts; until then, say why nothing is printed
        status = call(sm.describe_training_job, TrainingJobName=name)["TrainingJobStatus"]
        try:
            streams = cw.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
        except ClientError as err:
            if err.response["Error"].get("Code") != "ResourceNotFoundException":
                raise click.ClickException(f"{err.response['Error'].get('Code')}: {err}") from None
            streams = []  # no job has logged yet
        if streams:
            break
        if not follow or status in ("Completed", "Failed", "Stopped"):
            raise click.ClickException(f"training job {name!r} has not written a log yet (status {status})")
        time.sleep(1)
    stream = streams[0]["logStreamName"]
    token = None
    while True:
        args = {"logGroupName": GROUP, "logStreamName": stream, "startFromHead": True}
        if token:
            args["nextToken"] = token
        page = call(cw.get_log_events, **args)
        for e in page["events"]:
            if matches(e["message"], pattern):
                click.echo(e["message"])
        sys.stdout.flush()
        if page["nextForwardToken"] != token:
            token = page["nextForwardToken"]
            if page["events"]:
                continue
        if not follow:
            return
        status = call(sm.describe_training_job, TrainingJobName=name)["TrainingJobStatus"]
        if status in ("Completed", "Failed", "Stopped") and not page["events"]:
            return
        time.sleep(1)
