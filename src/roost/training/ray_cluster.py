"""Jobs on a Ray cluster: each host of a job is a Ray actor that runs the algorithm on a node of the cluster.

``roost server --cluster ray://HOST:PORT`` (or ``auto`` for a cluster this machine belongs to) uses
:class:`RayLauncher` instead of local processes. Each host asks for the CPUs and GPUs of its instance type
(:data:`INSTANCE_RESOURCES`, overridable), runs ``python -m roost container train`` there, and streams its
output back to the runner. Either the nodes see the server's data folder at the same path (a shared file
system), or, with ``--cluster-server-url``, each host is staged: its ``/opt/ml`` folder is made on its node, its
``s3://`` channels come through the server's URL from its S3 store, and its model, output and checkpoints come
back to the server (:class:`ServerStore`). The first host's node is where the others meet it. A host whose node
is lost ends with :data:`NODE_LOST`; the runner then restarts a job that has a CheckpointConfig from its last
checkpoint, on the nodes that remain.

Install with ``pip install 'roost[ray]'``.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost.algorithm.layout import JobLayout
from roost.errors import UserError
from roost.paths import walk_files
from roost.storage.uri import download
from roost.system import PARENT_PID_ENV, THREADS_ENV
from roost.training.launcher import NODE_LOST, Fetch

#: how long a host may wait for a node with its instance type's CPUs and GPUs free
PLACEMENT_SECONDS = 300.0

#: (vCPUs, GPUs) of the instance types this algorithm trains on; AWS's figures
INSTANCE_RESOURCES: dict[str, tuple[float, float]] = {
    "ml.p2.xlarge": (4, 1),
    "ml.p2.8xlarge": (32, 8),
    "ml.p2.16xlarge": (64, 16),
    "ml.p3.2xlarge": (8, 1),
    "ml.p3.8xlarge": (32, 4),
    "ml.p3.16xlarge": (64, 8),
    "ml.p3dn.24xlarge": (96, 8),
    "ml.p4d.24xlarge": (96, 8),
    "ml.g4dn.xlarge": (4, 1),
    "ml.g4dn.2xlarge": (8, 1),
    "ml.g4dn.4xlarge": (16, 1),
    "ml.g4dn.8xlarge": (32, 1),
    "ml.g4dn.12xlarge": (48, 4),
    "ml.g4dn.16xlarge": (64, 1),
    "ml.g5.xlarge": (4, 1),
    "ml.g5.2xlarge": (8, 1),
    "ml.g5.4xlarge": (16, 1),
    "ml.g5.12xlarge": (48, 4),
    "ml.g5.48xlarge": (192, 8),
    "ml.m5.large": (2, 0),
    "ml.m5.xlarge": (4, 0),
    "ml.m5.2xlarge": (8, 0),
    "ml.m5.4xlarge": (16, 0),
    "ml.c5.xlarge": (4, 0),
    "ml.c5.2xlarge": (8, 0),
    "ml.c5.4xlarge": (16, 0),
}


class ClusterError(UserError):
    """The Ray cluster cannot be reached, or cannot place a host."""


def parse_resources(spec: str) -> dict[str, tuple[float, float]]:
    """``ml.p3.2xlarge=8:1,ml.m5.large=1:0`` (vCPUs:GPUs per instance type) for ``--cluster-resources``."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        cpus, _, gpus = value.partition(":")
        try:
            out[name.strip()] = (float(cpus), float(gpus or 0))
        except ValueError:
            raise ClusterError(f"{part!r}: expected INSTANCE_TYPE=CPUS:GPUS, e.g. ml.p3.2xlarge=8:1") from None
        if not sep:
            raise ClusterError(f"{part!r}: expected INSTANCE_TYPE=CPUS:GPUS, e.g. ml.p3.2xlarge=8:1")
    return out


@dataclass(frozen=True)
class ServerStore:
    """How hosts on the cluster's nodes reach this server's S3 store (``roost server --cluster-server-url``): the
    URL as the nodes see it, and the server's own key pair. Only Roost's actor on the node holds the key; the
    algorithm's process never sees it, as on this machine (``roost.training.runner.PRIVATE_ENV``)."""

    url: str
    access_key_id: str
    secret_access_key: str
    region: str

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
        )


#: what comes back from a host that ran on its own node: its trained model, its output and its checkpoints
RESULTS = ("model", "output", "checkpoints")
#: how often a staged host's checkpoints are mirrored back to the server (from there to CheckpointConfig.S3Uri)
MIRROR_SECONDS = 30.0

Snapshot = dict[str, tuple[int, int]]


def _pack(root: Path, folders: tuple[str, ...] | None, known: Snapshot) -> tuple[bytes, Snapshot]:
    """A tar of the files below ``root`` (only ``folders``, if given) that are not in ``known`` as they are now,
    and what is there now. Files being written (``*.partial``) and the channels are left out."""
    now: Snapshot = {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if folders is None:  # the whole folder: its empty folders too (an empty checkpoints/ asks for checkpoints)
            for path in sorted(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()):
                rel = path.relative_to(root).as_posix()
                if rel != "input/data" and not rel.startswith("input/data/"):
                    tar.add(path, arcname=rel, recursive=False)
        for base in [root / f for f in folders] if folders is not None else [root]:
            for path in sorted(walk_files(base)) if base.is_dir() else []:
                rel = path.relative_to(root).as_posix()
                if rel.endswith(".partial") or rel.startswith("input/data/"):
                    continue
                st = path.stat()
                now[rel] = (st.st_size, st.st_mtime_ns)
                if known.get(rel) != now[rel]:
                    tar.add(path, arcname=rel, recursive=False)
    return buffer.getvalue(), now


def _unpack(data: bytes, root: Path, folders: tuple[str, ...] | None = None, present: Snapshot | None = None) -> None:
    """Write the files of ``data`` below ``root``, each whole (a reader never sees half a checkpoint); with
    ``present``, files of ``folders`` that are no longer there are removed."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            member = tarfile.data_filter(member, str(root))  # our own actor made it; checked all the same
            if member.isdir():
                (root / member.name).mkdir(parents=True, exist_ok=True)
            if not member.isfile():
                continue
            target = root / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            partial = target.with_name(target.name + ".arriving")
            with open(partial, "wb") as out:
                shutil.copyfileobj(source, out)
            os.replace(partial, target)
    if present is not None and folders is not None:
        for base in (root / f for f in folders):
            for path in list(walk_files(base)) if base.is_dir() else []:
                if path.relative_to(root).as_posix() not in present and not path.name.endswith(".partial"):
                    path.unlink(missing_ok=True)


class _Host:
    """The Ray actor of one host: the algorithm as its child process, its output kept for the runner to fetch.

    A staged host (:class:`ServerStore` given) first makes its own ``/opt/ml`` folder on its node from the files
    the server sent and downloads its channels through the server's URL; the runner then pulls its results."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.rc: int | None = None  # the status of a host that ended before its algorithm started
        self.aborted = threading.Event()
        self.root: Path | None = None

    def start(
        self,
        cmd: list[str],
        env: dict[str, str],
        rendezvous_here: bool = False,
        staged: tuple[bytes, list[Fetch], ServerStore] | None = None,
    ) -> tuple[str, str]:
        import ray

        # the algorithm dies with this actor (a lost node, a killed actor), as local jobs die with the server
        env = {**env, PARENT_PID_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        env.pop("CUDA_VISIBLE_DEVICES", None)  # the GPUs Ray gave this actor, not the server machine's
        if "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        address = ray.util.get_node_ip_address()
        if rendezvous_here:  # the first host: the others meet it on its node, not on the server's loopback
            env["MASTER_ADDR"] = address
        if staged is None:
            self._spawn(cmd, env)
        else:
            files, fetch, store = staged
            self.root = Path(tempfile.mkdtemp(prefix="roost-host-")) / "opt_ml"
            _unpack(files, self.root)
            cmd = [*cmd, "--root", str(self.root)]
            threading.Thread(target=self._stage, args=(cmd, env, fetch, store), daemon=True).start()
        return ray.get_runtime_context().get_node_id(), address

    def _say(self, text: str) -> None:
        with self.lock:
            self.lines.append(f"[roost] {text}\n")

    def _stage(self, cmd: list[str], env: dict[str, str], fetch: list[Fetch], store: ServerStore) -> None:
        assert self.root is not None
        layout = JobLayout(self.root)
        doing = f"cannot reach the server's S3 store at {store.url}"
        try:
            client = store.client()
            for item in fetch:
                doing = f"channel {item.channel}: cannot download {item.uri} from the server at {store.url}"
                if self.aborted.is_set():
                    self.rc = -signal.SIGTERM
                    return
                self._say(f"downloading {item.uri} into channel {item.channel} from the server at {store.url}")
                files = download(item.uri, layout.channel(item.channel), shard=item.shard, client=client)
                size = sum(f.stat().st_size for f in files)
                self._say(f"channel {item.channel}: {len(files)} file(s), {size / 1e6:.1f} MB")
        except Exception as err:  # noqa: BLE001 - whatever failed, the job ends saying what and where
            message = f"{doing}: {err}"
            self._say(message)
            layout.write_failure(f"ClientError: {message}")
            self.rc = 1
            return
        if self.aborted.is_set():
            self.rc = -signal.SIGTERM
            return
        self._spawn(cmd, env)

    def _spawn(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line)

    def output(self, since: int) -> tuple[list[str], int | None]:
        """Lines from ``since`` on, and the exit status once the process has ended and its output is all read."""
        rc = self.rc if self.proc is None else self.proc.poll()
        if rc is not None and self.proc is not None:
            time.sleep(0.05)  # the reader's last lines
        with self.lock:
            return self.lines[since:], rc

    def results(self, folders: tuple[str, ...], known: Snapshot) -> tuple[bytes, Snapshot]:
        """What changed in ``folders`` of a staged host's ``/opt/ml`` since ``known``, and what is there now."""
        if self.root is None:
            return b"", {}
        return _pack(self.root, folders, known)

    def clean(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root.parent, ignore_errors=True)

    def signal(self, sig: int) -> None:
        self.aborted.set()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


class RayProcess:
    """A host running as a Ray actor, seen by the runner as a :class:`roost.training.launcher.JobProcess`.

    For a staged host, ``root`` is the server's copy of its ``/opt/ml`` folder: checkpoints come back into it
    while the host runs (every :data:`MIRROR_SECONDS`), and the model, output and checkpoints when it ends."""

    def __init__(self, actor: Any, node_id: str, root: Path | None = None) -> None:
        self.actor, self.node_id, self.root = actor, node_id, root
        self._rc: int | None = None
        self._known: Snapshot = {}

    @property
    def stdout(self) -> Iterator[str]:
        import ray

        seen = 0
        mirrored = time.monotonic()
        while True:
            try:
                lines, rc = ray.get(self.actor.output.remote(seen), timeout=60)
                if self.root is not None and (rc is not None or time.monotonic() - mirrored > MIRROR_SECONDS):
                    self._pull(RESULTS if rc is not None else ("checkpoints",))
                    mirrored = time.monotonic()
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, ray.exceptions.RaySystemError):
                self._rc = NODE_LOST if self._rc is None else self._rc
                yield f"[roost] the host's Ray node {self.node_id} was lost\n"
                return
            seen += len(lines)
            yield from lines
            if rc is not None and not lines:
                if self.root is not None:
                    self.actor.clean.remote()
                self._rc = rc
                return
            if not lines:
                time.sleep(0.2)

    def _pull(self, folders: tuple[str, ...]) -> None:
        import ray

        assert self.root is not None
        data, now = ray.get(self.actor.results.remote(folders, self._known), timeout=600)
        _unpack(data, self.root, folders, now)
        self._known = now

    def poll(self) -> int | None:
        return self._rc

    def terminate(self) -> None:
        self._send(signal.SIGTERM)

    def kill(self) -> None:
        import ray

        self._send(signal.SIGKILL)
        try:
            ray.kill(self.actor)
        except Exception:  # noqa: BLE001 - already gone
            pass
        if self._rc is None:
            self._rc = -signal.SIGKILL

    def _send(self, sig: int) -> None:
        try:
            self.actor.signal.remote(sig)
        except Exception:  # noqa: BLE001 - the actor is gone: nothing left to signal
            pass


class RayLauncher:
    """The :class:`roost.training.launcher.Launcher` for a Ray cluster."""

    def __init__(
        self,
        address: str,
        resources: Mapping[str, tuple[float, float]] | None = None,
        placement_timeout: float = PLACEMENT_SECONDS,
        store: ServerStore | None = None,
    ) -> None:
        self.placement_timeout = placement_timeout
        self.store = store
        self.stages_data = store is not None
        self._masters: dict[str, str] = {}  # job name -> the node address of its first host
        try:
            import ray
        except ImportError:
            raise ClusterError("--cluster needs Ray: pip install 'roost[ray]'") from None
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        except Exception as err:  # noqa: BLE001 - whatever Ray says, the server must not start half-connected
            raise ClusterError(f"cannot connect to the Ray cluster at {address}: {err}") from None
        self.resources = {**INSTANCE_RESOURCES, **(resources or {})}
        self._actor_class: Any = ray.remote(_Host)

    def resources_for(self, instance_type: str) -> tuple[float, float]:
        return self.resources.get(instance_type, (1.0, 0.0))

    def capacity(self) -> int:
        """A host per CPU the cluster has now (the smallest a host asks for); placement waits for the rest."""
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def launch(self, job_dir: Path, root: Path, env: dict[str, str], fetch: Sequence[Fetch] = ()) -> RayProcess:
        import ray

        resources = JobLayout(root).read_resources()
        cpus, gpus = self.resources_for(resources.current_instance_type)
        job = env.get("TRAINING_JOB_NAME", str(job_dir))
        first = resources.is_rendezvous
        env = {**env, THREADS_ENV: str(max(1, int(cpus)))}
        if not first and job in self._masters:  # the runner starts the first host first
            env["MASTER_ADDR"] = self._masters[job]
        # several calls at once: the runner reads a host's output while it signals it
        actor = self._actor_class.options(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_concurrency=4).remote()
        cmd = [sys.executable, "-m", "roost", "container", "train"]
        if self.store is None:
            started = actor.start.remote([*cmd, "--root", str(root)], env, first)
        else:  # the host's own /opt/ml on its node: the config (and checkpoints) sent along, channels fetched
            files, _ = _pack(root, None, {})
            started = actor.start.remote(cmd, env, first, (files, list(fetch), self.store))
        try:
            node, address = ray.get(started, timeout=self.placement_timeout)
        except ray.exceptions.GetTimeoutError:
            ray.kill(actor)
            raise ClusterError(
                f"no node of the Ray cluster had {cpus:g} CPUs and {gpus:g} GPUs free for a "
                f"{resources.current_instance_type} host "
                f"within {self.placement_timeout:.0f} s; add nodes, or map the instance type to what the nodes have "
                "with --cluster-resources"
            ) from None
        if first and len(resources.hosts) > 1:
            self._masters[job] = address
        return RayProcess(actor, node, root if self.store is not None else None)

    def reap(self, job_dir: Path) -> None:
        """Nothing to do: a host's actor belongs to the server's Ray session and ends with it."""
