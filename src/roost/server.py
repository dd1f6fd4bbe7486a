"""The server, put together in one place: :func:`build` wires the database, the services, the job runner, the
tuner, the console and the HTTP app, for ``roost server`` and the tests alike.

A request's path through what it builds: the app (``roost.api.app``) checks the signature, finds the operation
in the dispatch table of every service (``roost.aws.dispatch_table``), checks the request against botocore's
model (``roost.aws.shapes``) and calls the service (``roost.training``, ``roost.tuning``, ``roost.serving``,
``roost.cloudwatch``, ``roost.storage.tags``). A training job's: ``CreateTrainingJob`` stores it; the runner
(``roost.training.runner``) picks it up, copies its channels, starts its hosts through the launcher and follows
them to the end; the tuner (``roost.tuning.tuner``) creates training jobs the same way. The console
(``roost.web``) calls the same dispatch table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from starlette.types import ASGIApp

from roost.api.app import create_app
from roost.api.auth import load_or_create_keys
from roost.api.s3 import S3App, S3Router
from roost.aws import Account, Service
from roost.cloudwatch.logs import LogService
from roost.cloudwatch.metrics import MetricsService
from roost.errors import UserError
from roost.identity import IamService, StsService
from roost.serving.endpoints import EndpointService
from roost.serving.transform import TransformJobService
from roost.storage.database import database_url, open_database, optuna_storage
from roost.storage.folder import claim, make_private
from roost.storage.objects import ObjectStore
from roost.storage.tags import TagService
from roost.storage.uri import DataRoots, use_embedded_store
from roost.training.launcher import Launcher
from roost.training.runner import JobRunner
from roost.training.service import DEFAULT_JOB_ENV_ALLOW, EnvironmentPolicy, TrainingJobService
from roost.tuning.service import TuningJobService
from roost.tuning.tuner import Tuner
from roost.web.app import create_console


@dataclass
class Settings:
    """What an operator chooses (``roost server``'s options; docs/security.md says why each limit exists)."""

    data_dir: Path
    database_url: str | None = None  # default: SQLite in data_dir
    tuning_database_url: str | None = None  # default: beside the database (docs/tuning.md)
    data_roots: Sequence[Path] = ()  # besides data_dir, the local folders jobs may read and write
    job_env_allow: Sequence[str] = ()  # Environment names beyond DEFAULT_JOB_ENV_ALLOW
    max_concurrent_jobs: int = 1
    max_active_jobs: int = 100
    max_instances_per_job: int | None = None  # default: what the launcher can run at once
    max_running_instances: int | None = None  # the same default
    stop_grace: float = 120.0
    region: str = "us-east-1"
    cluster: str | None = None  # a Ray cluster's address for the hosts of jobs
    cluster_resources: str = ""
    #: the server's URL as the cluster's nodes reach it: hosts then work in folders of their own node and read
    #: s3:// channels from the embedded store through it (no shared data folder needed; docs/distributed.md)
    cluster_server_url: str | None = None
    #: where s3:// locations live: None or "embedded" - this server's own store (unless AWS_ENDPOINT_URL_S3 is set
    #: for the server, as before it had one); "aws" - boto3's configuration; a URL - that S3-compatible store
    s3_endpoint: str | None = None
    #: served over TLS (roost server --tls-cert/--tls-key): the console's cookie is Secure
    tls: bool = False
    poll: float | None = None  # how often the runner and the tuner look for work (default: each its own)
    #: access key id -> secret; None: ROOST_ACCESS_KEY_ID/ROOST_SECRET_ACCESS_KEY, else credentials.json
    keys: dict[str, str] | None = None


@dataclass
class Server:
    """Everything :func:`build` made; :meth:`start` and :meth:`stop` are what the app's lifespan calls."""

    settings: Settings
    app: ASGIApp  # the SageMaker API, the console and S3 on one port
    runner: JobRunner
    tuner: Tuner
    training: TrainingJobService
    tuning: TuningJobService
    hosting: EndpointService
    transform: TransformJobService
    services: list[Service]
    objects: ObjectStore  # the embedded S3 store
    roots: DataRoots
    keys: dict[str, str]
    created_keys: Path | None  # the credentials file made on this start, if any
    max_instances_per_job: int
    _lock: IO[str] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.objects.sweep()  # what writes the last run did not finish left
        self.runner.start()  # first: it settles the jobs a restart interrupted, which the tuner then reads
        self.tuner.start()
        self.hosting.restore()
        self.transform.restore()

    def stop(self) -> None:
        self.tuner.shutdown()
        self.runner.shutdown()
        self.hosting.close()

    def release(self) -> None:
        """Let another server (a restart in a test) claim the data folder."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _launcher(settings: Settings, keys: dict[str, str]) -> Launcher | None:
    if not settings.cluster:
        if settings.cluster_server_url:
            raise UserError("--cluster-server-url is for hosts on a Ray cluster: give --cluster ADDRESS too")
        return None
    from roost.training.ray_cluster import RayLauncher, ServerStore, parse_resources

    store = None
    if settings.cluster_server_url:
        if settings.s3_endpoint not in (None, "embedded") or (
            settings.s3_endpoint is None and os.environ.get("AWS_ENDPOINT_URL_S3")
        ):
            raise UserError(
                "--cluster-server-url lets the nodes read this server's own S3 store; with another store "
                "(--s3-endpoint, AWS_ENDPOINT_URL_S3) the runner reads the channels itself into the shared data folder"
            )
        url = settings.cluster_server_url.rstrip("/")
        parts = urlparse(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise UserError(
                f"--cluster-server-url {settings.cluster_server_url!r}: give this server's address as the nodes "
                "reach it, e.g. http://10.0.0.5:8080"
            )
        key_id, secret = next(iter(keys.items()))
        store = ServerStore(url, key_id, secret, settings.region)
    return RayLauncher(settings.cluster, parse_resources(settings.cluster_resources), store=store)


def _choose_s3(endpoint: str | None, objects: ObjectStore) -> None:
    if endpoint in (None, "embedded") and not (endpoint is None and os.environ.get("AWS_ENDPOINT_URL_S3")):
        use_embedded_store(objects)
        return
    use_embedded_store(None)
    if endpoint not in (None, "aws", "embedded"):
        os.environ["AWS_ENDPOINT_URL_S3"] = str(endpoint)  # boto3 reads it for every s3:// of this process


def build(settings: Settings, *, launcher: Launcher | None = None, console: bool = True) -> Server:
    """The server of ``settings``: the data folder claimed (a second server on it is refused), the database
    migrated, every service, the runner and the tuner made; nothing runs until :meth:`Server.start`.
    ``launcher`` replaces the one the settings name (the tests' fake one). Raises :class:`UserError` subclasses
    for what the operator has to fix."""
    data_dir = Path(settings.data_dir)
    make_private(data_dir)
    lock = claim(data_dir)
    try:
        if settings.keys is not None:
            keys, created = dict(settings.keys), None
        else:
            pair, created = load_or_create_keys(data_dir, dict(os.environ))
            keys = {pair.access_key_id: pair.secret_access_key}
        url = database_url(data_dir, settings.database_url)
        sessions = open_database(url)
        try:
            studies = optuna_storage(url, settings.tuning_database_url)
        except ValueError as err:
            raise UserError(str(err)) from None
        roots = DataRoots([data_dir, *settings.data_roots])
        polling = {"poll": settings.poll} if settings.poll else {}
        runner = JobRunner(
            sessions,
            data_dir,
            max_concurrent=settings.max_concurrent_jobs,
            stop_grace=settings.stop_grace,
            roots=roots,
            launcher=launcher or _launcher(settings, keys),
            max_instances=settings.max_running_instances,
            **polling,
        )
        per_job = settings.max_instances_per_job or runner.max_instances
        if per_job > runner.max_instances:
            raise UserError(
                f"--max-instances-per-job {per_job} is more than the {runner.max_instances} instances that run at "
                "once (--max-running-instances): such a job would never start"
            )
        account = Account(region=settings.region)
        training = TrainingJobService(
            sessions,
            account,
            max_active_jobs=settings.max_active_jobs,
            roots=roots,
            environment=EnvironmentPolicy(DEFAULT_JOB_ENV_ALLOW + tuple(settings.job_env_allow)),
            max_instances=per_job,
        )
        tuner = Tuner(sessions, training, studies, **polling)
        tuning = TuningJobService(sessions, training, account, on_delete=tuner.forget)
        hosting = EndpointService(sessions, data_dir, account, roots, max_instances=per_job)
        transform = TransformJobService(sessions, data_dir, account, roots)
        services: list[Service] = [
            training,
            tuning,
            LogService(sessions, account),
            hosting,
            transform,
            TagService(sessions),
            MetricsService(sessions),
            StsService(account),
            IamService(account),
        ]
        server: dict[str, Any] = {}

        def on_startup() -> None:
            server["it"].start()

        def on_shutdown() -> None:
            server["it"].stop()

        objects = ObjectStore(sessions, data_dir / "s3", settings.region)
        pages = create_console(services, keys, data_dir, roots, secure_cookie=settings.tls, objects=objects)
        api = create_app(
            services, keys, on_startup=on_startup, on_shutdown=on_shutdown, console=pages if console else None
        )
        app = S3Router(api, S3App(objects, keys, settings.region))
        _choose_s3(settings.s3_endpoint, objects)
    except BaseException:
        lock.close()
        raise
    server["it"] = built = Server(
        settings=settings,
        app=app,
        runner=runner,
        tuner=tuner,
        training=training,
        tuning=tuning,
        hosting=hosting,
        transform=transform,
        services=services,
        objects=objects,
        roots=roots,
        keys=keys,
        created_keys=created,
        max_instances_per_job=per_job,
        _lock=lock,
    )
    return built
