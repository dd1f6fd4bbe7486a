"""MXNet .params files, and Roost's network computing exactly what MXNet's computes."""

import json
import tarfile

import cv2
import numpy as np
import pytest
import torch

from roost.formats.mxnet_params import ParamsError, load_params, save_params
from roost.models.resnet import ResNet, load_mxnet_params

MODELS = [
    ("resnet20_3x28x28", 20, (3, 28, 28), "fc1"),
    ("resnet20_3x28x28_fc_head", 20, (3, 28, 28), "fc"),
    ("resnet164_3x28x28_bottleneck", 164, (3, 28, 28), "fc1"),
    ("resnet18_3x64x64", 18, (3, 64, 64), "fc1"),
]


def _params_of(tar_path):
    with tarfile.open(tar_path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".params"))
        return tar.extractfile(member).read()


@pytest.mark.parametrize("name,layers,shape,head", MODELS)
def test_reads_sagemaker_params_with_manifest_shapes(mxnet_fixtures, name, layers, shape, head):
    params = load_params(_params_of(mxnet_fixtures / "model" / name / "model.tar.gz"))
    manifest = json.loads((mxnet_fixtures / "model" / name / "params_manifest.json").read_text())
    assert {k: list(v.shape) for k, v in params.items()} == manifest
    assert all(v.dtype == np.float32 for v in params.values())


@pytest.mark.parametrize("name,layers,shape,head", MODELS)
def test_network_matches_mxnet_predictions(mxnet_fixtures, name, layers, shape, head):
    folder = mxnet_fixtures / "model"
    model = ResNet(4, layers, shape, head=head)
    load_mxnet_params(model, load_params(_params_of(folder / name / "model.tar.gz")))
    model.eval()
    expected = json.loads((folder / name / "predictions.json").read_text())["probabilities"]
    _, h, w = shape
    for image, probs in expected.items():
        rgb = cv2.cvtColor(cv2.imread(str(folder / image), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        x = torch.from_numpy(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)).permute(2, 0, 1).float()
        with torch.no_grad():
            got = torch.softmax(model(x[None]), 1)[0].numpy()
        np.testing.assert_allclose(got, probs, atol=2e-4, err_msg=f"{name} {image}")


def test_save_then_load_roundtrip(tmp_path):
    params = {
        "arg:w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "aux:m": np.ones(4, np.float32),
        "arg:h": np.array([1, 2], np.float16),
    }
    save_params(params, tmp_path / "x.params")
    back = load_params(tmp_path / "x.params")
    assert list(back) == list(params)
    for k in params:
        assert back[k].dtype == params[k].dtype and np.array_equal(back[k], params[k])


def test_errors(tmp_path, mxnet_fixtures):
    (tmp_path / "bad.params").write_bytes(b"not params at all, sorry")
    with pytest.raises(ParamsError, match="bad.params: at byte offset 0: expected the MXNet NDArray-list magic"):
        load_params(tmp_path / "bad.params")
    data = _params_of(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz")
    (tmp_path / "cut.params").write_bytes(data[:5000])
    with pytest.raises(ParamsError, match="truncated"):
        load_params(tmp_path / "cut.params")
    model = ResNet(4, 20, (3, 28, 28))
    with pytest.raises(ValueError, match="missing arg:fc1_bias"):
        load_mxnet_params(model, {k: v for k, v in load_params(data).items() if k != "arg:fc1_bias"})
