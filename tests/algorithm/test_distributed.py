"""Distributed training on CPUs (Gloo): the shares of the data, the first update against one process, and whole
jobs of two hosts (and of one host with two processes) through the container's entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from distributed_worker import first_step
from helpers import BASE_HP, free_port, make_rec_split
from roost.algorithm.distributed import PROCS_ENV, DistributedError, ProcessPlan, World, process_plan, world_for
from roost.algorithm.layout import JobLayout, ResourceConfig, prepare_local_job
from roost.data.dataset import RoundBatchSampler


def test_every_process_gets_an_equal_share_of_full_batches():
    n, batch, processes = 27, 4, 3
    shares = [list(RoundBatchSampler(n, batch, seed=1, share=(r, processes))) for r in range(processes)]
    assert len({len(s) for s in shares}) == 1 and all(len(b) == batch for s in shares for b in s)
    seen = [i for s in shares for b in s for i in b]
    assert set(seen) == set(range(n)) and len(seen) == len(shares[0]) * batch * processes
    assert len(seen) - n < batch * processes  # the padding is less than one round of batches
    single = list(RoundBatchSampler(n, batch, seed=1))
    assert single == list(RoundBatchSampler(n, batch, seed=1, share=(0, 1)))  # one process: as before


def test_ranks_follow_sagemakers_sorted_hosts():
    hosts = ["algo-2", "algo-1", "algo-3"]
    w = world_for(hosts, "algo-2", local_rank=1, local_size=2)
    assert (w.rank, w.size, w.host_count, w.hosts[0]) == (3, 6, 3, "algo-1") and not w.is_main
    assert world_for(hosts, "algo-1", 0, 1).is_main
    for host in hosts:  # the launchers find the rendezvous host by the same order
        config = ResourceConfig(current_host=host, hosts=hosts)
        assert config.is_rendezvous == (world_for(hosts, host, 0, 1).rank == 0)
    with pytest.raises(ValueError, match="not one of the hosts"):
        world_for(hosts, "algo-9", 0, 1)


def test_two_workers_make_the_update_one_worker_makes_with_their_global_batch(tmp_path):
    from roost.algorithm.train import TrainStep

    torch.multiprocessing.start_processes(
        first_step, args=(2, free_port(), str(tmp_path / "two.pt")), nprocs=2, start_method="spawn"
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4), "cpu")
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 255, (8, 3, 4, 4), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (8,), generator=g)
    order = torch.tensor([0, 2, 4, 6, 1, 3, 5, 7])  # the same images; a mean does not care about their order
    step(images[order], labels[order])
    two = torch.load(tmp_path / "two.pt")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(two[name], value, rtol=1e-5, atol=1e-6)


def test_the_process_plan_gives_small_images_a_process_per_core_and_says_why():
    small = process_plan((3, 28, 28), 128, 60_000, cores=2)
    assert (small.processes, small.threads) == (2, 1)
    assert str(small).startswith("2 processes x 1 thread: images of 28x28 pixels") and "batch of 64" in str(small)
    for shape, batch, images, cores, why in (
        ((3, 224, 224), 32, 60_000, 2, "images of 224x224 pixels keep 2 threads of one process busy"),
        ((3, 64, 64), 128, 60_000, 2, "64x64"),
        ((1, 28, 28), 127, 60_000, 2, "mini_batch_size=127 does not split into 2 batches of 16"),
        ((1, 28, 28), 16, 60_000, 2, "does not split into 2 batches of 16"),  # batch norm on 8 images: no
        ((1, 28, 28), 128, 1_000, 2, "1000 images in all are too few"),  # not worth starting processes
        ((1, 28, 28), 128, 60_000, 1, "one core"),
    ):
        plan = process_plan(shape, batch, images, cores)
        assert (plan.processes, plan.threads) == (1, cores) and why in plan.reason, plan
        assert plan.reason.endswith(f"({PROCS_ENV} overrides)")
    assert str(process_plan((3, 224, 224), 32, 10, cores=2)).startswith("1 process x 2 threads: ")
    assert process_plan((3, 224, 224), 32, 10, cores=16, gpus=4) == ProcessPlan(4, 1, "one process per GPU")
    # the override, bounded by the host: a job's Environment may carry it
    assert process_plan((3, 224, 224), 32, 10, cores=4, override="2") == ProcessPlan(2, 2, f"set by {PROCS_ENV}")
    assert process_plan((3, 28, 28), 128, 60_000, cores=4, override="1").processes == 1
    assert process_plan((3, 224, 224), 32, 10, cores=4, override="cores").processes == 4
    capped = process_plan((3, 224, 224), 32, 10, cores=2, override="500")
    assert (capped.processes, capped.threads) == (2, 1) and "to 500, at most one per core of this host" in capped.reason
    with pytest.raises(DistributedError, match="give a number of processes"):
        process_plan((3, 28, 28), 128, 60_000, cores=2, override="many")


def test_world_reductions_are_identities_on_one_process():
    w = World()
    assert w.sum(1.0, 2.0) == [1.0, 2.0] and w.any(True) and w.gather("x") == ["x"] and w.broadcast(3) == 3


# --------------------------------------------------------------------------- whole jobs


def _hosts(tmp: Path, count: int, data, epochs: int, **hp) -> list[JobLayout]:
    train, val, n = data
    layouts = []
    for i in range(count):
        job = tmp / f"algo-{i + 1}"
        params = {**BASE_HP, "num_training_samples": n, "epochs": epochs, "mini_batch_size": 8, **hp}
        prepare_local_job(job, {"train": train, "validation": val}, {k: str(v) for k, v in params.items()})
        layout = JobLayout(job)
        layout.resource_config_file.write_text(json.dumps(ResourceConfig.for_host(i, count).__dict__))
        layouts.append(layout)
    return layouts


def _start(layout: JobLayout, port: int, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "roost", "container", "train", "--root", str(layout.root)],
        env={**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_rec_split(tmp_path_factory.mktemp("dist"), per_class=20)


@pytest.mark.slow
def test_a_two_host_job_trains_once_and_ships_one_model(tmp_path, data):
    layouts = _hosts(tmp_path, 2, data, epochs=6)
    port = free_port()
    procs = [_start(layout, port) for layout in layouts]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    first, second = logs
    assert "Distributed training: algo-1 is rank 0 of 2" in first and "Epoch[5] Validation-accuracy" in first
    assert "algo-2 (rank 1) finished its share of 6 epochs" in second and "Epoch[" not in second
    assert any(layouts[0].model.glob("*.safetensors")) and not layouts[1].model.exists()
    records = [json.loads(line) for line in (layouts[0].output_data / "metrics.jsonl").read_text().splitlines()]
    validation_images = sum(row["support"] for row in records[-1]["validation_per_class"])
    assert validation_images == 15  # every validation image counted once, over both hosts' shares
    assert records[-1]["validation_accuracy"] >= 0.6, records[-1]


@pytest.mark.slow
def test_a_host_that_dies_fails_the_others_instead_of_hanging_them(tmp_path, data):
    layouts = _hosts(tmp_path, 2, data, epochs=500)
    port = free_port()
    first, second = (_start(layout, port) for layout in layouts)
    deadline = time.time() + 120
    while not (layouts[0].output_data / "metrics.jsonl").is_file() and time.time() < deadline:
        time.sleep(0.2)
    second.kill()
    out = first.communicate(timeout=120)[0]
    assert first.returncode != 0, out[-2000:]
    assert layouts[0].failure.is_file() and "Error" in layouts[0].read_failure()


@pytest.mark.slow
def test_hosts_with_parts_of_different_sizes_take_the_same_number_of_steps(tmp_path, data, tmp_path_factory):
    """ShardedByS3Key: each host reads only its own part; the larger one stops where the smaller one must."""
    small = make_rec_split(tmp_path_factory.mktemp("small"), per_class=8)
    layouts = _hosts(tmp_path, 2, data, epochs=2)
    for layout, part in zip(layouts, (data[0], small[0]), strict=True):
        layout.link_channel("train", part)
        channels = json.loads(layout.input_data_config_file.read_text())
        channels["train"]["S3DistributionType"] = "ShardedByS3Key"
        layout.input_data_config_file.write_text(json.dumps(channels))
    port = free_port()
    procs = [_start(layout, port) for layout in layouts]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert "45 training images here, 6 batches" in logs[0] and "Epoch[1] Validation-accuracy" in logs[0]
    assert "18 training images here, 3 batches" in logs[1]
    assert "Epoch[0] Train-accuracy" in logs[0]  # both took 3 steps an epoch: nobody waited for the other


@pytest.mark.slow
def test_several_processes_on_one_host_share_its_batch_and_stop_together(tmp_path, data):
    (layout,) = _hosts(tmp_path, 1, data, epochs=5000)
    proc = _start(layout, free_port(), ROOST_PROCESSES_PER_HOST="2")
    deadline = time.time() + 120
    while not (layout.output_data / "metrics.jsonl").is_file() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(15)  # StopTrainingJob reaches the host's first process; it passes it on
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "algo-1 is rank 0 of 2 (1 host(s) x 2 process(es))" in out
    assert "batches of 4 per process, 8 per host, 8 in all" in out
    assert "Stop requested (SIGTERM)" in out and any(layout.model.glob("*.safetensors"))
