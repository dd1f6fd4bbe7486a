"""Runs training jobs: each in its own process on an ``/opt/ml``-style folder, a few at a time.

For every job the runner downloads the channels (local paths, ``file://``,
``s3://``), writes SageMaker's config files, starts the algorithm's container
entry point, streams its output into the job's log, enforces
``StopTrainingJob`` (SIGTERM, then SIGKILL after a grace period) and
``MaxRuntimeInSeconds``, uploads ``model.tar.gz`` to
``S3OutputPath/<job>/output/`` and records every status change. Jobs beyond
``max_concurrent`` wait their turn.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from roost.algorithm.layout import FAILURE_LIMIT, JobLayout, ResourceConfig
from roost.cloudwatch.logs import TRAINING_GROUP, open_stream
from roost.cloudwatch.metrics import MetricExtractor, final_metrics
from roost.formats.artifact import pack_model_dir
from roost.storage.database import fetch
from roost.storage.tables import LogEvent, MetricDatum, SecondaryStatus, TrainingJob, TrainingJobStatus
from roost.storage.uri import DataRoots, Location, StorageError, download, exists, sync_folder, upload
from roost.system import THREADS_ENV, available_cores, free_port, gpus_for_hosts, visible_gpus
from roost.training.launcher import NODE_LOST, Fetch, JobProcess, Launcher, LocalProcesses
from roost.training.requests import TrainingRequest
from roost.training.service import instance_count, metric_definitions, set_status, stored_request

log = logging.getLogger(__name__)

Status, Secondary = TrainingJobStatus, SecondaryStatus

#: the server's own secrets, which its jobs never see (S3 is the runner's business, not the algorithm's)
PRIVATE_ENV = (
    "ROOST_ACCESS_KEY_ID",
    "ROOST_SECRET_ACCESS_KEY",
    "ROOST_DATABASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)


#: a job's /opt/ml tree below its folder, and the archive the runner packs beside it
OPT_ML = "opt_ml"
MODEL_ARCHIVE = "model.tar.gz"
#: how often a job whose cluster node was lost is restarted from its checkpoint before it fails
MAX_NODE_RESTARTS = 3
#: how often a running job's checkpoint folder is mirrored to CheckpointConfig.S3Uri
CHECKPOINT_SYNC_SECONDS = 5.0


def jobs_folder(data_dir: Path) -> Path:
    """Where a server keeps each training job's files: ``<name>/opt_ml``, ``training.log``, ``model.tar.gz``."""
    return Path(data_dir) / "jobs"


def main_layout(data_dir: Path, name: str) -> JobLayout:
    """The first host's ``/opt/ml`` tree of job ``name``: where its model, metrics and checkpoints are."""
    return JobLayout(jobs_folder(data_dir) / name / OPT_ML)


def packed_model(layout: JobLayout) -> Path:
    """The ``model.tar.gz`` the runner packs beside the first host's ``/opt/ml`` tree."""
    return layout.root.parent / MODEL_ARCHIVE


def job_environment(request_env: dict[str, str], name: str, arn: str, threads: int) -> dict[str, str]:
    """The server's environment without its secrets, the job's ``Environment`` (checked when it was created) and
    what SageMaker sets."""
    base = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    return {**base, **request_env, "TRAINING_JOB_NAME": name, "TRAINING_JOB_ARN": arn, THREADS_ENV: str(threads)}


@dataclass
class Host:
    """One instance of a job: ``algo-<n>``, its own folder, ``/opt/ml`` tree and log stream."""

    name: str
    index: int  # 0-based; the first host is the main one
    folder: Path  # the job's folder for the first host (so one-host jobs keep their layout), else <job>/algo-<n>
    layout: JobLayout
    stream: str
    proc: JobProcess | None = None


def job_hosts(job_dir: Path, count: int, first_stream: str) -> list[Host]:
    """``algo-1`` ... ``algo-<count>``; streams ``<job>/algo-<n>-<epoch seconds>`` as SageMaker names them."""
    hosts = []
    for i in range(count):
        name = f"algo-{i + 1}"
        folder = job_dir if i == 0 else job_dir / name
        stream = first_stream if i == 0 else first_stream.replace("/algo-1-", f"/{name}-", 1)
        hosts.append(Host(name, i, folder, JobLayout(folder / OPT_ML), stream))
    return hosts


class HostProcesses:
    """The processes of a job's hosts, ended together (the scheduler's shutdown kills them all)."""

    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = hosts

    def kill(self) -> None:
        for h in self.hosts:
            if h.proc is not None:
                h.proc.kill()


class JobRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        data_dir: Path,
        *,
        max_concurrent: int = 1,
        stop_grace: float = 120.0,
        poll: float = 0.5,
        launcher: Launcher | None = None,
        roots: DataRoots | None = None,
        max_instances: int | None = None,
    ) -> None:
        self.sessions = sessions
        self.jobs_dir = jobs_folder(data_dir)
        self.max_concurrent = max(1, max_concurrent)
        self.stop_grace = stop_grace
        self.poll = poll
        self.launcher: Launcher = launcher or LocalProcesses()
        #: hosts that run at once, over all jobs (roost server --max-running-instances): a job waits for its own
        self.max_instances = max_instances or self.launcher.capacity()
        self.instances: dict[str, int] = {}  # the hosts of each running job
        self.roots = roots  # checked again when data move: a link may have changed since the job was created
        self.running: dict[str, threading.Thread] = {}
        self.processes: dict[str, HostProcesses] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._schedule, name="roost-scheduler", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop scheduling and end running processes; their jobs are settled by ``recover`` at the next start."""
        self._stop.set()
        with self._lock:
            procs = list(self.processes.values())
        for p in procs:
            p.kill()
        if self._thread:
            self._thread.join(timeout=5)

    def recover(self) -> None:
        """After a restart: jobs that were running resume from their checkpoints, or fail saying why."""
        with self.sessions.begin() as s:
            for job in s.scalars(
                select(TrainingJob).where(TrainingJob.status.in_((Status.IN_PROGRESS, Status.STOPPING)))
            ).all():
                spec = TrainingRequest.of(job.request, job.name)
                for host in job_hosts(self.jobs_dir / job.name, spec.instance_count, job.log_stream):
                    self.launcher.reap(host.folder)
                if job.status == Status.STOPPING:
                    set_status(
                        s,
                        job,
                        Status.STOPPED,
                        Secondary.STOPPED,
                        "Training job stopped (the Roost server restarted while it was stopping)",
                    )
                    job.training_end_time = job.training_end_time or time.time()
                elif spec.resumable and job.training_start_time:
                    set_status(
                        s,
                        job,
                        Status.IN_PROGRESS,
                        Secondary.RESTARTING,
                        "The Roost server restarted; the job resumes from its last checkpoint",
                    )
                elif job.training_start_time or job.secondary_status != Secondary.STARTING:
                    job.failure_reason = (
                        "InternalServerError: the Roost server stopped while this job was running, "
                        "and the job has no CheckpointConfig to resume from. Create it again "
                        "(with CheckpointConfig to make it resumable)."
                    )
                    job.training_end_time = time.time()
                    set_status(s, job, Status.FAILED, Secondary.FAILED, "Training job failed")

    # ------------------------------------------------------------------ scheduling

    def _schedule(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the scheduler must outlive any one bad tick
                log.exception("scheduler tick failed")
            self._stop.wait(self.poll)

    def _tick(self) -> None:
        with self._lock:
            for name in [n for n, t in self.running.items() if not t.is_alive()]:
                del self.running[name]
                self.instances.pop(name, None)
            free = self.max_concurrent - len(self.running)
            in_use = sum(self.instances.values())
        start: list[tuple[str, int]] = []
        with self.sessions.begin() as s:
            waiting = s.scalars(
                select(TrainingJob).where(TrainingJob.status == Status.IN_PROGRESS).order_by(TrainingJob.creation_time)
            ).all()
            # first come, first served: a job waits for its hosts, and the jobs behind it wait behind it
            blocked = False
            for job in (j for j in waiting if j.name not in self.running):
                hosts = instance_count(stored_request(job.request))
                if hosts > self.max_instances:  # accepted under a higher limit, before a restart
                    job.failure_reason = (
                        f"ResourceLimitExceeded: the job needs {hosts} instances; this server runs at most "
                        f"{self.max_instances} at once (roost server --max-running-instances)"
                    )
                    job.training_end_time = time.time()
                    set_status(s, job, Status.FAILED, Secondary.FAILED, "Training job failed")
                    continue
                if not blocked and len(start) < free and in_use + hosts <= self.max_instances:
                    start.append((job.name, hosts))
                    in_use += hosts
                    continue
                if not blocked and len(start) < free:
                    blocked = True
                    message = (
                        f"Waiting for {hosts} instance(s): {in_use} of the {self.max_instances} this server runs "
                        "at once are in use"
                    )
                else:
                    message = f"Waiting for a free slot ({self.max_concurrent} job(s) run at a time)"
                if job.secondary_status == Secondary.STARTING:
                    set_status(s, job, None, Secondary.STARTING, message)
            # a job stopped before it had a slot has nothing to stop: it ends at once and frees its place
            for job in s.scalars(select(TrainingJob).where(TrainingJob.status == Status.STOPPING)).all():
                if job.name not in self.running:
                    job.training_end_time = time.time()
                    set_status(s, job, Status.STOPPED, Secondary.STOPPED, "Training job stopped")
        for name, hosts in start:
            t = threading.Thread(target=self._run_safely, args=(name,), name=f"job-{name}", daemon=True)
            with self._lock:
                self.running[name] = t
                self.instances[name] = hosts
            t.start()

    # ------------------------------------------------------------------ one job

    def _run_safely(self, name: str) -> None:
        try:
            self._run(name)
        except Exception as err:  # noqa: BLE001 - whatever happens, the job must end with a reason
            log.exception("job %s failed in the runner", name)
            reason = f"ClientError: {err}" if isinstance(err, StorageError) else f"InternalServerError: {err}"
            self._finish(name, Status.FAILED, Secondary.FAILED, "Training job failed", failure=reason)
        finally:
            with self._lock:
                self.processes.pop(name, None)

    def _run(self, name: str) -> None:
        job_dir = self.jobs_dir / name
        with self.sessions.begin() as s:
            job = fetch(s, TrainingJob, name)
            if job.status != Status.IN_PROGRESS:  # stopped while it waited
                return
            req, arn = TrainingRequest.of(job.request, job.name), job.arn
            hosts = job_hosts(job_dir, req.instance_count, job.log_stream)
            resuming = job.secondary_status == Secondary.RESTARTING
            set_status(s, job, None, Secondary.STARTING, "Preparing the instances for training")
        self._prepare(req, hosts, resuming)
        if self._stop.is_set():
            return  # the server went down while the data came: recover() settles the job at the next start
        with self.sessions.begin() as s:
            job = fetch(s, TrainingJob, name)
            if job.stop_requested:  # stopped while its data came: nothing was trained
                job.training_end_time = time.time()
                set_status(s, job, Status.STOPPED, Secondary.STOPPED, "Training job stopped")
                return
            set_status(s, job, None, Secondary.TRAINING, "Training image download completed. Training in progress.")
            job.training_start_time = job.training_start_time or time.time()
            started = job.training_start_time
        # the hosts of a job share this machine's cores; they meet on loopback (SageMaker: the first host, 7777)
        threads = max(1, available_cores() // self.max_concurrent // len(hosts))
        env = job_environment(dict(req.environment), name, arn, threads)
        if len(hosts) > 1:
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        group = HostProcesses(hosts)
        with self._lock:
            self.processes[name] = group
        # hosts sharing this machine share its GPUs, each its own (CUDA_VISIBLE_DEVICES)
        devices = gpus_for_hosts(visible_gpus(), len(hosts)) if len(hosts) > 1 else [None]
        restarts = 0
        while True:
            for host, device in zip(hosts, devices, strict=True):
                host_env = env if device is None else {**env, "CUDA_VISIBLE_DEVICES": device}
                channels = self._fetch(req, host, len(hosts)) if self.launcher.stages_data else []
                host.proc = self.launcher.launch(host.folder, host.layout.root, host_env, channels)
            done = threading.Event()
            syncer = threading.Thread(target=self._sync_checkpoints, args=(req, hosts[0], done), daemon=True)
            syncer.start()
            rc, stopped_by, failed = self._watch(name, req, hosts, started)
            done.set()
            syncer.join(timeout=60)
            lost = failed is not None and rc == NODE_LOST and stopped_by is None
            if not (lost and req.resumable and restarts < MAX_NODE_RESTARTS):
                break
            restarts += 1
            assert failed is not None
            with self.sessions.begin() as s:
                set_status(
                    s,
                    fetch(s, TrainingJob, name),
                    None,
                    Secondary.RESTARTING,
                    f"The node of {failed.name} was lost; restarting from the last checkpoint on the nodes that "
                    f"remain (restart {restarts} of {MAX_NODE_RESTARTS})",
                )
            for host in hosts:
                host.proc = None
        if self._stop.is_set() and stopped_by is None:
            return  # the server is going down and ended the job's processes: recover() settles it at the next start
        self._settle(name, req, hosts, rc, stopped_by, failed)

    def _sync_checkpoints(self, req: TrainingRequest, host: Host, done: threading.Event) -> None:
        """CheckpointConfig.S3Uri kept in step with the main host's checkpoint folder while the job runs, and
        once more when it ends (what the algorithm saves in the end, as it stops, is there too)."""
        uri = req.checkpoint_uri
        if not uri:
            return
        state: dict = {}
        while True:
            finished = done.wait(CHECKPOINT_SYNC_SECONDS)
            try:
                state = sync_folder(host.layout.checkpoints, uri, state, self.roots)
            except StorageError as err:
                log.warning("checkpoints of %s not synced to %s: %s", req.name, uri, err)
            if finished:
                return

    def _prepare(self, req: TrainingRequest, hosts: list[Host], resuming: bool) -> None:
        channels = {ch.name: ch.config for ch in req.channels}
        for host in hosts:
            host.layout.write_config(
                req.hyperparameters, channels, ResourceConfig.for_host(host.index, len(hosts), req.instance_type)
            )
            if req.resumable:
                host.layout.checkpoints.mkdir(parents=True, exist_ok=True)
        first = hosts[0].layout
        saved = req.checkpoint_uri
        if saved and not any(first.checkpoints.iterdir()) and exists(saved, self.roots):
            # what an earlier job (or this one, before a restart elsewhere) left there: the run resumes from it
            download(saved, first.checkpoints, self.roots)
        if self.launcher.stages_data:  # each host downloads its channels on its own node (see _fetch)
            for ch in req.channels:
                if Location.parse(ch.uri).scheme != "s3":
                    raise StorageError(
                        f"channel {ch.name}: {ch.uri} is a path on the server, which the cluster's nodes do not "
                        "see (the server was started with --cluster-server-url); put the data in the server's S3 "
                        f"store (aws s3 cp --recursive {ch.uri} s3://BUCKET/{ch.name}/) and name that s3:// location"
                    )
            return
        if not (resuming and first.data.is_dir()):  # a resumed job has its channels from the first start
            with self.sessions.begin() as s:
                set_status(s, fetch(s, TrainingJob, req.name), None, Secondary.DOWNLOADING, "Downloading input data")
            for ch in req.channels:
                for host in hosts if ch.sharded else hosts[:1]:  # ShardedByS3Key: each host its own objects
                    share = (host.index, len(hosts)) if ch.sharded else (0, 1)
                    download(ch.uri, host.layout.channel(ch.name), self.roots, shard=share)
        # FullyReplicated: every host has all of it; on one machine the other hosts see the first one's copy
        for host in hosts[1:]:
            host.layout.data.mkdir(parents=True, exist_ok=True)
            for ch in req.channels:
                link = host.layout.channel(ch.name)
                if not ch.sharded and not link.exists():
                    link.symlink_to(first.channel(ch.name).resolve(), target_is_directory=True)

    @staticmethod
    def _fetch(req: TrainingRequest, host: Host, count: int) -> list[Fetch]:
        """What a host on a node of its own downloads: every channel whole (FullyReplicated), or its share."""
        return [Fetch(ch.name, ch.uri, (host.index, count) if ch.sharded else (0, 1)) for ch in req.channels]

    def _watch(
        self, name: str, req: TrainingRequest, hosts: list[Host], started: float
    ) -> tuple[int, str | None, Host | None]:
        """Until every host's process ends: their logs into their streams, StopTrainingJob and
        MaxRuntimeInSeconds enforced on all; the first host to fail ends the others. Returns the job's exit
        status, what stopped it, and the host that failed first."""
        readers = []
        for host in hosts:
            extractor = MetricExtractor(req.metric_definitions)
            t = threading.Thread(target=self._pump_log, args=(name, host, extractor), daemon=True)
            t.start()
            readers.append(t)
        max_runtime = req.max_runtime
        stopped_by = None
        failed: Host | None = None
        term_sent = None
        while True:
            codes = [h.proc.poll() if h.proc else 0 for h in hosts]
            if all(c is not None for c in codes):
                break
            time.sleep(min(self.poll, 0.5))
            if failed is None:
                failed = next((h for h, c in zip(hosts, codes, strict=True) if c not in (None, 0)), None)
                if failed is not None and stopped_by is None:  # the others would wait for it: end them
                    self._terminate(hosts)
                    term_sent = time.time()
            if stopped_by is None and failed is None:
                with self.sessions() as s:
                    if fetch(s, TrainingJob, name).stop_requested:
                        stopped_by = "stop"
                if stopped_by is None and max_runtime and time.time() - started > max_runtime:
                    stopped_by = "max_runtime"
                    with self.sessions.begin() as s:
                        set_status(
                            s,
                            fetch(s, TrainingJob, name),
                            Status.STOPPING,
                            Secondary.MAX_RUNTIME_EXCEEDED,
                            f"Training job exceeded MaxRuntimeInSeconds ({max_runtime} s); stopping it",
                        )
                if stopped_by:
                    self._terminate(hosts)
                    term_sent = time.time()
            elif term_sent and time.time() - term_sent > self.stop_grace:
                for h in hosts:
                    if h.proc is not None and h.proc.poll() is None:
                        h.proc.kill()
                term_sent = None
        for t in readers:
            t.join(timeout=10)
        codes = [h.proc.poll() if h.proc else 0 for h in hosts]
        # a lost machine explains the errors of the hosts that lost their peer, whichever was seen first
        failed = next((h for h, c in zip(hosts, codes, strict=True) if c == NODE_LOST), failed)
        rc = next((c for h, c in zip(hosts, codes, strict=True) if h is failed), codes[0]) or 0
        return rc, stopped_by, failed

    @staticmethod
    def _terminate(hosts: list[Host]) -> None:
        for h in hosts:
            if h.proc is not None and h.proc.poll() is None:
                h.proc.terminate()

    def _pump_log(self, name: str, host: Host, extractor: MetricExtractor) -> None:
        """A host's output, line by line, into its log stream (and a plain file beside it), and its metrics'
        datapoints as CloudWatch keeps them."""
        assert host.proc is not None
        stream_id = open_stream(self.sessions, TRAINING_GROUP, host.stream)
        pending: list[LogEvent | MetricDatum] = []
        last_flush = time.time()
        with open(host.folder / "training.log", "a", encoding="utf-8") as f:
            for line in host.proc.stdout:
                line = line.rstrip("\n")
                now = int(time.time() * 1000)
                f.write(line + "\n")
                pending.append(LogEvent(stream_id=stream_id, timestamp=now, ingestion_time=now, message=line))
                points = extractor.datapoints(name, now / 1000, line)
                pending += points
                # a metric is stored the moment it is printed: the pipe's end can come late (a child may
                # still hold it), and the job's status must never be ahead of its metrics (the tuner reads both)
                if points or len(pending) >= 200 or time.time() - last_flush > 0.3:
                    self._flush(pending)
                    f.flush()
                    pending, last_flush = [], time.time()
            self._flush(pending)

    def _flush(self, rows: list[LogEvent | MetricDatum]) -> None:
        if rows:
            with self.sessions.begin() as s:
                s.add_all(rows)

    def _settle(
        self, name: str, req: TrainingRequest, hosts: list[Host], rc: int, stopped_by: str | None, failed: Host | None
    ) -> None:
        layout = hosts[0].layout  # the first host ships the model
        has_model = layout.model.is_dir() and any(layout.model.iterdir())
        artifact = None
        if has_model and (failed is None or stopped_by):
            with self.sessions.begin() as s:
                set_status(
                    s, fetch(s, TrainingJob, name), None, Secondary.UPLOADING, "Uploading generated training model"
                )
            tar = pack_model_dir(layout.model, packed_model(layout))
            location = req.artifact
            if location is None:
                raise StorageError("the job has no OutputDataConfig.S3OutputPath to upload its model.tar.gz to")
            artifact = upload(tar, location, self.roots)
        if stopped_by == "max_runtime":
            self._finish(
                name,
                Status.STOPPED,
                Secondary.MAX_RUNTIME_EXCEEDED,
                "Training job exceeded MaxRuntimeInSeconds provided",
                artifact=artifact,
            )
        elif stopped_by:
            self._finish(name, Status.STOPPED, Secondary.STOPPED, "Training job stopped", artifact=artifact)
        elif failed is None and rc == 0:
            self._finish(name, Status.COMPLETED, Secondary.COMPLETED, "Training job completed", artifact=artifact)
        else:
            culprit = failed or hosts[0]
            # the algorithm names files by where this server keeps them; SageMaker's users see /opt/ml
            reason = culprit.layout.read_failure().replace(str(culprit.layout.root), "/opt/ml")
            if rc == NODE_LOST:
                node = getattr(culprit.proc, "node_id", None)
                reason = f"InternalServerError: the cluster node running {culprit.name} was lost"
                reason += f" (node {node})" if node else ""
                reason += (
                    f" after {MAX_NODE_RESTARTS} restarts"
                    if req.resumable
                    else "; the job has no CheckpointConfig to restart from"
                )
            if not reason:
                how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
                reason = f"AlgorithmError: the algorithm {how} without writing a failure reason; see the job's log"
            if len(hosts) > 1 and rc != NODE_LOST:
                reason = f"{reason} (on {culprit.name}; the job's other hosts were stopped)"
            self._finish(
                name, Status.FAILED, Secondary.FAILED, "Training job failed", failure=reason, artifact=artifact
            )

    def _finish(
        self,
        name: str,
        status: TrainingJobStatus,
        secondary: SecondaryStatus,
        message: str,
        *,
        failure: str | None = None,
        artifact: str | None = None,
    ) -> None:
        with self.sessions.begin() as s:
            job = fetch(s, TrainingJob, name)
            job.final_metrics = final_metrics(s, name, metric_definitions(stored_request(job.request))) or None
            if failure:
                job.failure_reason = failure[:FAILURE_LIMIT]
            if artifact:
                job.model_artifacts = artifact
            job.training_end_time = time.time()
            set_status(s, job, status, secondary, message)
