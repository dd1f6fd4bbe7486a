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

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from roost.data.parallel import available_cores
from roost.formats.artifact import pack_model_dir
from roost.jobs.models import LogEvent, TrainingJob
from roost.jobs.service import BUILTIN_METRICS, final_metrics, set_status
from roost.storage.uri import Location, StorageError, download, upload

log = logging.getLogger(__name__)

FAILURE_LIMIT = 1024


class JobRunner:
    def __init__(self, sessions: sessionmaker[Session], data_dir: Path, *, max_concurrent: int = 1,
                 stop_grace: float = 120.0, poll: float = 0.5) -> None:
        self.sessions = sessions
        self.jobs_dir = Path(data_dir) / "jobs"
        self.max_concurrent = max(1, max_concurrent)
        self.stop_grace = stop_grace
        self.poll = poll
        self.running: dict[str, threading.Thread] = {}
        self.processes: dict[str, subprocess.Popen] = {}
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
            _signal_group(p, signal.SIGKILL)
        if self._thread:
            self._thread.join(timeout=5)

    def recover(self) -> None:
        """After a restart: jobs that were running resume from their checkpoints, or fail saying why."""
        with self.sessions.begin() as s:
            for job in s.scalars(select(TrainingJob).where(TrainingJob.status.in_(("InProgress", "Stopping")))).all():
                _kill_leftover(self.jobs_dir / job.name)
                if job.status == "Stopping":
                    set_status(s, job, "Stopped", "Stopped", "Training job stopped (the Roost server restarted while it was stopping)")
                    job.training_end_time = job.training_end_time or time.time()
                elif job.request.get("CheckpointConfig") and job.training_start_time:
                    set_status(s, job, "InProgress", "Restarting",
                               "The Roost server restarted; the job resumes from its last checkpoint")
                elif job.training_start_time or job.secondary_status != "Starting":
                    job.failure_reason = ("InternalServerError: the Roost server stopped while this job was running, "
                                          "and the job has no CheckpointConfig to resume from. Create it again "
                                          "(with CheckpointConfig to make it resumable).")
                    job.training_end_time = time.time()
                    set_status(s, job, "Failed", "Failed", "Training job failed")

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
            free = self.max_concurrent - len(self.running)
        with self.sessions.begin() as s:
            waiting = s.scalars(select(TrainingJob).where(TrainingJob.status == "InProgress")
                                .order_by(TrainingJob.creation_time)).all()
            waiting = [j for j in waiting if j.name not in self.running]
            start, queued = waiting[:max(free, 0)], waiting[max(free, 0):]
            for job in queued:
                if job.secondary_status == "Starting":
                    set_status(s, job, None, "Starting",
                               f"Waiting for a free slot ({self.max_concurrent} job(s) run at a time)")
        for job in start:
            t = threading.Thread(target=self._run_safely, args=(job.name,), name=f"job-{job.name}", daemon=True)
            with self._lock:
                self.running[job.name] = t
            t.start()

    # ------------------------------------------------------------------ one job

    def _run_safely(self, name: str) -> None:
        try:
            self._run(name)
        except Exception as err:  # noqa: BLE001 - whatever happens, the job must end with a reason
            log.exception("job %s failed in the runner", name)
            reason = f"ClientError: {err}" if isinstance(err, StorageError) else f"InternalServerError: {err}"
            self._finish(name, "Failed", "Failed", "Training job failed", failure=reason)
        finally:
            with self._lock:
                self.processes.pop(name, None)

    def _run(self, name: str) -> None:
        job_dir = self.jobs_dir / name
        root = job_dir / "opt_ml"
        with self.sessions.begin() as s:
            job = s.get(TrainingJob, name)
            req = job.request
            resuming = job.secondary_status == "Restarting"
            set_status(s, job, None, "Starting", "Preparing the instances for training")
        self._prepare(req, root, resuming)
        with self.sessions.begin() as s:
            job = s.get(TrainingJob, name)
            set_status(s, job, None, "Training", "Training image download completed. Training in progress.")
            job.training_start_time = job.training_start_time or time.time()
            started = job.training_start_time
        rc, stopped_by = self._execute(name, req, root, job_dir, started, resuming)
        self._settle(name, req, root, job_dir, rc, stopped_by)

    def _prepare(self, req: dict, root: Path, resuming: bool) -> None:
        config = root / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(req.get("HyperParameters") or {}, indent=2))
        data_config = {}
        for ch in req["InputDataConfig"]:
            src = ch["DataSource"]["S3DataSource"]
            entry = {"TrainingInputMode": ch.get("InputMode") or req["AlgorithmSpecification"]["TrainingInputMode"],
                     "S3DistributionType": src.get("S3DataDistributionType", "FullyReplicated"),
                     "RecordWrapperType": ch.get("RecordWrapperType", "None")}
            if ch.get("ContentType"):
                entry["ContentType"] = ch["ContentType"]
            if src.get("S3DataType"):
                entry["S3DataType"] = src["S3DataType"]
            if src.get("AttributeNames"):
                entry["AttributeNames"] = src["AttributeNames"]
            data_config[ch["ChannelName"]] = entry
        (config / "inputdataconfig.json").write_text(json.dumps(data_config, indent=2))
        (config / "resourceconfig.json").write_text(json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}, indent=2))
        if req.get("CheckpointConfig"):
            (root / "checkpoints").mkdir(parents=True, exist_ok=True)
        if resuming and (root / "input" / "data").is_dir():
            return  # the channels are already here from the first start
        with self.sessions.begin() as s:
            job = s.get(TrainingJob, req["TrainingJobName"])
            set_status(s, job, None, "Downloading", "Downloading input data")
        for ch in req["InputDataConfig"]:
            download(ch["DataSource"]["S3DataSource"]["S3Uri"], root / "input" / "data" / ch["ChannelName"])

    def _execute(self, name: str, req: dict, root: Path, job_dir: Path, started: float,
                 resuming: bool) -> tuple[int, str | None]:
        env = {**os.environ, **(req.get("Environment") or {}), "TRAINING_JOB_NAME": name,
               "TRAINING_JOB_ARN": self._arn(name), "PYTHONUNBUFFERED": "1",
               "ROOST_THREADS": str(max(1, available_cores() // self.max_concurrent))}
        cmd = [sys.executable, "-m", "roost", "container", "train", "--root", str(root)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True, bufsize=1, preexec_fn=_die_with_parent)
        (job_dir / "pid").write_text(f"{proc.pid}\n{root}\n")
        with self._lock:
            self.processes[name] = proc
        reader = threading.Thread(target=self._pump_log, args=(name, proc, job_dir), daemon=True)
        reader.start()
        max_runtime = (req.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        stopped_by = None
        term_sent = None
        while proc.poll() is None:
            time.sleep(min(self.poll, 0.5))
            if stopped_by is None:
                with self.sessions() as s:
                    if s.get(TrainingJob, name).stop_requested:
                        stopped_by = "stop"
                if stopped_by is None and max_runtime and time.time() - started > max_runtime:
                    stopped_by = "max_runtime"
                    with self.sessions.begin() as s:
                        set_status(s, s.get(TrainingJob, name), "Stopping", "MaxRuntimeExceeded",
                                   f"Training job exceeded MaxRuntimeInSeconds ({max_runtime} s); stopping it")
                if stopped_by:
                    # SIGTERM to the algorithm only: it stops its data workers itself after saving
                    proc.send_signal(signal.SIGTERM)
                    term_sent = time.time()
            elif term_sent and time.time() - term_sent > self.stop_grace:
                _signal_group(proc, signal.SIGKILL)
                term_sent = None
        reader.join(timeout=10)
        (job_dir / "pid").unlink(missing_ok=True)
        return proc.returncode, stopped_by

    def _pump_log(self, name: str, proc: subprocess.Popen, job_dir: Path) -> None:
        """The container's output, line by line, into the job's log stream (and a plain file beside it)."""
        pending: list[LogEvent] = []
        last_flush = time.time()
        with open(job_dir / "training.log", "a", encoding="utf-8") as f:
            for line in proc.stdout:
                line = line.rstrip("\n")
                now = int(time.time() * 1000)
                f.write(line + "\n")
                pending.append(LogEvent(job_name=name, timestamp=now, ingestion_time=now, message=line))
                if len(pending) >= 200 or time.time() - last_flush > 0.3:
                    self._flush(pending)
                    f.flush()
                    pending, last_flush = [], time.time()
            self._flush(pending)

    def _flush(self, events: list[LogEvent]) -> None:
        if events:
            with self.sessions.begin() as s:
                s.add_all(events)

    def _settle(self, name: str, req: dict, root: Path, job_dir: Path, rc: int, stopped_by: str | None) -> None:
        model_dir = root / "model"
        has_model = model_dir.is_dir() and any(model_dir.iterdir())
        artifact = None
        if has_model and (rc == 0 or stopped_by):
            with self.sessions.begin() as s:
                set_status(s, s.get(TrainingJob, name), None, "Uploading", "Uploading generated training model")
            tar = pack_model_dir(model_dir, job_dir / "model.tar.gz")
            artifact = upload(tar, Location.parse(req["OutputDataConfig"]["S3OutputPath"]).join(name, "output", "model.tar.gz"))
        if stopped_by == "max_runtime":
            self._finish(name, "Stopped", "MaxRuntimeExceeded", "Training job exceeded MaxRuntimeInSeconds provided",
                         artifact=artifact)
        elif stopped_by:
            self._finish(name, "Stopped", "Stopped", "Training job stopped", artifact=artifact)
        elif rc == 0:
            self._finish(name, "Completed", "Completed", "Training job completed", artifact=artifact)
        else:
            failure_file = root / "output" / "failure"
            reason = failure_file.read_text(encoding="utf-8", errors="replace").strip() if failure_file.is_file() else ""
            if not reason:
                how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
                reason = f"AlgorithmError: the algorithm {how} without writing a failure reason; see the job's log"
            self._finish(name, "Failed", "Failed", "Training job failed", failure=reason, artifact=artifact)

    def _finish(self, name: str, status: str, secondary: str, message: str, *, failure: str | None = None,
                artifact: str | None = None) -> None:
        with self.sessions.begin() as s:
            job = s.get(TrainingJob, name)
            lines = [(e.timestamp / 1000, e.message) for e in
                     s.scalars(select(LogEvent).where(LogEvent.job_name == name).order_by(LogEvent.id)).all()]
            definitions = BUILTIN_METRICS + list((job.request.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or [])
            job.final_metrics = final_metrics(definitions, lines) or None
            if failure:
                job.failure_reason = failure[:FAILURE_LIMIT]
            if artifact:
                job.model_artifacts = artifact
            job.training_end_time = time.time()
            set_status(s, job, status, secondary, message)

    def _arn(self, name: str) -> str:
        with self.sessions() as s:
            return s.get(TrainingJob, name).arn


def _die_with_parent() -> None:
    """Linux: the job gets SIGKILL if the server dies, instead of training on unobserved (resume picks it up)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_leftover(job_dir: Path) -> None:
    """A job process that outlived its server (the pid file names it and its folder)."""
    pid_file = job_dir / "pid"
    if not pid_file.is_file():
        return
    try:
        pid_text, root = pid_file.read_text().splitlines()[:2]
        cmdline = Path(f"/proc/{int(pid_text)}/cmdline").read_bytes().decode(errors="replace")
        if root in cmdline:
            os.killpg(int(pid_text), signal.SIGKILL)
    except (OSError, ValueError):
        pass
    pid_file.unlink(missing_ok=True)
