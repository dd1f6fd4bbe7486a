"""The bare training step of both systems, timed on random batches: Roost's ``TrainStep`` and MXNet's ``Module``.

Used by ``parity_mxnet.py --speed`` and ``bench_train.py``; MXNet's side runs in MXNet's own interpreter
(``mxnet_side.py step``), found through ``--mxnet`` or ``$MXNET_PYTHON``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from roost.algorithm.hyperparameters import parse_hyperparameters
from roost.algorithm.optim import make_optimizer
from roost.algorithm.runtime import precision_plan
from roost.algorithm.train import TrainStep, pick_device
from roost.models.resnet import ResNet

HERE = Path(__file__).resolve().parent
MXNET_ENV = "MXNET_PYTHON"

#: untimed steps first, on both sides. PyTorch allocates every step afresh, and glibc's heap keeps growing for the
#: first few steps (fragmentation) into pages the VM has never backed: 25,000-75,000 page faults at ~15 us each
#: in a step of ResNet-18 at 224. After ~5 steps the heap has settled and a long run sees almost none; MXNet plans
#: its memory once at bind. Two warm-up steps measured Roost's early steps, not its steady state.
WARMUP_STEPS = 5


def timed(fn: Callable[[], object], steps: int, warmup: int = WARMUP_STEPS) -> float:
    """Seconds for ``steps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t


def mxnet_python(given: str | None) -> str | None:
    """MXNet's interpreter, if there is one: ``given`` or ``$MXNET_PYTHON``."""
    python = given or os.environ.get(MXNET_ENV)
    if python and not Path(python).exists():
        raise SystemExit(f"no MXNet interpreter at {python} (../shared/peers/mxnet/setup.sh WORK makes one)")
    return python


def roost_train_step(
    layers: int, shape: tuple[int, int, int], batch: int, dtype: str = "float32"
) -> tuple[TrainStep, torch.Tensor, torch.Tensor]:
    """Roost's training step with ``precision_dtype=dtype`` (SageMaker's sgd, momentum and weight decay) and a
    random uint8 batch for it, set up as ``roost train`` sets them up."""
    device = pick_device()  # Roost's process settings, as ``roost train`` has them
    precision = precision_plan(dtype, device)
    if dtype == "float16" and precision.autocast_dtype is None:
        raise SystemExit(f"precision_dtype=float16 is float32 here: {precision.description}")
    hp = parse_hyperparameters(
        {
            "num_classes": "10",
            "num_training_samples": "100000",
            "mini_batch_size": str(batch),
            "num_layers": str(layers),
            "image_shape": ",".join(map(str, shape)),
        }
    )
    torch.manual_seed(0)
    model = ResNet(10, layers, shape).to(device, memory_format=torch.channels_last).train()
    step = TrainStep(model, make_optimizer(model, hp), device, precision=precision)
    images = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch,))
    return step, images, labels


def roost_step(layers: int, shape: tuple[int, int, int], batch: int, steps: int, dtype: str = "float32") -> float:
    """Images/s of Roost's training step (``roost_train_step``), after ``WARMUP_STEPS`` untimed steps."""
    step, images, labels = roost_train_step(layers, shape, batch, dtype)
    return batch * steps / timed(lambda: step(images, labels), steps)


def mxnet_step(
    python: str, layers: int, shape: tuple[int, int, int], batch: int, steps: int, threads: int, dtype="float32"
) -> float:
    """Images/s of MXNet 1.9.1's ``Module.forward_backward`` + ``update`` on SageMaker's network, float32; or
    with ``dtype="bfloat16"`` its own AMP under Gluon (Module cannot bind it; see ``mxnet_side.py``)."""
    args = [python, str(HERE / "mxnet_side.py"), "step", "--layers", str(layers), "--shape", ",".join(map(str, shape))]
    args += ["--batch", str(batch), "--steps", str(steps), "--classes", "10", "--warmup", str(WARMUP_STEPS)]
    args += ["--dtype", dtype]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"MXNet failed:\n{r.stderr[-3000:]}")
    return float(json.loads(r.stdout.strip().splitlines()[-1])["images_per_s"])
