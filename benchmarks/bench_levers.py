"""Issue 25's levers, each timed against Roost's own training step in the same process, and a profile of where
the step's time goes.

Each lever is a variant of ``step_speed.roost_train_step`` (SageMaker's sgd with momentum and weight decay,
channels-last, ``precision_dtype`` float32 or float16 = bfloat16 autocast on CPUs that have it). The variants run
alternately, round after round, on the same random batch, and print images/s with the ratio to the step Roost
ships:

- ``foreach``: the optimizer's multi-tensor path (``SGD(foreach=True)``); PyTorch takes it by default on GPUs only;
- ``fused``: the fused SGD kernel (``SGD(fused=True)``), one pass over each parameter for decay, momentum and step;
- ``bf16-weights``: the whole network's parameters in bfloat16, no autocast: nothing converts between bfloat16
  and float32 inside the step (float16 only; no float32 master weights, so it is a speed probe, not a recipe);
- ``compiled``: the network through ``torch.compile`` (Inductor), which fuses batch norm, ReLU and adds into
  generated loops; its compilation is done in the warm-up steps and printed, not timed.

``--profile`` adds a ``torch.profiler`` table of one variant's step: self CPU time grouped into convolutions,
batch norm, ReLU, adds, pooling, the optimizer, dtype conversions and the rest, as shares of the step.

    .venv/bin/python benchmarks/bench_levers.py [--nets 20:1,28,28:128,18:3,224,224:32] [--dtype float16]
        [--rounds 3] [--steps 10] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu  # noqa: E402
from step_speed import WARMUP_STEPS, roost_train_step, timed  # noqa: E402

VARIANTS = ("roost", "foreach", "fused", "bf16-weights", "compiled")

#: profiler op names, by the part of the step they belong to (first match wins)
GROUPS = (
    ("convolution", ("conv", "mkldnn_convolution")),
    ("batch norm", ("batch_norm",)),
    ("relu", ("relu", "threshold")),
    ("pooling", ("pool",)),
    ("add", ("aten::add", "aten::add_")),
    ("optimizer", ("sgd", "_foreach", "aten::mul_", "aten::lerp", "aten::addcmul")),
    ("dtype conversion", ("aten::to", "aten::_to_copy", "aten::copy_")),
)


def _sgd(step, **options) -> torch.optim.SGD:
    old = step.optimizer
    groups = [{k: v for k, v in g.items() if k not in ("foreach", "fused")} for g in old.param_groups]
    return torch.optim.SGD(groups, lr=old.defaults["lr"], momentum=old.defaults["momentum"], **options)


def variant(name: str, net: tuple[int, tuple[int, int, int], int], dtype: str) -> Callable[[], object]:
    layers, shape, batch = net
    step, images, labels = roost_train_step(layers, shape, batch, dtype)
    if name == "foreach":
        step.optimizer = _sgd(step, foreach=True)
    elif name == "fused":
        step.optimizer = _sgd(step, fused=True)
    elif name == "compiled":
        step.model = torch.compile(step.model)
        started = time.perf_counter()
        step(images, labels)
        print(f"  (compiled in {time.perf_counter() - started:.0f} s)", flush=True)
    elif name == "bf16-weights":
        model, optimizer = step.model.to(torch.bfloat16), step.optimizer

        def pure() -> None:
            x = images.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return pure
    return lambda: step(images, labels)


def group_of(op: str) -> str:
    lowered = op.lower()
    for group, needles in GROUPS:
        if any(n in lowered for n in needles):
            return group
    return "other"


def profile_step(fn: Callable[[], object], steps: int) -> dict[str, float]:
    """Self CPU milliseconds per step by group, from ``torch.profiler``, after the warm-up steps."""
    for _ in range(WARMUP_STEPS):
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        group = group_of(event.key)
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total / 1000 / steps
    return totals


def parse_net(text: str) -> tuple[int, tuple[int, int, int], int]:
    layers, shape, batch = text.split(":")
    c, h, w = (int(v) for v in shape.split(","))
    return int(layers), (c, h, w), int(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="20:1,28,28:128;20:3,28,28:128;18:3,224,224:32;50:3,224,224:32")
    parser.add_argument("--dtype", default="float16", choices=("float32", "float16"))
    parser.add_argument("--variants", default=",".join(VARIANTS[:-1]), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="also profile the roost variant's step")
    args = parser.parse_args()
    names = [v for v in args.variants.split(",") if args.dtype == "float16" or v != "bf16-weights"]
    print(f"# {cpu()}; torch {torch.__version__}; {torch.get_num_threads()} threads; dtype {args.dtype}")
    for text in args.nets.split(";"):
        net = parse_net(text)
        steps = {name: variant(name, net, args.dtype) for name in names}
        speeds: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                speeds[name].append(net[2] * args.steps / timed(steps[name], args.steps))
        base = statistics.median(speeds["roost"])
        print(f"\nResNet-{net[0]} {','.join(map(str, net[1]))} batch {net[2]} (img/s, median of {args.rounds})")
        for name in names:
            s, median = speeds[name], statistics.median(speeds[name])
            print(f"  {name:<13} {median:8.1f} [{min(s):.1f}-{max(s):.1f}]  {median / base:.2f}x")
        if args.profile:
            for name in ("roost", "bf16-weights") if "bf16-weights" in names else ("roost",):
                totals = profile_step(steps[name], args.steps)
                whole = sum(totals.values())
                parts = ", ".join(f"{g} {ms / whole:.0%}" for g, ms in sorted(totals.items(), key=lambda kv: -kv[1]))
                print(f"  profile of {name}: {whole:.1f} ms a step (self CPU): {parts}")


if __name__ == "__main__":
    main()
