"""Exporting a model to ONNX or TorchScript, with a parity check against PyTorch.

The exported graph takes what the endpoint's preprocessing produces -
``float32 [N, C, H, W]`` RGB pixels in 0..255 - and returns probabilities
(softmax, or sigmoid for multi-label models), so it is a drop-in for
``/invocations`` minus the decoding. A JSON file written beside it records the
preprocessing, input and output names, and the class names. The check runs the
exported model and PyTorch on the same images and requires the same top-1 class
and probabilities within 1e-4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from roost.formats.artifact import ModelMeta

TOLERANCE = 1e-4


class WithProbabilities(nn.Module):
    def __init__(self, model: nn.Module, multi_label: bool) -> None:
        super().__init__()
        self.model, self.multi_label = model, multi_label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)


@dataclass
class ParityReport:
    images: int
    top1_agree: int
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.top1_agree == self.images and self.max_abs_diff <= TOLERANCE


def _check_inputs(meta: ModelMeta, arrays: list[np.ndarray] | None, n: int = 8) -> np.ndarray:
    if arrays:
        return np.stack(arrays).astype(np.float32)
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, *meta.image_shape)).astype(np.float32)


def export(
    model: nn.Module, meta: ModelMeta, out: Path, fmt: str, check_arrays: list[np.ndarray] | None = None
) -> ParityReport:
    net = WithProbabilities(model.eval().float().to("cpu"), meta.multi_label).eval()
    example = torch.zeros(1, *meta.image_shape)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        _export_onnx(net, example, out)
    elif fmt == "torchscript":
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(net, example), str(out))
    else:
        raise ValueError(f"unknown export format {fmt!r}: use onnx or torchscript")
    x = _check_inputs(meta, check_arrays)
    with torch.no_grad():
        reference = net(torch.from_numpy(x)).numpy()
    got = _run_exported(out, fmt, x)
    report = ParityReport(
        len(x), int((reference.argmax(1) == got.argmax(1)).sum()), float(np.abs(reference - got).max())
    )
    sidecar = {
        "format": fmt,
        "file": out.name,
        "input": {"name": "images", "shape": ["N", *meta.image_shape], "dtype": "float32"},
        "output": {
            "name": "probabilities",
            "shape": ["N", meta.num_classes],
            "meaning": "sigmoid per class" if meta.multi_label else "softmax over classes",
        },
        "preprocessing": meta.preprocessing,
        "class_names": meta.class_names,
        "num_layers": meta.num_layers,
        "parity": {
            "images": report.images,
            "top1_agree": report.top1_agree,
            "max_abs_diff": report.max_abs_diff,
            "tolerance": TOLERANCE,
        },
    }
    out.with_name(out.name + ".json").write_text(json.dumps(sidecar, indent=2))
    return report


def _export_onnx(net: nn.Module, example: torch.Tensor, out: Path) -> None:
    import logging
    import warnings

    batch = torch.export.Dim("batch", min=1, max=1024)
    # the exporter chatters (missing torchvision ops, deprecations) about things that do not concern a ResNet
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            (example,),
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_shapes={"x": {0: batch}},
            dynamo=True,
            verbose=False,
        )
    if program is None:  # the dynamo exporter always returns a program; None is the legacy path's
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(out))


def _run_exported(out: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        return session.run(["probabilities"], {"images": x})[0]
    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        return loaded(torch.from_numpy(x)).numpy()
