"""Models to predictions: the preprocessing recorded in the artifact, then the network.

Preprocessing is SageMaker's inference recipe (reference §5), written into every
Roost artifact: decode to RGB (or greyscale for 1-channel models), resize to the
model's H x W with bilinear interpolation ignoring the aspect ratio, CHW float32
0..255, no mean subtraction (the network's ``bn_data`` normalises). Output is
softmax probabilities, or per-class sigmoids for multi-label models.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from roost.algorithm.runtime import keep_freed_memory
from roost.formats.artifact import ModelMeta, pack_model_dir, read_members, read_meta
from roost.models.artifact import build_model, save_checkpoint
from roost.models.sagemaker import is_sagemaker_artifact, load_sagemaker


class InputError(ValueError):
    """A request the model cannot take (HTTP 4xx): undecodable image, wrong content type, too large."""


@dataclass
class Prediction:
    probabilities: list[float]

    def top(self, k: int, names: list[str] | None) -> list[dict]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [{"class": int(i), "label": names[i] if names and i < len(names) else str(int(i)),
                 "probability": float(self.probabilities[i])} for i in order]


def load_any(source: str | os.PathLike) -> tuple[torch.nn.Module, ModelMeta]:
    """A Roost or a SageMaker ``model.tar.gz`` (or an unpacked folder, or a job folder holding one)."""
    p = Path(source)
    if p.is_dir() and (p / "model.tar.gz").is_file():
        p = p / "model.tar.gz"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such model (give a model.tar.gz, a model folder or a job folder)")
    members = read_members(p)
    if is_sagemaker_artifact(members):
        return load_sagemaker(members, str(p))
    meta = read_meta(members, p)
    from safetensors.torch import load as load_bytes

    model = build_model(meta)
    model.load_state_dict(load_bytes(members[meta.model]))
    return model.eval(), meta


def import_sagemaker(source: Path, out: Path) -> Path:
    """Write a SageMaker artifact as a Roost ``model.tar.gz`` (safetensors + roost-model.json + model-shapes.json)."""
    members = read_members(source)
    if not is_sagemaker_artifact(members):
        raise ValueError(f"{source}: not a SageMaker image-classification artifact (no image-classification-NNNN.params)")
    model, meta = load_sagemaker(members, str(source))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_checkpoint(model, folder / meta.model)
        (folder / "roost-model.json").write_text(meta.to_json())
        (folder / "model-shapes.json").write_bytes(members["model-shapes.json"])
        return pack_model_dir(folder, out)


class Predictor:
    def __init__(self, model: torch.nn.Module, meta: ModelMeta, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.type == "cpu":
            keep_freed_memory()  # each forward's activations reuse the heap instead of fresh mmaps
        self.model = model.to(self.device).eval()
        self.meta = meta
        prep = meta.preprocessing or {}
        c, h, w = meta.image_shape
        size = prep.get("resize") or {}
        self.height, self.width = int(size.get("height", h)), int(size.get("width", w))
        self.channels = c

    @classmethod
    def load(cls, source: str | os.PathLike) -> Predictor:
        return cls(*load_any(source))

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.class_names

    def preprocess(self, data: bytes) -> np.ndarray:
        if not data:
            raise InputError("the request body is empty; send the image's bytes (JPEG or PNG)")
        flag = cv2.IMREAD_COLOR if self.channels == 3 else cv2.IMREAD_GRAYSCALE
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        if img is None:
            raise InputError(f"the {len(data)}-byte body cannot be decoded as an image; send JPEG or PNG bytes")
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return img[None] if img.ndim == 2 else img.transpose(2, 0, 1)

    @torch.inference_mode()
    def predict_arrays(self, chw: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(chw)).float().to(self.device)
        logits = self.model(x).float()
        probs = torch.sigmoid(logits) if self.meta.multi_label else torch.softmax(logits, dim=1)
        return probs.cpu().numpy()

    def predict(self, images: list[bytes]) -> list[Prediction]:
        probs = self.predict_arrays([self.preprocess(b) for b in images])
        return [Prediction(p.tolist()) for p in probs]

