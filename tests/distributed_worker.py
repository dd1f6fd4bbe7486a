"""A worker for tests/algorithm/test_distributed.py: spawned processes import it by name (a test module cannot
be imported that way under pytest's importlib mode)."""

from __future__ import annotations

import torch
from torch import nn


def first_step(rank: int, size: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from roost.algorithm.train import TrainStep

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))  # no batch-norm: the update is the same
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-4)
    step = TrainStep(model, optimizer, torch.device("cpu"))
    step.model = nn.parallel.DistributedDataParallel(model)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 255, (8, 3, 4, 4), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 3, (8,), generator=g)
    step(images[rank::size], labels[rank::size])
    if rank == 0:
        torch.save({k: v.detach() for k, v in model.state_dict().items()}, out)
    dist.barrier()  # as roost.algorithm.distributed.leave does: no rank tears down Gloo while another uses it
    dist.destroy_process_group()
