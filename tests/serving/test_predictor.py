"""Models to predictions: SageMaker's artifacts without MXNet, bad inputs, parity with training."""

import base64
import json

import cv2
import numpy as np
import pytest

from helpers import png_declaring
from roost.models.artifact import load
from roost.serving.batching import DynamicBatcher
from roost.serving.invocations import InputError, decode_request
from roost.serving.predictor import Predictor

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


def test_a_pixel_bomb_is_a_clear_input_error(mxnet_fixtures):
    predictor = Predictor.load(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz")
    with pytest.raises(InputError, match="20000x20000 = 400,000,000 pixels, more than the limit"):
        predictor.predict([png_declaring(20_000, 20_000)])


def test_many_instances_are_capped_and_decoded_in_bounded_batches(mxnet_fixtures):
    predictor = Predictor.load(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz")
    tiny = base64.b64encode(cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()).decode()
    with pytest.raises(InputError, match="20000 instances in one request; the limit is 100"):
        decode_request(json.dumps({"instances": [tiny] * 20_000}).encode(), "application/json")  # 2 MB
    png = base64.b64encode((mxnet_fixtures / "model" / "test_0.png").read_bytes()).decode()
    with pytest.raises(InputError, match="must be"):
        decode_request(b"[" * 100_000 + b"]" * 100_000, "application/json")  # nested deeper than Python recurses
    batcher = DynamicBatcher(predictor, max_batch=4)
    seen = []
    original = predictor.predict_arrays
    predictor.predict_arrays = lambda arrays: seen.append(len(arrays)) or original(arrays)
    try:
        images, _ = decode_request(json.dumps({"instances": [png] * 10}).encode(), "application/json")
        got = batcher.predict(images)
    finally:
        batcher.close()
    assert len(got) == 10 and max(seen) <= 4
    np.testing.assert_allclose(got[9].probabilities, got[0].probabilities, atol=1e-6)


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
