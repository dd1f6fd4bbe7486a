"""SageMaker's own image-classification artifacts, loaded without MXNet.

A SageMaker ``model.tar.gz`` holds ``image-classification-symbol.json`` (the MXNet
graph), one or more ``image-classification-NNNN.params`` (MXNet NDArray files) and
``model-shapes.json`` (``[{"shape": [batch, C, H, W], "name": "data"}]``). The
network is MXNet's ``resnet.py``, so the depth, the head name (``fc1`` from scratch,
``fc`` after transfer learning) and the class count can be read off the parameters;
the input shape comes from ``model-shapes.json``; the output layer of the graph
tells single- from multi-label.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from roost.formats.artifact import (
    META_FILE,
    SHAPES_FILE,
    ArtifactError,
    Checkpoint,
    ModelMeta,
    checkpoint_name,
    input_shape,
    read_json_member,
    serving_preprocessing,
)
from roost.formats.mxnet_params import load_params
from roost.models.recipes import resnet_spec
from roost.models.resnet import ResNet, find_head, load_mxnet_params

SYMBOL = "image-classification-symbol.json"
PARAMS_RE = re.compile(r"image-classification-(\d{4})\.params$")


def is_sagemaker_artifact(members: Mapping[str, bytes]) -> bool:
    return any(PARAMS_RE.search(n) for n in members) and META_FILE not in members


def _depth(params: dict, height: int) -> int:
    units: dict[int, int] = {}
    for key in params:
        m = re.match(r"arg:stage(\d+)_unit(\d+)_conv1_weight$", key)
        if m:
            stage, unit = int(m[1]), int(m[2])
            units[stage] = max(units.get(stage, 0), unit)
    if not units:
        raise ArtifactError("the parameters hold no stage<N>_unit<M> layers: not MXNet's resnet.py network")
    bottleneck = any(k.endswith("_conv3_weight") for k in params)
    total_units = sum(units.values())
    layers = total_units * (3 if bottleneck else 2) + 2
    spec = resnet_spec(layers, height)  # raises if the tables disagree
    if tuple(units[s] for s in sorted(units)) != spec.units:
        raise ArtifactError(f"units per stage {units} do not match a {layers}-layer ResNet for height {height}")
    return layers


def load_sagemaker(
    members: Mapping[str, bytes], source: str = "model.tar.gz", checkpoint: str | None = None
) -> tuple[ResNet, ModelMeta]:
    """Roost's network with a SageMaker artifact's weights, and a description as Roost's artifacts carry."""
    params_files = sorted(n for n in members if PARAMS_RE.search(n))  # NNNN is zero-padded: names sort by epoch
    if not params_files:
        raise ArtifactError(f"{source}: no image-classification-NNNN.params inside")
    name = checkpoint or params_files[-1]
    if name not in members:
        raise ArtifactError(f"{source}: no {name}; it holds {', '.join(params_files)}")
    if SHAPES_FILE not in members:
        raise ArtifactError(f"{source}: no {SHAPES_FILE}, so the input shape is unknown")
    image_shape = input_shape(members, source)
    params = load_params(members[name], f"{source}:{name}")
    head = find_head(params)
    if head is None:
        raise ArtifactError(f"{source}: no fully connected head (fc1 or fc) in {name}")
    num_classes = int(params[f"arg:{head}_weight"].shape[0])
    layers = _depth(params, image_shape[1])
    multi_label = False
    if SYMBOL in members:
        symbol = read_json_member(members, SYMBOL, source)
        nodes = symbol.get("nodes") if isinstance(symbol, dict) else None
        last = nodes[-1] if isinstance(nodes, list) and nodes and isinstance(nodes[-1], dict) else {}
        multi_label = last.get("op") in ("LogisticRegressionOutput", "sigmoid", "Activation")
    model = ResNet(num_classes, layers, image_shape, head=head)
    load_mxnet_params(model, params)
    epoch = int(name[-len("NNNN.params") : -len(".params")])
    meta = ModelMeta(
        num_classes=num_classes,
        num_layers=layers,
        image_shape=list(image_shape),
        hyperparameters={
            "num_classes": str(num_classes),
            "num_layers": str(layers),
            "image_shape": ",".join(map(str, image_shape)),
            "multi_label": str(int(multi_label)),
        },
        checkpoints=[Checkpoint(checkpoint_name(epoch - 1), epoch)],
        model=checkpoint_name(epoch - 1),
        head=head,
        multi_label=multi_label,
        class_names=None,
        preprocessing=serving_preprocessing(image_shape),
        roost_version=f"imported from SageMaker ({os.path.basename(str(source))}:{name})",
    )
    return model.eval(), meta
