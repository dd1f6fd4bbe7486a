"""Models to predictions: SageMaker's artifacts without MXNet, bad inputs, parity with training."""

import json

import numpy as np
import pytest

from roost.models.artifact import load
from roost.serving.predictor import InputError, Predictor

FIXTURE_MODELS = ["resnet20_3x28x28", "resnet20_3x28x28_fc_head", "resnet164_3x28x28_bottleneck", "resnet18_3x64x64"]


@pytest.mark.parametrize("name", FIXTURE_MODELS)
def test_sagemaker_artifacts_predict_like_mxnet(mxnet_fixtures, name):
    folder = mxnet_fixtures / "model"
    predictor = Predictor.load(folder / name / "model.tar.gz")
    expected = json.loads((folder / name / "predictions.json").read_text())["probabilities"]
    images = sorted(expected)
    got = predictor.predict([(folder / img).read_bytes() for img in images])
    for img, pred in zip(images, got, strict=True):
        np.testing.assert_allclose(pred.probabilities, expected[img], atol=1e-4, err_msg=f"{name} {img}")
    assert predictor.meta.head == ("fc" if "fc_head" in name else "fc1")


def test_bad_inputs_are_input_errors(mxnet_fixtures):
    predictor = Predictor.load(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz")
    with pytest.raises(InputError, match="cannot be decoded as an image"):
        predictor.predict([b"GIF89a not really"])
    with pytest.raises(InputError, match="body is empty"):
        predictor.predict([b""])


def test_endpoint_predictions_equal_the_training_evaluation(tmp_path):
    """Same image, same model: /invocations' preprocessing gives what validation computed during training."""
    import cv2
    import torch

    from helpers import BASE_HP, make_rec_split, run_job
    from roost.algorithm.hyperparameters import parse_hyperparameters
    from roost.algorithm.train import load_channel
    from roost.data import im2rec
    from roost.formats.lst import ListEntry, write_list

    train, val, n = make_rec_split(tmp_path / "d")
    status, job = run_job(tmp_path / "job", {"train": train, "validation": val}, {**BASE_HP, "num_training_samples": n})
    assert status == 0
    rng = np.random.default_rng(5)
    img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)  # exactly the model's H x W: no resize either way
    cv2.imwrite(str(tmp_path / "x.png"), img)
    write_list(tmp_path / "x.lst", [ListEntry(0, "x.png", (1.0,))])
    im2rec.pack_list(tmp_path / "x.lst", tmp_path, im2rec.EncodeOptions(encoding=".png"))
    hp = parse_hyperparameters({**BASE_HP, "num_training_samples": n})
    x, _ = load_channel([tmp_path / "x.rec"], hp, train=False)[0]
    model, _ = load(job / "model")
    with torch.no_grad():
        expected = torch.softmax(model(x[None].float()), 1)[0].numpy()
    got = Predictor.load(job / "model").predict([(tmp_path / "x.png").read_bytes()])[0].probabilities
    np.testing.assert_allclose(got, expected, atol=1e-6)
