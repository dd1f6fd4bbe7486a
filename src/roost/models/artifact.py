"""Saving checkpoints and rebuilding networks from Roost's ``model.tar.gz``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from roost.formats.artifact import ModelMeta, read_members, read_meta
from roost.models.resnet import ResNet


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.fspath(path), metadata={"format": "pt"})
    os.chmod(path, 0o644)  # safetensors creates 0600; models are meant to be shared and served
    return Path(path)


def build_model(meta: ModelMeta) -> ResNet:
    return ResNet(meta.num_classes, meta.num_layers, tuple(meta.image_shape), head=meta.head)


def load_model(source: str | os.PathLike, checkpoint: str | None = None) -> tuple[ResNet, ModelMeta]:
    """The network of a ``model.tar.gz`` (or unpacked folder), in eval mode, with its description."""
    members = read_members(source)
    meta = read_meta(members, source)
    name = checkpoint or meta.model
    if name not in members:
        raise ValueError(f"{source}: checkpoint {name!r} not found; it holds {', '.join(sorted(members))}")
    model = build_model(meta)
    model.load_state_dict(load_safetensors(members[name]))
    return model.eval(), meta
