"""Models on disk: saving checkpoints, and loading any ``model.tar.gz`` - Roost's or SageMaker's - as a network.

:func:`load` is the one way in: a Roost artifact rebuilds from its
``roost-model.json`` and safetensors; a SageMaker (MXNet) artifact from its
``.params`` and ``model-shapes.json``, with a description made to match.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from roost.formats.artifact import (
    META_FILE,
    SHAPES_FILE,
    ArtifactError,
    ModelMeta,
    pack_model_dir,
    read_members,
    read_meta,
)
from roost.models.resnet import ResNet
from roost.models.sagemaker import is_sagemaker_artifact, load_sagemaker


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.fspath(path), metadata={"format": "pt"})
    os.chmod(path, 0o644)  # safetensors creates 0600; models are meant to be shared and served
    return Path(path)


def build_model(meta: ModelMeta) -> ResNet:
    return ResNet(meta.num_classes, meta.num_layers, tuple(meta.image_shape), head=meta.head)


def _locate(source: str | os.PathLike) -> Path:
    p = Path(source)
    if p.is_dir() and (p / "model.tar.gz").is_file():  # a job folder
        p = p / "model.tar.gz"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such model (give a model.tar.gz, a model folder or a job folder)")
    return p


def load(source: str | os.PathLike, checkpoint: str | None = None) -> tuple[ResNet, ModelMeta]:
    """The network of a Roost or SageMaker ``model.tar.gz``, an unpacked model folder, or a job folder holding
    one - in eval mode, with its description. ``checkpoint`` picks another saved epoch than the served one."""
    path = _locate(source)
    members = read_members(path)
    if is_sagemaker_artifact(members):
        return load_sagemaker(members, str(path), checkpoint)
    meta = read_meta(members, path)
    name = checkpoint or meta.model
    if name not in members:
        raise ArtifactError(f"{path}: checkpoint {name!r} not found; it holds {', '.join(sorted(members))}")
    model = build_model(meta)
    # a checkpoint holds the network's tensors and a small header: refuse one far larger before reading it
    expected = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    limit = 2 * expected + (1 << 20)
    try:
        state = load_safetensors(members.read(name, limit))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError) as err:
        raise ArtifactError(f"{path}: {name} does not hold this model's weights ({str(err).splitlines()[0]})") from None
    return model.eval(), meta


def import_sagemaker(source: Path, out: Path) -> Path:
    """Write a SageMaker artifact as a Roost ``model.tar.gz`` (safetensors + roost-model.json + model-shapes.json)."""
    members = read_members(source)
    if not is_sagemaker_artifact(members):
        raise ArtifactError(
            f"{source}: not a SageMaker image-classification artifact (no image-classification-NNNN.params)"
        )
    model, meta = load_sagemaker(members, str(source))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_checkpoint(model, folder / meta.model)
        (folder / META_FILE).write_text(meta.to_json())
        (folder / SHAPES_FILE).write_bytes(members[SHAPES_FILE])
        return pack_model_dir(folder, out)
