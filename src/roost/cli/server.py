"""``roost server``: the SageMaker-compatible API with its job runner."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("server", short_help="Serve SageMaker's training-job and hosting API for boto3.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data-dir",
    default="roost-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Jobs, their files and the SQLite database.",
)
@click.option(
    "--database-url",
    envvar="ROOST_DATABASE_URL",
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/roost (default: SQLite in --data-dir).",
)
@click.option(
    "--tuning-database-url",
    envvar="ROOST_TUNING_DATABASE_URL",
    help="SQLAlchemy URL of Optuna's tables for tuning jobs (default: optuna.db beside SQLite's file, or the "
    "optuna schema of the PostgreSQL database).",
)
@click.option(
    "--max-concurrent-jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Jobs that train at once; the rest wait their turn.",
)
@click.option(
    "--stop-grace",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between SIGTERM and SIGKILL when a job is stopped (SageMaker: 120).",
)
@click.option(
    "--max-active-jobs",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Jobs in progress (running or waiting) beyond which CreateTrainingJob answers ResourceLimitExceeded.",
)
@click.option(
    "--max-instances-per-job",
    type=click.IntRange(min=1),
    help="Instances (hosts) one training job, or endpoint, may ask for; more is refused with ResourceLimitExceeded "
    "[default: what this machine, or the cluster, can run at once].",
)
@click.option(
    "--max-running-instances",
    type=click.IntRange(min=1),
    help="Hosts of all training jobs together that run at once; a job that does not fit waits, saying so in its "
    "status [default: what this machine, or the cluster, can run: one per GiB of memory beyond the first, at most "
    "4 per core].",
)
@click.option(
    "--s3-endpoint",
    metavar="URL|aws|embedded",
    help="Where s3:// channels, outputs and models live: this server's own S3 store (embedded; the default, "
    "unless AWS_ENDPOINT_URL_S3 is set for the server), AWS S3 (aws, with the server's AWS credentials), or the "
    "S3-compatible store at URL (MinIO, ...).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve HTTPS with this certificate (PEM); with --tls-key. Clients then send S3 uploads with trailing "
    "checksums, and the console's cookie is Secure.",
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The certificate's key.")
@click.option("--region", default="us-east-1", show_default=True, help="Region written into ARNs.")
@click.option(
    "--data-root",
    "data_roots",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A local folder jobs, models and batch transforms may read and write (local paths and file:// URIs); "
    "repeatable. The data folder is always one. Nothing outside them is touched.",
)
@click.option(
    "--job-env-allow",
    multiple=True,
    metavar="NAME",
    help="Also let CreateTrainingJob's Environment set NAME (or every name starting so, with a trailing *). "
    "Repeatable; see docs/security.md for what is allowed by default and why.",
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Run each job's hosts on a Ray cluster instead of local processes: ray://HOST:PORT, or auto for the "
    "cluster this machine belongs to (needs pip install 'roost[ray]'; see docs/distributed.md).",
)
@click.option(
    "--cluster-resources",
    metavar="SPEC",
    default="",
    help="CPUs:GPUs a host of an instance type asks the cluster for, overriding Roost's table, e.g. "
    "ml.p3.2xlarge=8:1,ml.m5.large=2:0.",
)
@click.option(
    "--cluster-server-url",
    metavar="URL",
    help="This server's URL as the cluster's nodes reach it, e.g. http://10.0.0.5:8080. With it the nodes need "
    "no shared data folder: each host works in a folder of its own node, reads its s3:// channels from this "
    "server's S3 store through the URL, and sends its model and checkpoints back.",
)
def server_cmd(
    host,
    port,
    data_dir,
    database_url,
    tuning_database_url,
    max_concurrent_jobs,
    stop_grace,
    max_active_jobs,
    max_instances_per_job,
    max_running_instances,
    s3_endpoint,
    tls_cert,
    tls_key,
    region,
    data_roots,
    job_env_allow,
    cluster,
    cluster_resources,
    cluster_server_url,
) -> None:
    """Serve SageMaker's training-job API: boto3 with endpoint_url works against it.

    A browser at the same address gets the console (GET /, or /console); it signs in
    with the same access key pair. Credentials come from ROOST_ACCESS_KEY_ID / ROOST_SECRET_ACCESS_KEY, else from
    DATA_DIR/credentials.json (created on first start). Local data is read and
    written only below DATA_DIR and the --data-root folders.
    """
    import uvicorn

    from roost.server import Settings, build

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")

    server = build(
        Settings(
            data_dir=data_dir,
            database_url=database_url,
            tuning_database_url=tuning_database_url,
            data_roots=data_roots,
            job_env_allow=job_env_allow,
            max_concurrent_jobs=max_concurrent_jobs,
            max_active_jobs=max_active_jobs,
            max_instances_per_job=max_instances_per_job,
            max_running_instances=max_running_instances,
            stop_grace=stop_grace,
            region=region,
            cluster=cluster,
            cluster_resources=cluster_resources,
            cluster_server_url=cluster_server_url,
            s3_endpoint=s3_endpoint,
            tls=bool(tls_cert),
        )
    )
    if server.created_keys:
        key = next(iter(server.keys))
        click.echo(f"Created an access key pair in {server.created_keys} (aws_access_key_id {key}).", err=True)
    scheme = "https" if tls_cert else "http"
    click.echo(
        f"Roost serves the SageMaker API and S3 at {scheme}://{host}:{port} and its console at "
        f"{scheme}://{host}:{port}/console (data in {data_dir}; local data below {server.roots}; at most "
        f"{server.max_instances_per_job} instances a job, {server.runner.max_instances} at once)",
        err=True,
    )
    uvicorn.run(
        server.app,
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
