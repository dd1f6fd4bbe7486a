"""Training on several hosts (``InstanceCount > 1``) and several GPUs, with torch.distributed.

SageMaker's contract: every host runs the same container with its own
``/opt/ml/input/config/resourceconfig.json`` (``current_host``, the sorted ``hosts``). Roost
forms one process group over them the way SageMaker's PyTorch containers do: the
rendezvous is the first host (``MASTER_ADDR``/``MASTER_PORT``, default port 7777), one
process per GPU (one per host on CPUs), NCCL on GPUs and Gloo on CPUs, after waiting
(bounded) for the host names to resolve.

The semantics are MXNet's ``dist_sync`` (docs/distributed.md): ``mini_batch_size`` is per
host (split over its GPUs), the reader partitions the data so each process sees its own
share with the same number of batches, gradients are averaged every step, and the
learning-rate steps count the updates of one host.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from roost.algorithm.layout import PROCS_ENV, parse_processes
from roost.errors import UserError

log = logging.getLogger("roost.algorithm")
#: lines every host prints (who it is, its share); ``roost.algorithm``'s lines come from the main process only
host_log = logging.getLogger("roost.host")

#: SageMaker's PyTorch containers' rendezvous port
DEFAULT_PORT = 7777
#: how long a host waits for the others' names to resolve (SageMaker's containers wait up to 15 minutes)
DNS_WAIT_SECONDS = 15 * 60


class DistributedError(UserError):
    """The hosts could not form their process group (names that never resolve, a rendezvous that fails)."""


@dataclass(frozen=True)
class World:
    """Where this process sits: its global rank among ``size`` processes, on host ``host`` of ``hosts``."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    host: str = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def host_count(self) -> int:
        return len(self.hosts)

    def sum(self, *values: float) -> list[float]:
        """The sums of ``values`` over every process (each process passes its own)."""
        if not self.distributed:
            return list(values)
        return _all_reduce(torch.tensor(values, dtype=torch.float64), dist.ReduceOp.SUM).tolist()

    def min(self, value: int) -> int:
        """The smallest ``value`` over every process."""
        if not self.distributed:
            return value
        return int(_all_reduce(torch.tensor([value], dtype=torch.int64), dist.ReduceOp.MIN).item())

    def share(self, sharded_by_host: bool) -> tuple[int, int]:
        """``(index, count)`` of this process's share of a channel: among all processes when every host holds
        the whole channel (FullyReplicated), among its host's processes when each holds its own part."""
        return (self.local_rank, self.local_size) if sharded_by_host else (self.rank, self.size)

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on one (a stop request must stop all of them together)."""
        return bool(self.sum(float(flag))[0]) if self.distributed else flag

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """The main process's ``obj`` on every process."""
        if not self.distributed:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = World()


def _all_reduce(t: torch.Tensor, op: Any) -> torch.Tensor:
    """``t`` reduced over every process, back on the CPU (NCCL reduces on the GPU only)."""
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=op)
    return t.cpu()


#: the process plan's rule on CPUs (docs/distributed.md, measured by benchmarks/bench_distributed.py --plan):
#: images of at most this many pixels (32 x 32) train faster as one single-thread process per core ...
PLAN_MAX_PIXELS = 32 * 32
#: ... when each process still gets a batch of this many images (batch norm is per process, as on MXNet's
#: multi-device hosts) ...
PLAN_MIN_PROCESS_BATCH = 16
#: ... and the run is long enough to pay for starting the processes and their process group (a few seconds)
PLAN_MIN_IMAGES = 25_000


@dataclass(frozen=True)
class ProcessPlan:
    """How a host trains: ``processes`` processes of ``threads`` threads each, and why."""

    processes: int
    threads: int
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.processes} process{'es' if self.processes > 1 else ''} x {self.threads} "
            f"thread{'s' if self.threads > 1 else ''}: {self.reason}"
        )


def process_plan(
    image_shape: tuple[int, ...],
    mini_batch_size: int,
    images: int,
    cores: int,
    gpus: int = 0,
    override: str | None = None,
) -> ProcessPlan:
    """One process per GPU; on a CPU host one process with every core, or one single-thread process per core
    where small images leave threads idle (the rule of :data:`PLAN_MAX_PIXELS` and the two after it).
    ``images`` is what the run trains on in all (samples x epochs). ``override`` is ``ROOST_PROCESSES_PER_HOST``:
    a number, or ``cores``."""
    how = f"set by {PROCS_ENV}"
    if override:
        try:
            count = parse_processes(override) or cores
        except ValueError as err:
            raise DistributedError(str(err)) from None
        most = gpus or cores  # a job's Environment may set it: it never starts more processes than the host has
        if count > most:
            how += f" to {count}, at most one per {'GPU' if gpus else 'core'} of this host"
            count = most
        if gpus:
            return ProcessPlan(count, 1, how)
        return ProcessPlan(count, max(1, cores // count), how)
    if gpus:
        return ProcessPlan(gpus, 1, "one process per GPU")
    pixels = image_shape[-1] * image_shape[-2]
    why_not = None
    if cores < 2:
        why_not = "one core"
    elif pixels > PLAN_MAX_PIXELS:
        why_not = f"images of {image_shape[-2]}x{image_shape[-1]} pixels keep {cores} threads of one process busy"
    elif mini_batch_size % cores or mini_batch_size // cores < PLAN_MIN_PROCESS_BATCH:
        why_not = (
            f"mini_batch_size={mini_batch_size} does not split into {cores} batches of {PLAN_MIN_PROCESS_BATCH} or more"
        )
    elif images < PLAN_MIN_IMAGES:
        why_not = f"{images} images in all are too few to pay for starting {cores} processes"
    if why_not:
        return ProcessPlan(1, cores, why_not + f" ({PROCS_ENV} overrides)")
    return ProcessPlan(
        cores,
        1,
        f"images of {image_shape[-2]}x{image_shape[-1]} pixels train faster on one single-thread process per core, "
        f"each with a batch of {mini_batch_size // cores} ({PROCS_ENV} overrides)",
    )


def world_for(hosts: list[str], host: str, local_rank: int, local_size: int) -> World:
    if host not in hosts:
        raise DistributedError(f"current_host {host!r} is not one of the hosts {hosts} in resourceconfig.json")
    node = sorted(hosts).index(host)  # SageMaker sorts them; the first is the rendezvous
    return World(
        rank=node * local_size + local_rank,
        size=len(hosts) * local_size,
        local_rank=local_rank,
        local_size=local_size,
        host=host,
        hosts=tuple(sorted(hosts)),
    )


def wait_for_hosts(hosts: tuple[str, ...], timeout: float = DNS_WAIT_SECONDS) -> None:
    """Until every host name resolves: they may appear only as the hosts come up (SageMaker says to retry)."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    for host in hosts:
        while True:
            try:
                socket.gethostbyname(host)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise DistributedError(
                        f"host {host} did not resolve within {timeout:.0f} s; the hosts of this job are {list(hosts)}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 30.0)


def rendezvous(world: World, interface: str | None = None, timeout: float = 1800.0) -> torch.device:
    """Join the process group of ``world``; returns this process's device.

    ``MASTER_ADDR`` / ``MASTER_PORT`` in the environment win (Roost's local runner sets them to loopback);
    otherwise the first host on port 7777, as SageMaker's PyTorch containers do.
    """
    address = os.environ.get("MASTER_ADDR")
    if not address:
        wait_for_hosts(world.hosts)
        address = world.hosts[0]
    port = int(os.environ.get("MASTER_PORT") or DEFAULT_PORT)
    cuda = torch.cuda.is_available()
    if interface:
        os.environ.setdefault("NCCL_SOCKET_IFNAME" if cuda else "GLOO_SOCKET_IFNAME", interface)
    if cuda:
        torch.cuda.set_device(world.local_rank)
    backend = "nccl" if cuda else "gloo"
    try:
        dist.init_process_group(
            backend,
            init_method=f"tcp://{address}:{port}",
            rank=world.rank,
            world_size=world.size,
            timeout=dt.timedelta(seconds=timeout),
        )
    except (RuntimeError, ValueError) as err:
        raise DistributedError(
            f"{world.host} (rank {world.rank} of {world.size}) could not join the process group at {address}:{port}: "
            f"{err}"
        ) from None
    host_log.info(
        "Distributed training: %s is rank %d of %d (%d host(s) x %d process(es)), %s backend, rendezvous %s:%d",
        world.host,
        world.rank,
        world.size,
        world.host_count,
        world.local_size,
        backend,
        address,
        port,
    )
    return torch.device("cuda", world.local_rank) if cuda else torch.device("cpu")


def leave(world: World, finished: bool = False) -> None:
    """Leave the process group. After a finished run every rank first waits for the others: a rank that tore
    down its Gloo pairs while a peer still used them (rank 0 saving the model) made that peer's Gloo thread
    abort the process ("terminate called without an active exception"). After a failure nobody waits."""
    if world.distributed and dist.is_initialized():
        if finished:
            try:
                dist.barrier()
            except RuntimeError as err:
                host_log.warning("%s (rank %d): the others did not finish with it: %s", world.host, world.rank, err)
        dist.destroy_process_group()
