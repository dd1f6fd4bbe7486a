"""SageMaker's image-classification training as MXNet 1.9.1 runs it: the peer of ``parity_mxnet.py``.

Runs under MXNet's own interpreter (``../shared/peers/mxnet/setup.sh WORK`` makes one), not Roost's. It
builds the network of MXNet's ``example/image-classification/symbols/resnet.py`` as the reference describes it
(pre-activation ResNet, ``bn_data`` with ``fix_gamma``, the 3x3 stem at heights <= 32, the CIFAR depth table at
heights <= 28), reads the ``.rec`` files with ``ImageRecordIter`` (SageMaker's ``crop`` augmentation:
``rand_crop`` and ``rand_mirror``) and trains with ``Module.fit``: ``Xavier(gaussian, in, 2)``, ``sgd`` with
``wd`` and ``momentum``, ``multi_precision``, and MXNet's default ``wd_mult`` (``_weight`` and ``_gamma``
decayed). It logs MXNet's own ``Epoch[N] Train-accuracy=`` / ``Time cost=`` / ``Validation-accuracy=`` lines.
``step`` times the bare training step instead (``forward_backward`` + ``update`` on one random batch) and prints
``{"images_per_s": ...}``.

    WORK/venv/bin/python benchmarks/mxnet_side.py fit --train t.rec --val v.rec --classes 10 --examples 4000 \\
        --shape 1,28,28 --layers 20 --batch 128 --lr 0.1 --momentum 0.9 --wd 0.0001 --epochs 5 --seed 0
    WORK/venv/bin/python benchmarks/mxnet_side.py step --classes 10 --shape 3,224,224 --layers 18 --batch 32 \\
        --steps 4
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time

import mxnet as mx
import numpy as np

EPS, MOMENTUM = 2e-5, 0.9


def unit(data, filters, stride, dim_match, name, bottleneck):
    """One pre-activation residual unit; the projection shortcut reads the first ReLU's output."""
    bn1 = mx.sym.BatchNorm(data, fix_gamma=False, eps=EPS, momentum=MOMENTUM, name=name + "_bn1")
    act1 = mx.sym.Activation(bn1, act_type="relu", name=name + "_relu1")
    if bottleneck:
        quarter = int(filters * 0.25)
        conv1 = mx.sym.Convolution(act1, num_filter=quarter, kernel=(1, 1), no_bias=True, name=name + "_conv1")
        bn2 = mx.sym.BatchNorm(conv1, fix_gamma=False, eps=EPS, momentum=MOMENTUM, name=name + "_bn2")
        act2 = mx.sym.Activation(bn2, act_type="relu", name=name + "_relu2")
        conv2 = mx.sym.Convolution(
            act2, num_filter=quarter, kernel=(3, 3), stride=stride, pad=(1, 1), no_bias=True, name=name + "_conv2"
        )
        bn3 = mx.sym.BatchNorm(conv2, fix_gamma=False, eps=EPS, momentum=MOMENTUM, name=name + "_bn3")
        act3 = mx.sym.Activation(bn3, act_type="relu", name=name + "_relu3")
        body = mx.sym.Convolution(act3, num_filter=filters, kernel=(1, 1), no_bias=True, name=name + "_conv3")
    else:
        conv1 = mx.sym.Convolution(
            act1, num_filter=filters, kernel=(3, 3), stride=stride, pad=(1, 1), no_bias=True, name=name + "_conv1"
        )
        bn2 = mx.sym.BatchNorm(conv1, fix_gamma=False, eps=EPS, momentum=MOMENTUM, name=name + "_bn2")
        act2 = mx.sym.Activation(bn2, act_type="relu", name=name + "_relu2")
        body = mx.sym.Convolution(
            act2, num_filter=filters, kernel=(3, 3), stride=(1, 1), pad=(1, 1), no_bias=True, name=name + "_conv2"
        )
    shortcut = (
        data
        if dim_match
        else mx.sym.Convolution(act1, num_filter=filters, kernel=(1, 1), stride=stride, no_bias=True, name=name + "_sc")
    )
    return body + shortcut


def layout(layers: int, height: int) -> tuple[list[int], list[int], bool]:
    """(units per stage, filters, bottleneck) by SageMaker's depth tables."""
    if height <= 28:
        if (layers - 2) % 9 == 0 and layers >= 164:
            n = (layers - 2) // 9
            return [n] * 3, [16, 64, 128, 256], True
        if (layers - 2) % 6 == 0 and layers < 164:
            n = (layers - 2) // 6
            return [n] * 3, [16, 16, 32, 64], False
        raise ValueError(f"no experiments done on num_layers {layers}")
    units = {
        18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3],
        200: [3, 24, 36, 3], 269: [3, 30, 48, 8],
    }[layers]  # fmt: skip
    if layers >= 50:
        return units, [64, 256, 512, 1024, 2048], True
    return units, [64, 64, 128, 256, 512], False


def resnet(classes: int, layers: int, shape: tuple[int, int, int]):
    units, filters, bottleneck = layout(layers, shape[1])
    data = mx.sym.identity(mx.sym.Variable("data"), name="id")
    body = mx.sym.BatchNorm(data, fix_gamma=True, eps=EPS, momentum=MOMENTUM, name="bn_data")
    if shape[1] <= 32:
        body = mx.sym.Convolution(body, num_filter=filters[0], kernel=(3, 3), pad=(1, 1), no_bias=True, name="conv0")
    else:
        body = mx.sym.Convolution(
            body, num_filter=filters[0], kernel=(7, 7), stride=(2, 2), pad=(3, 3), no_bias=True, name="conv0"
        )
        body = mx.sym.BatchNorm(body, fix_gamma=False, eps=EPS, momentum=MOMENTUM, name="bn0")
        body = mx.sym.Activation(body, act_type="relu", name="relu0")
        body = mx.sym.Pooling(body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    for i, n in enumerate(units):
        stride = (1, 1) if i == 0 else (2, 2)
        body = unit(body, filters[i + 1], stride, False, f"stage{i + 1}_unit1", bottleneck)
        for j in range(n - 1):
            body = unit(body, filters[i + 1], (1, 1), True, f"stage{i + 1}_unit{j + 2}", bottleneck)
    bn1 = mx.sym.BatchNorm(body, fix_gamma=False, eps=EPS, momentum=MOMENTUM, name="bn1")
    relu1 = mx.sym.Activation(bn1, act_type="relu", name="relu1")
    pool1 = mx.sym.Pooling(relu1, global_pool=True, kernel=(7, 7), pool_type="avg", name="pool1")
    fc1 = mx.sym.FullyConnected(mx.sym.Flatten(pool1), num_hidden=classes, name="fc1")
    return mx.sym.SoftmaxOutput(fc1, name="softmax")


SGD = dict(optimizer="sgd", initializer=mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))


def report_steps(one, args: argparse.Namespace) -> None:
    """Runs ``one`` step ``args.warmup`` times untimed, then ``args.steps`` times; prints images/s as JSON."""
    for _ in range(args.warmup):
        one()
    t = time.perf_counter()
    for _ in range(args.steps):
        one()
    print(json.dumps({"images_per_s": args.batch * args.steps / (time.perf_counter() - t)}))


def step(args: argparse.Namespace, shape: tuple[int, ...]) -> None:
    mod = mx.mod.Module(resnet(args.classes, args.layers, shape), context=mx.cpu())
    mod.bind(data_shapes=[("data", (args.batch, *shape))], label_shapes=[("softmax_label", (args.batch,))])
    mod.init_params(SGD["initializer"])
    params = {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4, "multi_precision": True}
    mod.init_optimizer(optimizer=SGD["optimizer"], optimizer_params=params)
    rng = np.random.default_rng(0)
    data = mx.nd.array(rng.integers(0, 256, (args.batch, *shape)).astype(np.float32))
    batch = mx.io.DataBatch([data], [mx.nd.array(rng.integers(0, args.classes, args.batch))])

    def one() -> None:
        mod.forward_backward(batch)
        mod.update()
        mx.nd.waitall()  # MXNet is asynchronous: the step ends when its results exist

    report_steps(one, args)


def gluon_bf16_step(args: argparse.Namespace, shape: tuple[int, ...]) -> None:
    """The same network and SGD in bfloat16 with MXNet's own AMP. Module cannot bind it: after ``amp.init`` (or
    ``amp.convert_symbol``) its type inference leaves every convolution weight's dtype unknown and ``bind``
    fails; Gluon, whose parameters carry their float32 dtype, trains it."""
    from mxnet import autograd, gluon
    from mxnet.contrib import amp

    amp.init(target_dtype="bfloat16")  # before the network is built: it patches symbol creation
    fc = resnet(args.classes, args.layers, shape).get_internals()["fc1_output"]
    net = gluon.SymbolBlock(fc, [mx.sym.var("data")])
    for name, param in net.collect_params().items():  # as Module.init_params names them
        if name.endswith("weight"):
            param.initialize(init=SGD["initializer"])
        else:
            param.initialize(init=mx.init.One() if name.endswith(("gamma", "moving_var")) else mx.init.Zero())
    net.hybridize()
    params = {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4, "multi_precision": True}
    trainer = gluon.Trainer(net.collect_params(), "sgd", params)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    rng = np.random.default_rng(0)
    data = mx.nd.array(rng.integers(0, 256, (args.batch, *shape)).astype(np.float32))
    labels = mx.nd.array(rng.integers(0, args.classes, args.batch))

    def one() -> None:
        with autograd.record():
            out = loss(net(data), labels)
        out.backward()
        trainer.step(args.batch)
        mx.nd.waitall()

    report_steps(one, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    fit, timing = sub.add_parser("fit", help="Module.fit on .rec files"), sub.add_parser("step", help="time a step")
    for parser in (fit, timing):
        for name, kind in (("classes", int), ("shape", str), ("layers", int), ("batch", int)):
            parser.add_argument(f"--{name}", type=kind, required=True)
    for name, kind in (("train", str), ("val", str), ("examples", int), ("lr", float), ("momentum", float),
                       ("wd", float), ("epochs", int), ("seed", int)):  # fmt: skip
        fit.add_argument(f"--{name}", type=kind, required=True)
    fit.add_argument("--threads", type=int, default=2, help="ImageRecordIter's decoding threads")
    timing.add_argument("--steps", type=int, required=True)
    timing.add_argument("--warmup", type=int, default=5, help="untimed steps first (step_speed.WARMUP_STEPS)")
    timing.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32", help="bfloat16: MXNet's AMP, under Gluon"
    )
    args = p.parse_args()
    shape = tuple(int(x) for x in args.shape.split(","))
    if args.command == "step":
        (gluon_bf16_step if args.dtype == "bfloat16" else step)(args, shape)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    random.seed(args.seed)
    np.random.seed(args.seed)
    mx.random.seed(args.seed)
    common = dict(data_shape=shape, batch_size=args.batch, preprocess_threads=args.threads, label_width=1)
    train = mx.io.ImageRecordIter(
        path_imgrec=args.train, shuffle=True, rand_crop=True, rand_mirror=True, seed=args.seed, **common
    )
    val = mx.io.ImageRecordIter(path_imgrec=args.val, rand_crop=False, rand_mirror=False, **common)
    mod = mx.mod.Module(resnet(args.classes, args.layers, shape), context=mx.cpu())
    mod.fit(
        train,
        eval_data=val,
        eval_metric=["accuracy"],
        kvstore="local",
        optimizer_params={
            "learning_rate": args.lr,
            "wd": args.wd,
            "momentum": args.momentum,
            "multi_precision": True,
        },
        **SGD,
        batch_end_callback=mx.callback.Speedometer(args.batch, 50),
        num_epoch=args.epochs,
    )


if __name__ == "__main__":
    main()
