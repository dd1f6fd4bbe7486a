"""``roost tune``: a hyperparameter tuning job on a server, from a request file or from ranges on the command line,
followed in a live table of its training jobs."""

from __future__ import annotations

import json
import re
import time

import click

from roost.cli import ui
from roost.cli.jobs import call, clients, server_options
from roost.training.requests import DEFAULT_RESOURCES, blank_definition, channel, definition_from_job

#: ``--range`` scaling suffixes and the ScalingType each means
SCALINGS = {"auto": "Auto", "linear": "Linear", "log": "Logarithmic", "reverse-log": "ReverseLogarithmic"}
_INT = re.compile(r"^[+-]?\d+$")
TERMINAL = ("Completed", "Failed", "Stopped")


def parse_range(spec: str) -> tuple[str, dict]:
    """``name=MIN:MAX[:SCALING]`` (integer when both ends are) or ``name=A,B,C`` -> (range list key, entry)."""
    name, sep, body = spec.partition("=")
    if not sep or not name or not body:
        raise click.BadParameter(f"{spec!r}: expected NAME=MIN:MAX[:SCALING] or NAME=A,B,C", param_hint="--range")
    if ":" in body:
        parts = body.split(":")
        if len(parts) not in (2, 3):
            raise click.BadParameter(f"{spec!r}: expected NAME=MIN:MAX[:SCALING]", param_hint="--range")
        low, high = parts[:2]
        scaling = SCALINGS.get(parts[2] if len(parts) == 3 else "auto")
        if scaling is None:
            raise click.BadParameter(
                f"{spec!r}: the scaling is one of {', '.join(SCALINGS)}, not {parts[2]!r}", param_hint="--range"
            )
        kind = "IntegerParameterRanges" if _INT.match(low) and _INT.match(high) else "ContinuousParameterRanges"
        return kind, {"Name": name, "MinValue": low, "MaxValue": high, "ScalingType": scaling}
    values = [v for v in body.split(",") if v]
    return "CategoricalParameterRanges", {"Name": name, "Values": values}


def request_from_options(name, strategy, ranges, max_jobs, max_parallel, early_stopping, seed, definition) -> dict:
    parameter_ranges: dict[str, list] = {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for spec in ranges:
        kind, entry = parse_range(spec)
        parameter_ranges[kind].append(entry)
    limits = {"MaxParallelTrainingJobs": max_parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    config = {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:accuracy"},
        "ResourceLimits": limits,
        "ParameterRanges": parameter_ranges,
        "TrainingJobEarlyStoppingType": early_stopping,
    }
    if seed is not None:
        config["RandomSeed"] = seed
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": definition,
    }


@click.command("tune", short_help="Run a hyperparameter tuning job on a server and follow its training jobs.")
@click.argument("request_file", required=False, type=click.File("r"))
@click.option("--name", help="HyperParameterTuningJobName (overrides the file's; default tune-<time>).")
@click.option(
    "--range",
    "ranges",
    multiple=True,
    metavar="SPEC",
    help="A range to search: NAME=MIN:MAX[:auto|linear|log|reverse-log] (integers when both ends are) or "
    "NAME=A,B,C (categorical). Repeatable.",
)
@click.option(
    "--strategy", type=click.Choice(["Bayesian", "Random", "Grid", "Hyperband"]), default="Bayesian", show_default=True
)
@click.option("--max-jobs", type=click.IntRange(min=1), help="MaxNumberOfTrainingJobs (Grid: every combination).")
@click.option("--max-parallel", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--early-stopping", type=click.Choice(["Off", "Auto"]), default="Off", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), help="RandomSeed: the same seed draws the same points.")
@click.option(
    "--from-job", metavar="TRAINING_JOB", help="Take data, resources and static hyperparameters from this training job."
)
@click.option(
    "--train", metavar="URI", help="The train channel (with --validation and --output, instead of --from-job)."
)
@click.option("--validation", metavar="URI", help="The validation channel.")
@click.option("--output", metavar="URI", help="S3OutputPath of the training jobs.")
@click.option("--instance-type", default=DEFAULT_RESOURCES["InstanceType"], show_default=True)
@click.option(
    "-H", "--hyperparameter", "static", multiple=True, metavar="KEY=VALUE", help="A static hyperparameter. Repeatable."
)
@click.option("--no-wait", is_flag=True, help="Create the tuning job and return.")
@server_options
def tune_cmd(
    request_file,
    name,
    ranges,
    strategy,
    max_jobs,
    max_parallel,
    early_stopping,
    seed,
    from_job,
    train,
    validation,
    output,
    instance_type,
    static,
    no_wait,
    endpoint_url,
    data_dir,
    region,
) -> None:
    """Create a hyperparameter tuning job and follow it until it ends.

    Either REQUEST_FILE, a CreateHyperParameterTuningJob request as JSON (what boto3 takes), or ranges on the
    command line with the training jobs' definition taken from an earlier job (--from-job) or given as
    channels and hyperparameters:

    \b
      roost tune --from-job my-job --range learning_rate=0.001:0.5:log \\
                 --range optimizer=sgd,adam,nag --range mini_batch_size=16:128 --max-jobs 12
    """
    from roost.algorithm.hyperparameters import parse_key_values

    sm, _ = clients(endpoint_url, data_dir, region)
    if request_file is not None:
        if ranges or from_job or train:
            raise click.UsageError("give either REQUEST_FILE or --range/--from-job/--train, not both")
        try:
            req = json.load(request_file)
        except json.JSONDecodeError as err:
            raise click.ClickException(f"{request_file.name}: not valid JSON ({err})") from None
    else:
        if not ranges:
            raise click.UsageError("give REQUEST_FILE, or at least one --range to search")
        tuned = {spec.partition("=")[0] for spec in ranges}
        if from_job:
            definition = definition_from_job(call(sm.describe_training_job, TrainingJobName=from_job), tuned)
        elif train and output:
            definition = blank_definition()
            definition.pop("HyperParameterTuningResourceConfig")
            definition["ResourceConfig"] = {**DEFAULT_RESOURCES, "InstanceType": instance_type}
            definition["InputDataConfig"] = [channel("train", train)] + (
                [channel("validation", validation)] if validation else []
            )
            definition["OutputDataConfig"] = {"S3OutputPath": output}
        else:
            raise click.UsageError(
                "say what the training jobs train on: --from-job JOB, or --train, --validation and --output"
            )
        try:
            definition["StaticHyperParameters"].update(parse_key_values(list(static)))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--hyperparameter") from None
        req = request_from_options(
            name or time.strftime("tune-%y%m%d-%H%M%S"),
            strategy,
            ranges,
            max_jobs,
            max_parallel,
            early_stopping,
            seed,
            definition,
        )
    if name:
        req["HyperParameterTuningJobName"] = name
    arn = call(sm.create_hyper_parameter_tuning_job, **req)["HyperParameterTuningJobArn"]
    click.echo(arn, err=True)
    if no_wait:
        return
    final = follow(sm, req["HyperParameterTuningJobName"])
    if final["HyperParameterTuningJobStatus"] == "Failed":
        raise click.ClickException(f"the tuning job failed: {final.get('FailureReason', 'no reason given')}")


def _jobs(sm, name: str) -> list[dict]:
    pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
        HyperParameterTuningJobName=name, SortBy="CreationTime", SortOrder="Ascending"
    )
    return [j for page in call(lambda: list(pages)) for j in page["TrainingJobSummaries"]]


def _table(d: dict, jobs: list[dict]):
    from rich.table import Table

    counters = d["TrainingJobStatusCounters"]
    best = (d.get("BestTrainingJob") or {}).get("TrainingJobName")
    title = (
        f"{d['HyperParameterTuningJobName']}: {d['HyperParameterTuningJobStatus']} - "
        f"{counters['Completed']} completed, {counters['InProgress']} running, {counters['Stopped']} stopped, "
        f"{counters['RetryableError'] + counters['NonRetryableError']} failed"
    )
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("training job", no_wrap=True)
    table.add_column("status")
    table.add_column("objective", justify="right")
    tuned = list(jobs[0]["TunedHyperParameters"]) if jobs else []
    for key in tuned:
        table.add_column(key, justify="right")
    for j in jobs:
        value = (j.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
        shown = "-" if value is None else f"{value:.4f}"
        table.add_row(
            ("* " if j["TrainingJobName"] == best else "  ") + j["TrainingJobName"],
            j["TrainingJobStatus"],
            shown,
            *(_short(j["TunedHyperParameters"].get(k, "")) for k in tuned),
        )
    return table


def _short(value: str) -> str:
    try:
        f = float(value)
    except ValueError:
        return value
    return value if _INT.match(value) else f"{f:.4g}"


def follow(sm, name: str, every: float = 2.0) -> dict:
    """A live table on a terminal (one line per change elsewhere) until the tuning job ends; its last description."""
    from rich.live import Live

    out = ui.out()
    seen: dict[str, tuple] = {}
    live = Live(console=out, refresh_per_second=2, transient=False) if out.is_terminal else None
    if live:
        live.start()
    try:
        while True:
            d = call(sm.describe_hyper_parameter_tuning_job, HyperParameterTuningJobName=name)
            jobs = _jobs(sm, name)
            if live:
                live.update(_table(d, jobs))
            else:
                for j in jobs:
                    value = (j.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
                    # a job's line again when its status changes or its objective arrives (a moment after it ends)
                    if seen.get(j["TrainingJobName"]) != (j["TrainingJobStatus"], value):
                        seen[j["TrainingJobName"]] = (j["TrainingJobStatus"], value)
                        tail = "" if value is None else f" objective={value:.4f}"
                        tuned = json.dumps(j["TunedHyperParameters"])
                        click.echo(f"{j['TrainingJobName']} {j['TrainingJobStatus']}{tail} {tuned}")
            if d["HyperParameterTuningJobStatus"] in TERMINAL:
                break
            time.sleep(every)
    finally:
        if live:
            live.stop()
    best = d.get("BestTrainingJob")
    if best:
        value = best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        click.echo(
            f"{d['HyperParameterTuningJobStatus']}. Best: {best['TrainingJobName']} validation:accuracy={value:.4f} "
            f"{json.dumps(best['TunedHyperParameters'])}"
        )
    else:
        click.echo(f"{d['HyperParameterTuningJobStatus']}. {d.get('FailureReason', 'No job reported the objective.')}")
    return d
