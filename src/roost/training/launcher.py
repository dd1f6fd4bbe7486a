"""Where a training job's algorithm runs: the runner hands a launcher the job's ``/opt/ml`` folder and environment.

:class:`LocalProcesses` (the default) starts ``roost container train`` as a
process of this machine in its own session, so that stopping a job can reach
the data-loading workers it started too. The runner only needs what
:class:`JobProcess` offers, so other places to run (a cluster) or a fake in
tests plug in without the runner changing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from roost.system import PARENT_PID_ENV, host_capacity

#: the exit status of a host whose machine was lost (a cluster node gone): not the algorithm's doing
NODE_LOST = -1001


class JobProcess(Protocol):
    """A started algorithm: its output lines, its exit status, and two ways to end it."""

    @property
    def stdout(self) -> Iterable[str]: ...

    def poll(self) -> int | None:
        """The exit status (negative: killed by that signal), or None while it runs."""

    def terminate(self) -> None:
        """Ask the algorithm to stop (SIGTERM): it saves what it trained and exits."""

    def kill(self) -> None:
        """End the algorithm and everything it started, now."""


@dataclass(frozen=True)
class Fetch:
    """A channel that a host downloads itself, where it runs: ``shard`` as :func:`roost.storage.uri.download`."""

    channel: str
    uri: str
    shard: tuple[int, int] = (0, 1)


class Launcher(Protocol):
    #: True where hosts run without this machine's data folder (Ray nodes with ``--cluster-server-url``): the
    #: runner then leaves the channels to them (``fetch``) instead of putting them into each host's folder
    stages_data: bool

    def launch(self, job_dir: Path, root: Path, env: dict[str, str], fetch: Sequence[Fetch] = ()) -> JobProcess:
        """Start the algorithm on the ``/opt/ml`` folder ``root``; ``job_dir`` is the job's own folder. A launcher
        that stages data gets the channels to ``fetch`` into the host's own copy of ``root`` first."""

    def reap(self, job_dir: Path) -> None:
        """End what a previous server left running for this job (called after a restart)."""

    def capacity(self) -> int:
        """How many hosts it can run at once: the default of the server's instance limits."""


class LocalProcess:
    def __init__(self, popen: subprocess.Popen[str], pid_file: Path) -> None:
        self.popen, self.pid_file = popen, pid_file

    @property
    def stdout(self) -> Iterable[str]:
        assert self.popen.stdout is not None
        return self.popen.stdout

    def poll(self) -> int | None:
        status = self.popen.poll()
        if status is not None:
            self.pid_file.unlink(missing_ok=True)
        return status

    def terminate(self) -> None:
        # the algorithm only: it stops its data workers itself after saving
        self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        _kill_group(self.popen.pid)


class LocalProcesses:
    """Each job a process group of this machine, started by ``python -m roost container train``."""

    PID_FILE = "pid"
    stages_data = False  # the hosts are processes of this machine: they read what the runner put in their folder

    def capacity(self) -> int:
        return host_capacity()

    def launch(self, job_dir: Path, root: Path, env: dict[str, str], fetch: Sequence[Fetch] = ()) -> LocalProcess:
        env = {**env, "PYTHONUNBUFFERED": "1", PARENT_PID_ENV: str(os.getpid())}
        cmd = [sys.executable, "-m", "roost", "container", "train", "--root", str(root)]
        popen = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True, bufsize=1
        )
        # the pid and the folder it works on, so that a restarted server can recognise it (see reap)
        pid_file = job_dir / self.PID_FILE
        pid_file.write_text(f"{popen.pid}\n{root}\n")
        return LocalProcess(popen, pid_file)

    def reap(self, job_dir: Path) -> None:
        pid_file = job_dir / self.PID_FILE
        if not pid_file.is_file():
            return
        try:
            pid_text, root = pid_file.read_text().splitlines()[:2]
            cmdline = Path(f"/proc/{int(pid_text)}/cmdline").read_bytes().decode(errors="replace")
            if root in cmdline:  # the pid may belong to someone else by now
                _kill_group(int(pid_text))
        except (OSError, ValueError):
            pass
        pid_file.unlink(missing_ok=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
