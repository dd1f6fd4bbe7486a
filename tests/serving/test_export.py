"""ONNX and TorchScript export with the parity check."""

import json
import subprocess
import sys

import numpy as np
import pytest

from roost.serving.predictor import Predictor

pytestmark = pytest.mark.slow  # trains, serves or runs the command line in subprocesses


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_with_parity_check(mxnet_fixtures, tmp_path, fmt, suffix):
    folder = mxnet_fixtures / "model"
    out = tmp_path / f"model{suffix}"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "export",
            str(folder / "resnet20_3x28x28" / "model.tar.gz"),
            "--format",
            fmt,
            "-o",
            str(out),
            "--check-images",
            str(folder / "test_0.png"),
            "--check-images",
            str(folder / "test_4.png"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "parity ok" in r.stderr and out.is_file()
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["parity"]["top1_agree"] == 2 and sidecar["parity"]["max_abs_diff"] < 1e-4
    assert sidecar["preprocessing"]["resize"] == {
        "height": 28,
        "width": 28,
        "keep_aspect_ratio": False,
        "interpolation": "bilinear",
    }
    # the exported file reproduces MXNet's own predictions
    expected = json.loads((folder / "resnet20_3x28x28" / "predictions.json").read_text())["probabilities"]
    predictor = Predictor.load(folder / "resnet20_3x28x28" / "model.tar.gz")
    x = np.stack([predictor.preprocess((folder / "test_4.png").read_bytes())]).astype(np.float32)
    if fmt == "onnx":
        import onnxruntime as ort

        got = ort.InferenceSession(str(out)).run(["probabilities"], {"images": x})[0][0]
    else:
        import torch

        got = torch.jit.load(str(out))(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(got, expected["test_4.png"], atol=1e-4)
