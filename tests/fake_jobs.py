"""A launcher whose "processes" are Python functions: runner and tuner tests without an algorithm.

Each fake job is a small script that writes what the container would (log lines,
model files, output/failure) and ends the way the test needs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from roost.algorithm.layout import JobLayout

Script = Callable[[JobLayout, Callable[[str], None], threading.Event], int]


class FakeProcess:
    """Runs ``script`` in a thread; its ``emit`` calls are the process's output lines."""

    def __init__(self, script: Script, layout: JobLayout) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._rc: int | None = None
        self.terminated = threading.Event()
        self.killed = False

        def run() -> None:
            rc = script(layout, self._lines.put, self.terminated)
            if not self.killed:
                self._rc = rc
            self._lines.put(None)

        threading.Thread(target=run, daemon=True).start()

    @property
    def stdout(self) -> Iterator[str]:
        while (line := self._lines.get()) is not None:
            yield line + "\n"

    def poll(self) -> int | None:
        return self._rc

    def terminate(self) -> None:
        self.terminated.set()

    def kill(self) -> None:
        self.killed = True
        self._rc = -9
        self.terminated.set()
        self._lines.put(None)  # a killed process's output ends


class FakeLauncher:
    def __init__(self, capacity: int = 16) -> None:
        self.hosts = capacity
        self.scripts: dict[str, Script] = {}
        self.launched: dict[str, tuple[Path, dict[str, str]]] = {}
        self.reaped: list[str] = []
        self.default: Script | None = None  # the script of jobs without one of their own (a tuning job's)

    stages_data = False

    def launch(self, job_dir: Path, root: Path, env: dict[str, str], fetch=()) -> FakeProcess:
        name = env["TRAINING_JOB_NAME"]
        host = JobLayout(root).read_resources().current_host
        if host == "algo-1":
            self.launched[name] = (root, env)
        self.launched[f"{name}/{host}"] = (root, env)
        # a script of the host's own ("<job>/algo-2"), else the job's, for every host
        script = self.scripts.get(f"{name}/{host}", self.scripts.get(name, self.default))
        assert script is not None, f"no script for {name}"
        return FakeProcess(script, JobLayout(root))

    def reap(self, job_dir: Path) -> None:
        self.reaped.append(job_dir.name)

    def capacity(self) -> int:
        return self.hosts
