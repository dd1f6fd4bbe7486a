"""Starting weights: incremental training from a Roost ``model.tar.gz``, ImageNet weights for transfer learning,
and converting weights people bring (MXNet ``.params``, SageMaker artifacts, PyTorch state dicts).

Pretrained weights live in a local folder - ``$ROOST_PRETRAINED_DIR``, else
``~/.cache/roost/pretrained`` - one file per depth, ``resnet-<num_layers>.safetensors``,
holding a Roost ResNet state dict (any head: it is replaced). ``roost convert-weights``
writes such files from what users have.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from roost.errors import UserError
from roost.formats.mxnet_params import load_params
from roost.models.artifact import load
from roost.models.resnet import HEAD_NAMES, ResNet, find_head, load_mxnet_params


class WeightsError(UserError):
    """Starting weights that cannot be used (the user's to fix)."""


def pretrained_dir() -> Path:
    return Path(os.environ.get("ROOST_PRETRAINED_DIR", Path.home() / ".cache" / "roost" / "pretrained"))


def pretrained_file(num_layers: int, folder: Path | None = None) -> Path:
    return (folder or pretrained_dir()) / f"resnet-{num_layers}.safetensors"


def _head_keys(state: dict) -> set[str]:
    return {k for k in state if k.split(".")[0] in HEAD_NAMES}


def load_pretrained(model: ResNet, num_layers: int, folder: Path | None = None) -> Path:
    """Every layer but the head from ``resnet-<num_layers>.safetensors``; the new head keeps its fresh init."""
    path = pretrained_file(num_layers, folder)
    if not path.is_file():
        raise WeightsError(
            f"use_pretrained_model=1 needs ImageNet weights for num_layers={num_layers} at {path} "
            f"(set ROOST_PRETRAINED_DIR to use another folder). Nothing can be downloaded: create the file with "
            f"`roost convert-weights <weights you have> --num-layers {num_layers} -o {path}` "
            "(MXNet model-zoo .params, a SageMaker or Roost model.tar.gz, or a PyTorch state dict)."
        )
    state = load_file(os.fspath(path))
    body = {k: v for k, v in state.items() if k not in _head_keys(state)}
    own = model.state_dict()
    for k, v in body.items():
        if k not in own:
            raise WeightsError(f"{path}: {k!r} does not belong to a {num_layers}-layer ResNet; is it the right depth?")
        if own[k].shape != v.shape:
            raise WeightsError(
                f"{path}: {k} has shape {tuple(v.shape)}, this network needs {tuple(own[k].shape)}"
                + (
                    " (the weights were made for the other stem: images taller than 32 px use the 7x7 stem)"
                    if k == "conv0.weight"
                    else ""
                )
            )
    missing = set(own) - set(body) - _head_keys(own) - {k for k in own if k.endswith("num_batches_tracked")}
    if missing:
        raise WeightsError(f"{path}: missing {len(missing)} tensors, e.g. {sorted(missing)[0]}")
    model.load_state_dict(body, strict=False)
    return path


def load_incremental(model_source: Path, num_layers: int, image_shape, num_classes: int) -> tuple[dict, str]:
    """State dict and head name of the model channel's ``model.tar.gz`` (Roost's or SageMaker's), after checking
    it fits this job."""
    try:
        model, meta = load(model_source)
    except UserError as err:
        raise WeightsError(f"model channel: {err}") from None
    differs = [
        f"{name} (model: {theirs}, this job: {ours})"
        for name, theirs, ours in (
            ("num_layers", meta.num_layers, num_layers),
            ("image_shape", ",".join(map(str, meta.image_shape)), ",".join(map(str, image_shape))),
            ("num_classes", meta.num_classes, num_classes),
        )
        if str(theirs) != str(ours)
    ]
    if differs:
        raise WeightsError(
            "incremental training needs the same num_layers, image_shape and num_classes as the model in the "
            "model channel; these differ: " + "; ".join(differs)
        )
    return model.state_dict(), meta.head


# --------------------------------------------------------------------------- conversion


def _network_for_mxnet(params: dict, num_layers: int, image_shape) -> ResNet:
    head = find_head(params)
    if head is None:
        raise WeightsError("no fully connected head (arg:fc1_weight or arg:fc_weight) in the MXNet parameters")
    classes = params[f"arg:{head}_weight"].shape[0]
    model = ResNet(classes, num_layers, tuple(image_shape), head=head)
    try:
        load_mxnet_params(model, params)
    except UserError as err:
        raise WeightsError(f"{err} (is num_layers={num_layers} right for these weights?)") from None
    return model


def read_any_weights(source: Path, num_layers: int, image_shape=(3, 224, 224)) -> dict[str, torch.Tensor]:
    """A Roost ResNet state dict from MXNet ``.params``, a SageMaker/Roost ``model.tar.gz``,
    safetensors or a PyTorch state dict (Roost's or MXNet's parameter names)."""
    name = source.name.lower()
    if name.endswith(".params"):
        return _network_for_mxnet(load_params(source), num_layers, image_shape).state_dict()
    if name.endswith((".tar.gz", ".tgz")):
        try:
            return load(source)[0].state_dict()
        except UserError as err:
            raise WeightsError(
                f"{source}: neither a Roost nor a SageMaker image-classification model.tar.gz ({err})"
            ) from None
    state: Any
    if name.endswith(".safetensors"):
        state = load_file(os.fspath(source))
    elif name.endswith((".pt", ".pth", ".bin")):
        state = torch.load(source, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    else:
        raise WeightsError(f"{source}: unknown weights format; expected .params, .tar.gz, .safetensors, .pt or .pth")
    if any(k.startswith(("arg:", "aux:")) for k in state):
        return _network_for_mxnet({k: v.numpy() for k, v in state.items()}, num_layers, image_shape).state_dict()
    return state


def convert_weights(source: Path, num_layers: int, out: Path, image_shape=(3, 224, 224)) -> Path:
    """Write ``source``'s weights as Roost's ``resnet-<num_layers>.safetensors``, checked against the network."""
    if not source.is_file():
        raise WeightsError(f"{source}: no such file")
    try:
        state = read_any_weights(source, num_layers, image_shape)
    except (tarfile.TarError, OSError) as err:
        raise WeightsError(f"{source}: cannot read it ({err})") from None
    head = find_head(state) or "fc1"
    classes = state[f"{head}.weight"].shape[0] if f"{head}.weight" in state else 1000
    model = ResNet(classes, num_layers, tuple(image_shape), head=head)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise WeightsError(
            f"{source}: does not fit a {num_layers}-layer ResNet (is num_layers={num_layers} right for "
            f"these weights?): {str(err).splitlines()[0]}"
        ) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.fspath(out))
    return out
