"""roost.system: a job process armed with the parent-death signal never outlives the server that started it."""

import os
import subprocess
import sys
import textwrap
import time

from roost.system import available_cores, cpu_budget

CHILD = "from roost.system import die_with_parent_from_env; die_with_parent_from_env(); import time; time.sleep(60)"


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_a_job_process_dies_with_its_parent():
    middle = textwrap.dedent(f"""
        import os, subprocess, sys, time
        env = {{**os.environ, "ROOST_PARENT_PID": str(os.getpid())}}
        child = subprocess.Popen([sys.executable, "-c", {CHILD!r}], env=env)
        print(child.pid, flush=True)
        time.sleep(2)  # the child arms its signal meanwhile; then this process ends without a word
    """)
    proc = subprocess.run([sys.executable, "-c", middle], capture_output=True, text=True, timeout=30)
    child = int(proc.stdout.strip())
    deadline = time.time() + 10
    while _state(child) not in (None, "Z"):
        assert time.time() < deadline, "the job process outlived its parent"
        time.sleep(0.05)


def test_a_job_whose_parent_is_already_gone_ends_at_once():
    env = {**os.environ, "ROOST_PARENT_PID": "1"}  # not our parent: as if it had died before the signal was armed
    r = subprocess.run([sys.executable, "-c", CHILD], env=env, timeout=30)
    assert r.returncode == -9


def test_a_fork_server_whose_starter_died_while_it_started_ends_at_once():
    # the starter named itself (roost.data.parallel.worker_context) and was gone before the server armed its
    # signal: getppid() would say 1 by then, and a server armed against pid 1 would live on (seen in a test run)
    env = {**os.environ, "ROOST_FORKSERVER_PARENT": str(2**22 + 7)}  # a pid no process has
    code = "import roost._forkserver, time; time.sleep(60)"
    r = subprocess.run([sys.executable, "-c", code], env=env, timeout=30)
    assert r.returncode == -9


def test_cpu_budget_follows_the_runner(monkeypatch):
    monkeypatch.setenv("ROOST_THREADS", "1")
    assert cpu_budget() == 1
    monkeypatch.setenv("ROOST_THREADS", "many")
    assert cpu_budget() == available_cores() >= 1


def test_hosts_sharing_a_machine_get_its_gpus_each_their_own():
    from roost.system import gpus_for_hosts

    assert gpus_for_hosts(["0", "1", "2", "3"], 2) == ["0,2", "1,3"]
    assert gpus_for_hosts(["0"], 2) == ["0", "0"]  # fewer GPUs than hosts: they share
    assert gpus_for_hosts([], 3) == [None, None, None]  # CPU machine: nothing to set


def test_host_capacity_counts_memory_and_cores():
    from roost.system import HOST_MEMORY, host_capacity, usable_memory

    assert host_capacity(memory=4 * HOST_MEMORY, cores=1) == 3  # a 4 GiB, 1-CPU cgroup: the server keeps a GiB
    assert host_capacity(memory=24 * HOST_MEMORY, cores=2) == 8  # 4 per core
    assert host_capacity(memory=HOST_MEMORY // 2, cores=16) == 1  # always one
    assert usable_memory() > HOST_MEMORY
