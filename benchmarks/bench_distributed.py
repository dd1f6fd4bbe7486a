"""Distributed training on this machine's CPUs: one host with 2 threads against 2 hosts with 1 thread each.

Measures, in one run, training steps of Roost's ``TrainStep`` on random uint8 batches (the input pipeline is
``bench_train.py``'s subject) with the same global batch:
* baseline: one process, ``torch.set_num_threads(2)``;
* two processes of one thread each, joined by Gloo and DistributedDataParallel as two hosts are
  (``roost.algorithm.distributed``), each with half the batch.
Prints images/s of both and their ratio, for ResNet-20 at 3,28,28 and ResNet-18 at 3,224,224.

Then a whole 2-instance training job (ResNet-20, 3,28,28, real loaders and checkpoints) through the job runner,
on local processes (baseline) and on a Ray cluster of two one-CPU nodes started on this machine: the
algorithm's images/s over the epochs after the first, and their ratio (Ray's scaling against the local backend).

    .venv/bin/python benchmarks/bench_distributed.py [--steps 30] [--epochs 4]
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

from roost.algorithm.hyperparameters import parse_hyperparameters  # noqa: E402
from roost.algorithm.optim import make_optimizer  # noqa: E402
from roost.algorithm.train import TrainStep  # noqa: E402
from roost.models.resnet import ResNet  # noqa: E402
from roost.system import free_port  # noqa: E402

# the tests' tiny data sets and job requests (tests/helpers.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CASES = [("ResNet-20, 3,28,28", 20, (3, 28, 28), 128), ("ResNet-18, 3,224,224", 18, (3, 224, 224), 16)]


def _step(layers: int, shape: tuple[int, int, int], threads: int) -> TrainStep:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hp = parse_hyperparameters(
        {
            "num_classes": "10",
            "num_training_samples": "1000",
            "num_layers": str(layers),
            "mini_batch_size": "8",
            "image_shape": ",".join(map(str, shape)),
        }
    )
    model = ResNet(10, layers, shape).to(memory_format=torch.channels_last)
    return TrainStep(model, make_optimizer(model, hp), torch.device("cpu"))


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


def _worker(rank: int, port: int, layers: int, shape, batch: int, steps: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    step = _step(layers, shape, threads=1)
    step.model = nn.parallel.DistributedDataParallel(step.model)
    seconds = _time(step, batch // 2, shape, steps)
    if rank == 0:
        Path(out).write_text(str(seconds))
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    for title, layers, shape, batch in CASES:
        steps = args.steps if shape[1] < 100 else max(5, args.steps // 6)
        one = _time(_step(layers, shape, threads=2), batch, shape, steps)
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "seconds")
            mp.start_processes(
                _worker, args=(free_port(), layers, shape, batch, steps, out), nprocs=2, start_method="spawn"
            )
            two = float(Path(out).read_text())
        a, b = batch * steps / one, batch * steps / two
        print(f"{title}, global batch {batch}, {steps} steps:")
        print(f"  1 host x 2 threads   {a:8.1f} img/s (baseline)")
        print(f"  2 hosts x 1 thread   {b:8.1f} img/s  ratio {b / a:.2f}x")
    compare_backends(args.epochs)


if __name__ == "__main__":
    main()
