"""Training throughput: Roost's training step and whole pipeline against a plain PyTorch eager loop.

For ResNet-18 at 3,224,224 (batch 32) and ResNet-20 at 3,28,28 (batch 128):

* baseline - a plain eager loop, NCHW float input, same network and optimizer
  (SGD, momentum 0.9, weight decay 1e-4), the way a PyTorch tutorial writes it;
* roost step - ``roost.algorithm.train.TrainStep`` on uint8 batches (what the
  loader delivers), i.e. Roost's own step, in float32 and, on CPUs with native
  bfloat16, with ``precision_dtype=float16`` (bfloat16 autocast);
* pipeline alone - decoding + augmentation from a .rec through Roost's loader,
  no training, to show it outruns what training consumes;
* whole pipeline - loader + step together, as ``roost train`` runs;
* the process plan's way - the same step as one single-thread process per core
  joined by Gloo (``bench_distributed.processes``), the batch split between them.

All in one process, so the ratios compare like with like. Where MXNet 1.9.1's
interpreter is at hand (``--mxnet PATH`` or ``$MXNET_PYTHON``; ``../shared/peers/mxnet/setup.sh
WORK`` makes one), its bare training step on SageMaker's network is measured in
the same run and every row gets a ratio against it too.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--mxnet WORK/venv/bin/python]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench_distributed import processes  # noqa: E402
from roost.algorithm.hyperparameters import parse_hyperparameters  # noqa: E402
from roost.algorithm.optim import make_optimizer  # noqa: E402
from roost.algorithm.runtime import cpu_has_native_bf16, precision_plan  # noqa: E402
from roost.algorithm.train import TrainStep, load_channel, pick_device  # noqa: E402
from roost.data.dataset import make_loader  # noqa: E402
from roost.formats import recordio  # noqa: E402
from roost.models.resnet import ResNet  # noqa: E402
from roost.system import available_cores  # noqa: E402
from step_speed import mxnet_python, mxnet_step, timed  # noqa: E402


def make_rec(path: Path, n: int, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    w, h = size
    with recordio.RecordWriter(path) as out:
        for i in range(n):
            img = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
            out.write(recordio.pack(recordio.IRHeader(0, float(i % 10), i, 0), buf.tobytes()))


def _hp(layers: int, hw: int, batch: int):
    return parse_hyperparameters(
        {
            "num_classes": "10",
            "num_training_samples": "100000",
            "mini_batch_size": str(batch),
            "num_layers": str(layers),
            "image_shape": f"3,{hw},{hw}",
            "augmentation_type": "crop",
            "resize": str(hw + hw // 7),
        }
    )


def baseline(layers: int, hw: int, batch: int, steps: int) -> float:
    """A plain eager PyTorch loop: NCHW float input, same network and optimizer."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(available_cores())
    torch.manual_seed(0)
    model = ResNet(10, layers, (3, hw, hw)).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = (torch.randint(0, 256, (batch, 3, hw, hw), dtype=torch.uint8)).float().to(device)
    y = torch.randint(0, 10, (batch,)).to(device)

    def plain():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return batch * steps / timed(plain, steps)


def roost(layers: int, hw: int, batch: int, steps: int, rec: Path, workers: int) -> dict[str, float]:
    hp = _hp(layers, hw, batch)
    device = pick_device()  # also applies Roost's process settings
    labels = torch.randint(0, 10, (batch,))
    images_u8 = torch.randint(0, 256, (batch, 3, hw, hw), dtype=torch.uint8)
    # precision_dtype=float16 is bfloat16 autocast on CPUs with native bfloat16, and nothing new elsewhere
    dtypes = {"float32": "float32", "bfloat16": "float16"} if cpu_has_native_bf16() else {"float32": "float32"}
    train_steps = {}
    results = {}
    for name, dtype in dtypes.items():
        torch.manual_seed(0)
        model = ResNet(10, layers, (3, hw, hw)).to(device, memory_format=torch.channels_last).train()
        step = TrainStep(model, make_optimizer(model, hp), device, precision=precision_plan(dtype, device))
        train_steps[name] = step
        results[f"roost step, {name}"] = batch * steps / timed(lambda step=step: step(images_u8, labels), steps)

    dataset = load_channel([rec], hp, train=True)
    loader = make_loader(dataset, batch, train=True, workers=workers)

    def batches():
        while True:
            yield from loader

    stream = batches()
    # drain what the workers prefetched, then time the steady state
    for _ in range(workers * 4 + 2):
        next(stream)
    n_batches = 40 if hw > 100 else 100
    t = time.perf_counter()
    for _ in range(n_batches):
        next(stream)
    results["pipeline alone"] = batch * n_batches / (time.perf_counter() - t)

    for name, step in train_steps.items():

        def whole(step=step):
            images, y = next(stream)
            step(images, y)

        results[f"whole pipeline, {name}"] = batch * steps / timed(whole, steps)
    stream.close()  # ends the loader iteration and lets its workers go

    cores = available_cores()
    if cores > 1:  # the process plan's way: one single-thread process per core, the batch split between them
        for name, dtype in dtypes.items():
            rate = processes(layers, (3, hw, hw), batch, steps, procs=cores, dtype=dtype)
            results[f"roost step, {name}, {cores} proc x 1 thread"] = rate
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (noisier)")
    ap.add_argument("--workers", type=int, default=available_cores(), help="loader workers")
    ap.add_argument("--mxnet", help="MXNet 1.9.1's python, to measure it in this run (default: $MXNET_PYTHON)")
    args = ap.parse_args()
    python = mxnet_python(args.mxnet)
    configs = [(20, 28, 128, 8 if args.quick else 30), (18, 224, 32, 2 if args.quick else 6)]
    print(
        f"torch {torch.__version__}, {available_cores()} threads, {args.workers} loader workers, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    # every baseline first: Roost's process settings (pick_device) must not help them
    base = {layers: baseline(layers, hw, batch, steps) for layers, hw, batch, steps in configs}
    mxnet = {
        layers: mxnet_step(python, layers, (3, hw, hw), batch, steps, available_cores())
        for layers, hw, batch, steps in configs
        if python
    }
    if not python:
        print("MXNet: not measured (no --mxnet and no $MXNET_PYTHON)")
    with tempfile.TemporaryDirectory() as tmp:
        for layers, hw, batch, steps in configs:
            rec = Path(tmp) / f"bench{hw}.rec"
            src = (hw + hw // 7) * 4 // 3
            make_rec(rec, max(batch * 4, 256), (src, hw + hw // 7))
            res = {"baseline (eager, NCHW)": base[layers], **roost(layers, hw, batch, steps, rec, args.workers)}
            print(f"\nResNet-{layers} at 3,{hw},{hw}, batch {batch}:")
            if layers in mxnet:
                label = "MXNet 1.9.1 step (this run)"
                print(f"  {label:<40} {mxnet[layers]:8.1f} img/s")
            for name, rate in res.items():
                against = f"   {rate / mxnet[layers]:5.2f}x MXNet" if layers in mxnet else ""
                print(f"  {name:<40} {rate:8.1f} img/s   {rate / base[layers]:5.2f}x baseline{against}")


if __name__ == "__main__":
    main()
