"""Distributed training on this machine's CPUs: one host with 2 threads against 2 hosts with 1 thread each.

Measures, in one run, training steps of Roost's ``TrainStep`` on random uint8 batches (the input pipeline is
``bench_train.py``'s subject) with the same global batch:
* baseline: one process, ``torch.set_num_threads(2)``;
* two processes of one thread each, joined by Gloo and DistributedDataParallel as two hosts are
  (``roost.algorithm.distributed``), each with half the batch.
Prints images/s of both and their ratio, for ResNet-20 at 3,28,28 and ResNet-18 at 3,224,224.

    .venv/bin/python benchmarks/bench_distributed.py [--steps 30]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import socket  # noqa: E402
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    for title, layers, shape, batch in CASES:
        steps = args.steps if shape[1] < 100 else max(5, args.steps // 6)
        one = _time(_step(layers, shape, threads=2), batch, shape, steps)
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "seconds")
            mp.start_processes(
                _worker, args=(_free_port(), layers, shape, batch, steps, out), nprocs=2, start_method="spawn"
            )
            two = float(Path(out).read_text())
        a, b = batch * steps / one, batch * steps / two
        print(f"{title}, global batch {batch}, {steps} steps:")
        print(f"  1 host x 2 threads   {a:8.1f} img/s (baseline)")
        print(f"  2 hosts x 1 thread   {b:8.1f} img/s  ratio {b / a:.2f}x")


if __name__ == "__main__":
    main()
