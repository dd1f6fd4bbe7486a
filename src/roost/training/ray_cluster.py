"""Jobs on a Ray cluster: each host of a job is a Ray actor that runs the algorithm on a node of the cluster.

``roost server --cluster ray://HOST:PORT`` (or ``auto`` for a cluster this machine belongs to) uses
:class:`RayLauncher` instead of local processes. Each host asks for the CPUs and GPUs of its instance type
(:data:`INSTANCE_RESOURCES`, overridable), runs ``python -m roost container train`` there, and streams its
output back to the runner. The nodes must see the server's data folder at the same path (a shared file
system), or the channels must come from S3. A host whose node is lost ends with :data:`NODE_LOST`; the
runner then restarts a job that has a CheckpointConfig from its last checkpoint, on the nodes that remain.

Install with ``pip install 'roost[ray]'``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from roost.algorithm.layout import JobLayout
from roost.errors import UserError
from roost.system import PARENT_PID_ENV, THREADS_ENV
from roost.training.launcher import NODE_LOST

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


class _Host:
    """The Ray actor of one host: the algorithm as its child process, its output kept for the runner to fetch."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def start(self, cmd: list[str], env: dict[str, str]) -> str:
        import ray

        # the algorithm dies with this actor (a lost node, a killed actor), as local jobs die with the server
        env = {**env, PARENT_PID_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        env.pop("CUDA_VISIBLE_DEVICES", None)  # the GPUs Ray gave this actor, not the server machine's
        if "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
        )
        threading.Thread(target=self._read, daemon=True).start()
        return ray.get_runtime_context().get_node_id()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line)

    def output(self, since: int) -> tuple[list[str], int | None]:
        """Lines from ``since`` on, and the exit status once the process has ended and its output is all read."""
        assert self.proc is not None
        rc = self.proc.poll()
        if rc is not None:
            time.sleep(0.05)  # the reader's last lines
        with self.lock:
            return self.lines[since:], rc

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


class RayProcess:
    """A host running as a Ray actor, seen by the runner as a :class:`roost.training.launcher.JobProcess`."""

    def __init__(self, actor: Any, node_id: str) -> None:
        self.actor, self.node_id = actor, node_id
        self._rc: int | None = None

    @property
    def stdout(self) -> Iterator[str]:
        import ray

        seen = 0
        while True:
            try:
                lines, rc = ray.get(self.actor.output.remote(seen), timeout=60)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, ray.exceptions.RaySystemError):
                self._rc = NODE_LOST if self._rc is None else self._rc
                yield f"[roost] the host's Ray node {self.node_id} was lost\n"
                return
            seen += len(lines)
            yield from lines
            if rc is not None and not lines:
                self._rc = rc
                return
            if not lines:
                time.sleep(0.2)

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
    ) -> None:
        self.placement_timeout = placement_timeout
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

    def launch(self, job_dir: Path, root: Path, env: dict[str, str]) -> RayProcess:
        import ray

        instance_type = JobLayout(root).read_resources().current_instance_type
        cpus, gpus = self.resources_for(instance_type)
        # several calls at once: the runner reads a host's output while it signals it
        actor = self._actor_class.options(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_concurrency=4).remote()
        cmd = [sys.executable, "-m", "roost", "container", "train", "--root", str(root)]
        started = actor.start.remote(cmd, {**env, THREADS_ENV: str(max(1, int(cpus)))})
        try:
            node = ray.get(started, timeout=self.placement_timeout)
        except ray.exceptions.GetTimeoutError:
            ray.kill(actor)
            raise ClusterError(
                f"no node of the Ray cluster had {cpus:g} CPUs and {gpus:g} GPUs free for a {instance_type} host "
                f"within {self.placement_timeout:.0f} s; add nodes, or map the instance type to what the nodes have "
                "with --cluster-resources"
            ) from None
        return RayProcess(actor, node)

    def reap(self, job_dir: Path) -> None:
        """Nothing to do: a host's actor belongs to the server's Ray session and ends with it."""
