"""Tiny data sets made in code, for tests that train, and a Roost server on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import cv2
import numpy as np

from roost.data import im2rec
from roost.formats import classes as class_names
from roost.formats.lst import ListEntry, write_list
from roost.system import free_port

#: the checkout's root
REPO = Path(__file__).resolve().parents[1]
#: MXNet-made ground truth lives beside the checkout (``../shared/fixtures``);
#: ROOST_FIXTURES points elsewhere when the layout differs.
FIXTURES = Path(os.environ.get("ROOST_FIXTURES", REPO.parent / "shared" / "fixtures")) / "mxnet"
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 60, 220), (230, 200, 30)]


def make_image_folder(root: Path, per_class: int = 12, size: int = 20, classes: int = 3, seed: int = 0) -> Path:
    """Class k: a noisy image with a bright square of colour k at a random place - learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    for k in range(classes):
        d = root / f"class_{k}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 90, (size, size + 4, 3), dtype=np.uint8)
            s = size // 2
            y, x = rng.integers(0, size - s), rng.integers(0, size + 4 - s)
            img[y : y + s, x : x + s] = COLOURS[k][::-1]  # BGR on disk
            cv2.imwrite(str(d / f"{i:03d}.png"), img)
    return root


def make_class_tree(root: Path, counts: dict[str, int]) -> Path:
    """Class folders of random 20x30 PNGs, ``counts`` images per class name."""
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        d = root / name
        d.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(d / f"{i:03d}.png"), rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    return root


def make_rec_split(tmp: Path, per_class: int = 12, size: int = 20, classes: int = 3) -> tuple[Path, Path, int]:
    """train.rec / val.rec (+ .idx, classes.json) in ``tmp``; returns their paths and the train count."""
    images = make_image_folder(tmp / "images", per_class, size, classes)
    split = im2rec.split_class_folders(images, val_ratio=0.25)
    for name, entries in (("train", split.train), ("val", split.val)):
        write_list(tmp / f"{name}.lst", entries)
        im2rec.pack_list(tmp / f"{name}.lst", images, im2rec.EncodeOptions(encoding=".png"))
    class_names.write(tmp / class_names.FILE, split.classes)
    return tmp / "train.rec", tmp / "val.rec", len(split.train)


def single_entry_rec(tmp: Path, label: float) -> Path:
    img = np.zeros((8, 8, 3), np.uint8)
    cv2.imwrite(str(tmp / "x.png"), img)
    write_list(tmp / "one.lst", [ListEntry(0, "x.png", (label,))])
    im2rec.pack_list(tmp / "one.lst", tmp)
    return tmp / "one.rec"


BASE_HP = {
    "num_classes": "3",
    "mini_batch_size": "8",
    "num_layers": "8",
    "image_shape": "3,16,16",
    "epochs": "2",
    "learning_rate": "0.05",
}


def run_job(job: Path, channels: dict, hp: dict, **kwargs) -> tuple[int, Path]:
    """Lay out an /opt/ml-style job and run the algorithm in-process (no loader workers, for speed)."""
    from roost.algorithm.container import run_training
    from roost.algorithm.layout import prepare_local_job

    confine = kwargs.pop("confine", False)  # as `roost train` on the user's own files
    prepare_local_job(job, channels, {k: str(v) for k, v in hp.items()}, **kwargs)
    return run_training(job, workers=0, confine=confine), job


def failure(job: Path) -> str:
    path = job / "output" / "failure"
    return path.read_text() if path.is_file() else ""


def split_folders(tmp: Path, per_class: int = 10, classes: int = 3) -> tuple[Path, Path]:
    """Separate train and validation folders of class folders (image mode needs different folders)."""
    train = make_image_folder(tmp / "train_images", per_class, classes=classes, seed=1)
    val = make_image_folder(tmp / "val_images", max(3, per_class // 3), classes=classes, seed=2)
    return train, val


def make_multilabel(tmp: Path, n: int = 36, size: int = 20, classes: int = 3, seed: int = 0) -> tuple[Path, Path]:
    """Images holding any subset of the class colours; returns (image folder, .lst with one 0/1 column per class)."""
    rng = np.random.default_rng(seed)
    root = tmp / "multi"
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n):
        present = rng.random(classes) < 0.5
        img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        for k in np.flatnonzero(present):
            y, x = rng.integers(0, size - 6, 2)
            img[y : y + 6, x : x + 6] = COLOURS[k][::-1]
        cv2.imwrite(str(root / f"{i:03d}.png"), img)
        entries.append(ListEntry(i, f"{i:03d}.png", tuple(float(v) for v in present)))
    write_list(tmp / "multi.lst", entries)
    return root, tmp / "multi.lst"


# --------------------------------------------------------------------------- a Roost server for API tests


def training_request(data, tmp_path, name=None, epochs=2, **overrides):
    """A CreateTrainingJob request as seed 003 builds it, for a tiny ResNet on ``data`` (see make_rec_split)."""
    train, val, n = data
    p = {
        "AlgorithmSpecification": {
            "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/image-classification:1",
            "TrainingInputMode": "File",
        },
        "RoleArn": "arn:aws:iam::123456789012:role/service-role/AmazonSageMaker-ExecutionRole",
        "OutputDataConfig": {"S3OutputPath": (tmp_path / "output").as_uri()},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.p3.2xlarge", "VolumeSizeInGB": 50},
        "TrainingJobName": name or f"DEMO-imageclassification-{uuid.uuid4().hex[:8]}",
        "HyperParameters": {
            "image_shape": "3,16,16",
            "num_layers": "8",
            "num_training_samples": str(n),
            "num_classes": "3",
            "mini_batch_size": "8",
            "epochs": str(epochs),
            "learning_rate": "0.05",
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 360000},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": str(train),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/x-recordio",
                "CompressionType": "None",
            },
            {
                "ChannelName": "validation",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": val.as_uri(),
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ContentType": "application/x-recordio",
                "CompressionType": "None",
            },
        ],
    }
    p.update(overrides)
    return p


def wait_until_ended(service, name: str, timeout: float = 20.0, every: float = 0.02) -> dict:
    """DescribeTrainingJob through ``service`` (in-process) until the job ends; its last answer."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = service.describe_training_job({"TrainingJobName": name})
        if d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return d
        time.sleep(every)
    raise AssertionError(f"{name} did not end: {d['TrainingJobStatus']} / {d['SecondaryStatus']}")


KEY, SECRET = "RKTESTKEY0001", "test-secret-key-for-roost"
FAST = {"Delay": 1, "MaxAttempts": 180}


class Server:
    """``roost server`` in a subprocess; local data may come from the temporary folder and the MXNet fixtures."""

    def __init__(self, data_dir, env=None, roots=None, **flags):
        self.data_dir, self.flags, self.proc, self.port = Path(data_dir), flags, None, free_port()
        self.env, self.roots = env or {}, roots if roots is not None else (tempfile.gettempdir(), FIXTURES)
        self.log = self.data_dir.with_name(self.data_dir.name + ".stderr.log")

    @property
    def url(self):
        return f"{'https' if self.flags.get('tls_cert') else 'http'}://127.0.0.1:{self.port}"

    def start(self):
        import requests

        args = [
            sys.executable,
            "-m",
            "roost",
            "server",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--stop-grace",
            "3",
        ]
        for root in self.roots:
            args += ["--data-root", str(root)]
        for k, v in self.flags.items():
            if v is not None:
                args += [f"--{k.replace('_', '-')}", str(v)]
        env = {
            **os.environ,
            "ROOST_ACCESS_KEY_ID": KEY,
            "ROOST_SECRET_ACCESS_KEY": SECRET,
            "OMP_NUM_THREADS": "1",
            "ROOST_CHECK_RESPONSES": "1",  # every answer is checked against botocore's output shape
            **self.env,
        }
        with open(self.log, "ab") as log:  # a file, not a pipe nobody reads: a chatty server must not block
            self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline and self.proc.poll() is None:
            try:
                if requests.get(self.url + "/ping", timeout=1, verify=False).ok:  # noqa: S501 - a test's own cert
                    return self
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("server did not start: " + self.log.read_text()[-3000:])

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, service="sagemaker", secret=SECRET, key=KEY, **config):
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, **config),
        )


def generated_section(doc: str, name: str) -> str:
    """The part of ``docs/<doc>`` that ``scripts/generate-docs.py`` writes under ``<!-- generated: name -->``."""
    text = (REPO / "docs" / doc).read_text()
    return text.split(f"<!-- generated: {name} -->\n", 1)[1].split("<!-- end generated -->", 1)[0]


# --------------------------------------------------------------------------- hostile inputs


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` greyscale pixels, with almost no data behind it: what a
    decompression bomb looks like to a decoder that trusts the header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- services in-process


class Api:
    """Services behind the same dispatch table the server uses: requests checked against botocore's input shapes,
    answers against its output shapes, without HTTP."""

    def __init__(self, *services):
        from roost.aws.dispatch import CHECK_RESPONSES_ENV, dispatch_table

        os.environ[CHECK_RESPONSES_ENV] = "1"
        try:
            self.table = dispatch_table(*services)
        finally:
            os.environ.pop(CHECK_RESPONSES_ENV, None)

    def __call__(self, operation: str, request: dict | None = None, prefix: str = "SageMaker") -> dict:
        return self.table[f"{prefix}.{operation}"](request or {})


def server_sent_events(session, url: str, timeout: float = 300.0):
    """``(event, data)`` of a console's live stream, as they come, until it ends (``end``) or ``timeout`` passes."""
    deadline = time.time() + timeout
    with session.get(url, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        event, data = None, []
        for line in r.iter_lines(decode_unicode=True):
            assert time.time() < deadline, f"{url} did not end within {timeout} s"
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") or line == "data:":
                data.append(line[len("data: ") :])
            elif line == "" and event is not None:
                yield event, "\n".join(data)
                if event == "end":
                    return
                event, data = None, []
