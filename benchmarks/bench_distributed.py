"""Distributed training on this machine's CPUs: one host with 2 threads against 2 hosts with 1 thread each.

Measures, in one run, training steps of Roost's ``TrainStep`` on random uint8 batches (the input pipeline is
``bench_train.py``'s subject) with the same global batch:
* baseline: one process, ``torch.set_num_threads(2)``;
* two processes of one thread each, joined by Gloo and DistributedDataParallel as two hosts are
  (``roost.algorithm.distributed``), each with half the batch.
Prints images/s of both and their ratio, for ResNet-20 at 3,28,28 and ResNet-18 at 3,224,224.

``--plan`` measures the same two ways over a grid of networks and image sizes (:data:`PLAN_CASES`) and prints
the process plan's choice beside each (``roost.algorithm.distributed.process_plan``; docs/distributed.md).

Then a whole 2-instance training job (ResNet-20, 3,28,28, real loaders and checkpoints) through the job runner,
on local processes (baseline) and on a Ray cluster of two one-CPU nodes started on this machine: the
algorithm's images/s over the epochs after the first, and their ratio (Ray's scaling against the local backend).

    .venv/bin/python benchmarks/bench_distributed.py [--steps 30] [--epochs 4]
    .venv/bin/python benchmarks/bench_distributed.py --plan [--steps 20]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch import nn  # noqa: E402

from roost.algorithm.train import TrainStep  # noqa: E402
from roost.system import free_port  # noqa: E402
from step_speed import roost_train_step  # noqa: E402

# the tests' tiny data sets and job requests (tests/helpers.py), and this folder's machine.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = [("ResNet-20, 3,28,28", 20, (3, 28, 28), 128), ("ResNet-18, 3,224,224", 18, (3, 224, 224), 16)]
#: --plan: the sizes the process plan's rule is drawn from (roost.algorithm.distributed.process_plan)
PLAN_CASES = [
    ("ResNet-20, 1,28,28", 20, (1, 28, 28), 128),
    ("ResNet-20, 3,28,28", 20, (3, 28, 28), 128),
    ("ResNet-18, 3,32,32", 18, (3, 32, 32), 128),
    ("ResNet-18, 3,64,64", 18, (3, 64, 64), 64),
    ("ResNet-50, 3,64,64", 50, (3, 64, 64), 32),
    ("ResNet-18, 3,112,112", 18, (3, 112, 112), 32),
    ("ResNet-18, 3,224,224", 18, (3, 224, 224), 16),
]


def _step(layers: int, shape: tuple[int, int, int], threads: int, dtype: str = "float32") -> TrainStep:
    """Roost's training step as ``roost train`` sets it up (``step_speed.roost_train_step``), on ``threads``."""
    step, _, _ = roost_train_step(layers, shape, 8, dtype)
    torch.set_num_threads(threads)
    return step


def _time(step: TrainStep, batch: int, shape, steps: int, warmup: int = 3) -> float:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 255, (batch, *shape), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch,), generator=g)
    for _ in range(warmup):
        step(images, labels)
    if dist.is_initialized():
        dist.barrier()
    tic = time.perf_counter()
    for _ in range(steps):
        step(images, labels)
    return time.perf_counter() - tic


def _worker(rank: int, port: int, layers: int, shape, batch: int, steps: int, out: str, procs: int, dtype: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=procs)
    step = _step(layers, shape, threads=1, dtype=dtype)
    step.model = nn.parallel.DistributedDataParallel(step.model)
    seconds = _time(step, batch // procs, shape, steps)
    if rank == 0:
        Path(out).write_text(str(seconds))
    dist.barrier()  # no rank tears down Gloo while another still uses it (roost.algorithm.distributed.leave)
    dist.destroy_process_group()


def _job_speed(launcher, tmp: Path, name: str, data, epochs: int) -> float:
    """Images/s of a 2-instance job (epochs after the first), as the algorithm measures them."""
    import json

    from helpers import training_request
    from roost.storage.database import open_database
    from roost.training.runner import JobRunner
    from roost.training.service import TrainingJobService

    sessions = open_database(f"sqlite:///{tmp / (name + '.db')}")
    runner = JobRunner(sessions, tmp / name, poll=0.1, launcher=launcher)
    service = TrainingJobService(sessions)
    req = training_request(
        data,
        tmp,
        name=name,
        epochs=epochs,
        ResourceConfig={"InstanceCount": 2, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5},
    )
    req["HyperParameters"].update(num_layers="20", image_shape="3,28,28", mini_batch_size="64")
    service.create_training_job(req)
    runner.start()
    try:
        while service.describe_training_job({"TrainingJobName": name})["TrainingJobStatus"] == "InProgress":
            time.sleep(0.5)
    finally:
        runner.shutdown()
    d = service.describe_training_job({"TrainingJobName": name})
    if d["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"{name}: {d.get('FailureReason')}")
    metrics = tmp / name / "jobs" / name / "opt_ml" / "output" / "data" / "metrics.jsonl"
    speeds = [json.loads(line)["images_per_second"] for line in metrics.read_text().splitlines()][1:]
    return sum(speeds) / len(speeds)


def compare_backends(epochs: int) -> None:
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        print("Ray is not installed (pip install 'roost[ray]'): no Ray figure")
        return
    from helpers import make_rec_split
    from roost.training.ray_cluster import RayLauncher

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        data = make_rec_split(tmp / "data", per_class=160, size=32, classes=3)
        local = _job_speed(None, tmp, "local", data, epochs)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        try:
            on_ray = _job_speed(RayLauncher(cluster.address, {"ml.m5.large": (1, 0)}), tmp, "ray", data, epochs)
        finally:
            ray.shutdown()
            cluster.shutdown()
    print(f"2-instance job, ResNet-20 3,28,28, batch 64 per host, {data[2]} images, {epochs} epochs:")
    print(f"  local processes      {local:8.1f} img/s (baseline)")
    print(f"  Ray, 2 nodes         {on_ray:8.1f} img/s  ratio {on_ray / local:.2f}x")


def one_process(layers: int, shape, batch: int, steps: int, threads: int = 2, dtype: str = "float32") -> float:
    """Images/s of one process with ``threads`` threads (``precision_dtype=dtype``)."""
    return batch * steps / _time(_step(layers, shape, threads, dtype), batch, shape, steps)


def processes(layers: int, shape, batch: int, steps: int, procs: int = 2, dtype: str = "float32") -> float:
    """Images/s of ``procs`` single-thread processes joined by Gloo and DDP, splitting the global ``batch``, as
    the process plan runs a host (``precision_dtype=dtype``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "seconds")
        mp.start_processes(
            _worker,
            args=(free_port(), layers, shape, batch, steps, out, procs, dtype),
            nprocs=procs,
            start_method="spawn",
        )
        return batch * steps / float(Path(out).read_text())


def both_ways(layers: int, shape, batch: int, steps: int) -> tuple[float, float]:
    """Images/s of one process with 2 threads, and of 2 single-thread processes, on the same global batch."""
    return one_process(layers, shape, batch, steps), processes(layers, shape, batch, steps)


def plan_grid(steps: int) -> None:
    """The process plan's rule against the measurement, size by size."""
    from machine import cpu
    from roost.algorithm.distributed import process_plan

    print(f"CPU: {cpu()}; float32 training steps, 1 process x 2 threads against 2 processes x 1 thread")
    print("| network, input, batch | 1 x 2 img/s | 2 x 1 img/s | ratio | the rule's plan |")
    print("| --- | --- | --- | --- | --- |")
    for title, layers, shape, batch in PLAN_CASES:
        n = steps if shape[1] <= 32 else max(3, steps // (4 if shape[1] <= 64 else 8))
        a, b = both_ways(layers, shape, batch, n)
        plan = process_plan(shape, batch, 10**6, cores=2)
        print(
            f"| {title}, {batch} | {a:.1f} | {b:.1f} | {b / a:.2f}x | {plan.processes} x {plan.threads} |", flush=True
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--plan", action="store_true", help="the process plan's grid of sizes instead")
    args = ap.parse_args()
    if args.plan:
        plan_grid(args.steps)
        return
    for title, layers, shape, batch in CASES:
        steps = args.steps if shape[1] < 100 else max(5, args.steps // 6)
        a, b = both_ways(layers, shape, batch, steps)
        print(f"{title}, global batch {batch}, {steps} steps:")
        print(f"  1 host x 2 threads   {a:8.1f} img/s (baseline)")
        print(f"  2 hosts x 1 thread   {b:8.1f} img/s  ratio {b / a:.2f}x")
    compare_backends(args.epochs)


if __name__ == "__main__":
    main()
