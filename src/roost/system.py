"""What Roost asks of the operating system: one libc loader, the parent-death signal, glibc's allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import threading

#: set by Roost's job runner in a job's environment: the server process the job must not outlive
PARENT_PID_ENV = "ROOST_PARENT_PID"

_PR_SET_PDEATHSIG = 1
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The C library on Linux (glibc or musl), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def die_with_parent(parent_pid: int) -> None:
    """Get SIGKILL when the process ``parent_pid`` ends, instead of running on unobserved.

    Called by the child itself as it starts: arming the signal in ``Popen``'s
    ``preexec_fn`` would run Python between fork and exec in a threaded server,
    which can deadlock. If the parent is already gone (it died before the signal
    was armed), the child ends at once.
    """
    lib = libc()
    if lib is not None:
        lib.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent_from_env() -> None:
    """:func:`die_with_parent` for a process the job runner started (it names itself in the environment)."""
    value = os.environ.get(PARENT_PID_ENV)
    if value and value.isdigit():
        die_with_parent(int(value))


#: set by SIGTERM (StopTrainingJob): training stops after the current batch and keeps what it trained
STOP_REQUESTED = threading.Event()


def stop_on_sigterm() -> None:
    """Turn SIGTERM into :data:`STOP_REQUESTED`; installed before the heavy imports, so that a stop arriving while
    the algorithm starts up is honoured instead of killing it with nothing saved."""
    signal.signal(signal.SIGTERM, lambda *_: STOP_REQUESTED.set())


_tuned = False


def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Let glibc keep and reuse freed memory instead of mapping fresh pages for every large tensor.

    PyTorch's CPU allocator does not cache: each step's activations (tens of MB each) are
    malloc'ed and freed, glibc serves blocks that large with mmap/munmap, and every step
    pays page faults and kernel zeroing again. Serving them from the heap and trimming it
    only beyond ``trim_threshold`` measured +6-11% for ResNet-18 at 224x224 and +3-4% for
    ResNet-20 at 28x28 on a 2-core VM (benchmarks/README.md). No-op off glibc.
    """
    global _tuned
    if _tuned:
        return True
    lib = libc()
    mallopt = getattr(lib, "mallopt", None)
    if mallopt is None:
        return False
    _tuned = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return _tuned


#: set by the job runner when several jobs share a machine: the cores one job may use
THREADS_ENV = "ROOST_THREADS"


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def usable_memory() -> int:
    """Bytes of memory this process's jobs may use: the machine's, or its cgroup's limit when that is lower (a
    container, a systemd slice)."""
    total = 0
    try:
        with open("/proc/meminfo") as f:
            total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        pass
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit_file) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and (not total or int(text) < total):
            total = int(text)
    return total or 4 << 30


#: what one training host takes with its data-loading workers (measured: about 1 GB for the algorithm's defaults)
HOST_MEMORY = 1 << 30
#: hosts per core beyond which more only share the same cores more thinly
HOSTS_PER_CORE = 4


def host_capacity(memory: int | None = None, cores: int | None = None) -> int:
    """How many training hosts this machine can run at once: one per ``HOST_MEMORY`` of its memory, less one for
    the server itself, and at most ``HOSTS_PER_CORE`` per core. The default of ``roost server``'s instance limits."""
    memory = usable_memory() if memory is None else memory
    cores = available_cores() if cores is None else cores
    return max(1, min((memory - HOST_MEMORY) // HOST_MEMORY, HOSTS_PER_CORE * cores))


def free_port() -> int:
    """A TCP port nothing listens on now, on loopback (for a rendezvous, a test server)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def visible_gpus() -> list[str]:
    """The GPUs jobs of this machine may use, as CUDA_VISIBLE_DEVICES names them: that variable's list when it is
    set, else the indices ``nvidia-smi -L`` lists (none without a driver). Read without importing torch."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def gpus_for_hosts(gpus: list[str], hosts: int) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES for each of ``hosts`` hosts sharing one machine: every GPU to exactly one host
    (round robin); None (leave it as it is) when there are no GPUs. Fewer GPUs than hosts: some share one."""
    if not gpus:
        return [None] * hosts
    if len(gpus) < hosts:
        return [gpus[i % len(gpus)] for i in range(hosts)]
    return [",".join(gpus[i::hosts]) for i in range(hosts)]


def cpu_budget() -> int:
    """Cores this job may use: ``ROOST_THREADS`` when the job runner set it, else all available."""
    try:
        return max(1, int(os.environ[THREADS_ENV]))
    except (KeyError, ValueError):
        return available_cores()
