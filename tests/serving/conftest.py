"""The MXNet-made model the serving tests load, with its predictions."""

import json

import pytest


@pytest.fixture(scope="module")
def model(mxnet_fixtures):
    folder = mxnet_fixtures / "model"
    expected = json.loads((folder / "resnet20_3x28x28" / "predictions.json").read_text())["probabilities"]
    return folder, str(folder / "resnet20_3x28x28" / "model.tar.gz"), expected
