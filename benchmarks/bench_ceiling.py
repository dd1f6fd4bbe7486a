"""What this CPU can do at most, so a training speed can be read as a share of it (issue 25).

Three matrix-product ceilings on the threads training gets, measured in the same run: float32; bfloat16; and float32
with oneDNN's reduced-precision math (``torch.backends.mkldnn`` ``fp32_precision="bf16"``, float32 tensors whose
products run in bfloat16, as TF32 does on CUDA). Then the kernels oneDNN picks for bfloat16 products and
channels-last convolutions (from ``ONEDNN_VERBOSE``: ``avx512_core_amx_bf16`` means the AMX tiles,
``avx512_core_bf16`` the AVX-512 dot products), and the images per second each ceiling allows for the harness's
networks, from their counted FLOPs per trained image (forward and backward). With ``--steps N``, Roost's own
training step (``step_speed.roost_step``, float32 and bfloat16 autocast) is timed on each network and printed as
a share of its ceiling: where the headroom is.

    .venv/bin/python benchmarks/bench_ceiling.py [--size 4096] [--threads 2] [--steps 10] [--networks 0,1,3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from roost.models.resnet import ResNet

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from machine import cpu  # noqa: E402
from step_speed import roost_step  # noqa: E402

#: the harness's networks (issue 25): name, layers, image shape, the batch its runs use
NETWORKS = [
    ("ResNet-20", 20, (1, 28, 28), 128),
    ("ResNet-20", 20, (3, 28, 28), 128),
    ("ResNet-18", 18, (3, 32, 32), 128),
    ("ResNet-18", 18, (3, 224, 224), 32),
    ("ResNet-50", 50, (3, 224, 224), 32),
]


def gflops(size: int, dtype: torch.dtype, reduced_fp32: bool, repeats: int) -> float:
    """Best of ``repeats`` products of two ``size`` x ``size`` matrices, in GFLOP/s."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    before = torch.backends.mkldnn.matmul.fp32_precision
    torch.backends.mkldnn.matmul.fp32_precision = "bf16" if reduced_fp32 else "ieee"
    try:
        torch.mm(a, b)  # oneDNN builds its kernel on the first call
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t)
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = before
    return 2 * size**3 / best / 1e9


def trained_image_gflop(layers: int, shape: tuple[int, int, int]) -> float:
    """FLOPs of one image through forward and backward, counted by PyTorch (convolutions and products)."""
    model = ResNet(10, layers, shape).train()
    x = torch.randn(2, *shape)  # two images: batch norm needs more than one value per channel
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / 2 / 1e9


_KERNELS = """
import torch
a = torch.randn(512, 512).bfloat16()
torch.mm(a, a)
conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
x = torch.randn(8, 64, 56, 56, requires_grad=True).to(memory_format=torch.channels_last)
with torch.autocast("cpu", dtype=torch.bfloat16):
    y = conv(x)
y.float().sum().backward()
"""


def kernels() -> dict[str, list[str]]:
    """oneDNN's implementation names per primitive kind, for a bfloat16 product and a convolution's three passes."""
    out = subprocess.run(
        [sys.executable, "-c", _KERNELS],
        env={**os.environ, "ONEDNN_VERBOSE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    seen: dict[str, list[str]] = {}
    for line in out.splitlines():
        # onednn_verbose,v1,primitive,exec,cpu,<kind>,<implementation>,<propagation>,...
        fields = line.split(",")
        if line.startswith("onednn_verbose") and "exec" in fields and len(fields) > 7:
            at = fields.index("exec")
            kind, impl, prop = fields[at + 2], fields[at + 3], fields[at + 4]
            name = f"{kind} {prop}"
            if impl not in seen.setdefault(name, []):
                seen[name].append(impl)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096, help="matrix side")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0, help="also time Roost's step on each network (0: do not)")
    parser.add_argument("--networks", default="0,1,2,3,4", help="which rows of NETWORKS, by index")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu()}; torch {torch.__version__}, {args.threads} threads, {args.size}x{args.size} products")

    ceilings = {
        "float32": gflops(args.size, torch.float32, False, args.repeats),
        "bfloat16": gflops(args.size, torch.bfloat16, False, args.repeats),
        "float32, bf16 math": gflops(args.size, torch.float32, True, args.repeats),
    }
    for name, value in ceilings.items():
        print(f"  {name:<20} {value:8.0f} GFLOP/s  {value / ceilings['float32']:5.2f}x float32")

    print("oneDNN's kernels (ONEDNN_VERBOSE):")
    found = kernels()
    for name, impls in found.items():
        print(f"  {name:<34} {', '.join(impls)}")
    if not found:
        print("  none reported: this build of torch does not run these through oneDNN")

    print("images/s each ceiling allows (FLOPs per trained image, forward and backward):")
    header = "".join(f"{name:>20}" for name in ceilings)
    print(f"  {'network':<24}{'GFLOP/img':>10}{header}")
    rows = []
    chosen = [NETWORKS[int(i)] for i in args.networks.split(",")]
    for label, layers, shape, batch in chosen:
        cost = trained_image_gflop(layers, shape)
        allowed = {name: value / cost for name, value in ceilings.items()}
        rows.append({"network": label, "shape": shape, "batch": batch, "gflop_per_image": cost, "ceiling": allowed})
        cells = "".join(f"{v:20.1f}" for v in allowed.values())
        print(f"  {label + ' ' + ','.join(map(str, shape)):<24}{cost:10.3f}{cells}")

    if args.steps:
        print(f"Roost's training step ({args.steps} timed steps), as a share of its ceiling:")
        for row in rows:
            label, shape = row["network"], row["shape"]
            for dtype, ceiling in (("float32", "float32"), ("float16", "bfloat16")):
                speed = roost_step(int(label.split("-")[1]), shape, row["batch"], args.steps, dtype)
                share = speed / row["ceiling"][ceiling]
                row.setdefault("roost", {})[ceiling] = speed
                name = f"{label} {','.join(map(str, shape))}"
                print(f"  {name:<24} {ceiling:<9} batch {row['batch']:<4} {speed:8.1f} img/s  {share:6.1%} of ceiling")
    if args.json:
        args.json.write_text(
            json.dumps({"cpu": cpu(), "gflops": ceilings, "kernels": found, "networks": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
