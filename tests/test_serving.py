"""Models to predictions: SageMaker's artifacts without MXNet, the serving container contract, roost predict."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import requests

from roost.models.artifact import import_sagemaker, load
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


def test_bad_inputs_are_input_errors(mxnet_fixtures):
    predictor = Predictor.load(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz")
    with pytest.raises(InputError, match="cannot be decoded as an image"):
        predictor.predict([b"GIF89a not really"])
    with pytest.raises(InputError, match="body is empty"):
        predictor.predict([b""])


def test_predict_command(mxnet_fixtures):
    folder = mxnet_fixtures / "model"
    images = [str(folder / f"test_{i}.png") for i in range(3)]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "predict",
            str(folder / "resnet20_3x28x28" / "model.tar.gz"),
            *images,
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    expected = json.loads((folder / "resnet20_3x28x28" / "predictions.json").read_text())["probabilities"]
    assert [os.path.basename(row["image"]) for row in rows] == ["test_0.png", "test_1.png", "test_2.png"]
    for row in rows:
        np.testing.assert_allclose(row["probabilities"], expected[os.path.basename(row["image"])], atol=1e-4)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "predict",
            str(folder / "resnet20_3x28x28" / "model.tar.gz"),
            images[0],
            "--top-k",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "test_0.png" in r.stdout and "#2" in r.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(mxnet_fixtures, tmp_path_factory):
    """`roost container serve` on an /opt/ml folder holding an unpacked SageMaker artifact."""
    root = tmp_path_factory.mktemp("opt_ml")
    with tarfile.open(mxnet_fixtures / "model" / "resnet20_3x28x28" / "model.tar.gz") as tar:
        tar.extractall(root / "model", filter="data")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", "container", "serve", "--root", str(root), "--port", str(port)],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(url + "/ping", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        raise RuntimeError(proc.stderr.read().decode())
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def test_container_contract(served, mxnet_fixtures):
    folder = mxnet_fixtures / "model"
    expected = json.loads((folder / "resnet20_3x28x28" / "predictions.json").read_text())["probabilities"]
    img = (folder / "test_3.png").read_bytes()
    r = requests.post(served + "/invocations", data=img, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    np.testing.assert_allclose(r.json(), expected["test_3.png"], atol=1e-4)
    r = requests.post(
        served + "/invocations",
        data=img,
        headers={"Content-Type": "application/x-image", "Accept": "application/jsonlines"},
    )
    assert r.status_code == 200 and list(json.loads(r.text.strip())) == ["prediction"]
    r = requests.post(
        served + "/invocations",
        data=img,
        headers={"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "top_k=2,class_names=true"},
    )
    body = r.json()
    assert [t["class"] for t in body["top_k"]] == list(np.argsort(expected["test_3.png"])[::-1][:2])
    several = {"instances": [base64.b64encode((folder / f"test_{i}.png").read_bytes()).decode() for i in range(3)]}
    r = requests.post(served + "/invocations", json=several)
    assert r.status_code == 200 and len(r.json()) == 3
    np.testing.assert_allclose(r.json()[1]["prediction"], expected["test_1.png"], atol=1e-4)


@pytest.mark.parametrize(
    "body,ctype,status,message",
    [
        (b"\x89PNG broken", "image/png", 400, "cannot be decoded"),
        (b"x", "text/csv", 415, "unsupported content type"),
        (b"\0" * (6 * 1024 * 1024 + 1), "image/png", 413, "the limit is 6291456 bytes"),
        (b'{"instances": 3}', "application/json", 400, "instances"),
    ],
)
def test_container_rejects_bad_requests(served, body, ctype, status, message):
    r = requests.post(served + "/invocations", data=body, headers={"Content-Type": ctype})
    assert r.status_code == status and message in r.json()["error"]
    assert requests.get(served + "/ping").status_code == 200  # the worker is still up


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


def test_endpoint_predictions_equal_the_training_evaluation(tmp_path):
    """Same image, same model: /invocations' preprocessing gives what validation computed during training."""
    import cv2
    import torch

    from helpers import BASE_HP, make_rec_split, run_job
    from roost.algorithm.hyperparameters import parse_hyperparameters
    from roost.algorithm.train import load_channel
    from roost.data import im2rec
    from roost.formats.lst import ListEntry, write_list
    from roost.models.artifact import load

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
