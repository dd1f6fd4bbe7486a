"""Models to predictions: the preprocessing recorded in the artifact, then the network.

Preprocessing is SageMaker's inference recipe (docs/sagemaker.md, "Inference"), written into every
Roost artifact: decode to RGB (or greyscale for 1-channel models), resize to the
model's H x W with bilinear interpolation ignoring the aspect ratio, CHW float32
0..255, no mean subtraction (the network's ``bn_data`` normalises). Output is
softmax probabilities, or per-class sigmoids for multi-label models.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import torch

from roost.data.images import ImageTooLarge, decode_rgb, resize_exact
from roost.formats.artifact import ModelMeta
from roost.models.artifact import load
from roost.serving.invocations import InputError, Prediction
from roost.system import available_cores, keep_freed_memory


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
        # a decoded image may take up to 3 x MAX_IMAGE_PIXELS bytes until it is resized: bound how many at once
        self._decoding = threading.BoundedSemaphore(max(2, available_cores()))

    @classmethod
    def load(cls, source: str | os.PathLike) -> Predictor:
        return cls(*load(source))

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.class_names

    def preprocess(self, data: bytes) -> np.ndarray:
        if not data:
            raise InputError("the request body is empty; send the image's bytes (JPEG or PNG)")
        with self._decoding:
            try:
                img = decode_rgb(data, self.channels)
            except ImageTooLarge as err:
                raise InputError(str(err)) from None
            if img is None:
                raise InputError(f"the {len(data)}-byte body cannot be decoded as an image; send JPEG or PNG bytes")
            img = resize_exact(img, self.height, self.width)
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
