"""Loading and converting model.tar.gz files: SageMaker's become Roost's with the same predictions."""

import subprocess
import sys
import tarfile

import numpy as np
import pytest

from roost.models.artifact import import_sagemaker, load
from roost.serving.predictor import Predictor


@pytest.mark.slow
def test_import_sagemaker_keeps_predictions(mxnet_fixtures, tmp_path):
    src = mxnet_fixtures / "model" / "resnet164_3x28x28_bottleneck" / "model.tar.gz"
    out = import_sagemaker(src, tmp_path / "roost.tar.gz")
    with tarfile.open(out) as tar:
        names = sorted(tar.getnames())
    assert names == ["image-classification-0001.safetensors", "model-shapes.json", "roost-model.json"]
    _, meta = load(out)
    assert (meta.num_layers, meta.image_shape, meta.num_classes) == (164, [3, 28, 28], 4)
    img = (mxnet_fixtures / "model" / "test_2.png").read_bytes()
    a = Predictor.load(src).predict([img])[0].probabilities
    b = Predictor.load(out).predict([img])[0].probabilities
    np.testing.assert_allclose(a, b, atol=1e-6)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "import-sagemaker",
            str(tmp_path / "roost.tar.gz"),
            "-o",
            str(tmp_path / "x.tar.gz"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "not a SageMaker image-classification artifact" in r.stderr
