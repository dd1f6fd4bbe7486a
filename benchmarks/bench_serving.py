"""Serving: ResNet-18 at 3,224,224 on CPU through `roost serve`, against the bare model forward.

Measures, in one script:
* bare forward - ``Predictor.predict_arrays`` on one preprocessed image, in process (the baseline);
* the endpoint with 1 client - sequential HTTP requests with a JPEG body;
* the endpoint with 8 concurrent clients - with dynamic batching (``--max-batch 8``) and without (``--max-batch 1``).
Prints p50/p99 latency and throughput, and each as a ratio to the bare forward.

    .venv/bin/python benchmarks/bench_serving.py [--requests 40]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402

from roost.formats.artifact import ModelMeta, pack_model_dir, serving_preprocessing, write_model_shapes  # noqa: E402
from roost.models.artifact import save_checkpoint  # noqa: E402
from roost.models.resnet import ResNet  # noqa: E402
from roost.serving.predictor import Predictor  # noqa: E402
from roost.system import free_port  # noqa: E402


def make_model(folder: Path) -> Path:
    torch.manual_seed(0)
    folder.mkdir(parents=True)
    model = ResNet(10, 18, (3, 224, 224)).eval()
    save_checkpoint(model, folder / "image-classification-0001.safetensors")
    write_model_shapes(folder, 1, (3, 224, 224))
    meta = ModelMeta(
        num_classes=10,
        num_layers=18,
        image_shape=[3, 224, 224],
        hyperparameters={},
        checkpoints=[],
        model="image-classification-0001.safetensors",
        preprocessing=serving_preprocessing((3, 224, 224)),
    )
    (folder / "roost-model.json").write_text(meta.to_json())
    return pack_model_dir(folder, folder.parent / "model.tar.gz")


def stats(latencies: list[float], seconds: float, n: int) -> dict:
    q = sorted(latencies)
    return {
        "p50": statistics.median(q) * 1000,
        "p99": q[min(len(q) - 1, int(len(q) * 0.99))] * 1000,
        "rps": n / seconds,
    }


def serve(model: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", "serve", str(model), "--port", str(port), "--max-batch", str(max_batch)],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/ping", timeout=1).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def http_load(url: str, body: bytes, clients: int, per_client: int) -> dict:
    def client(_):
        s = requests.Session()
        s.post(url + "/invocations", data=body, headers={"Content-Type": "image/jpeg"})  # warm
        out = []
        for _ in range(per_client):
            t = time.perf_counter()
            r = s.post(url + "/invocations", data=body, headers={"Content-Type": "image/jpeg"})
            r.raise_for_status()
            out.append(time.perf_counter() - t)
        return out

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        lat = [x for part in pool.map(client, range(clients)) for x in part]
    return stats(lat, time.perf_counter() - t, len(lat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=40, help="requests per measurement")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(Path(tmp) / "m")
        rng = np.random.default_rng(0)
        photo = cv2.GaussianBlur(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8), (0, 0), 3)
        body = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()

        predictor = Predictor.load(model)
        x = predictor.preprocess(body)
        predictor.predict_arrays([x])
        lat = []
        t0 = time.perf_counter()
        for _ in range(args.requests):
            t = time.perf_counter()
            predictor.predict_arrays([x])
            lat.append(time.perf_counter() - t)
        results = {"bare forward (in process)": stats(lat, time.perf_counter() - t0, args.requests)}
        del predictor

        for max_batch in (8, 1):
            proc, url = serve(model, max_batch)
            try:
                if max_batch == 8:
                    results["endpoint, 1 client"] = http_load(url, body, 1, args.requests)
                label = "batching" if max_batch > 1 else "no batching"
                results[f"endpoint, 8 clients, {label}"] = http_load(url, body, 8, max(2, args.requests // 8))
            finally:
                proc.terminate()
                proc.wait()
    base = results["bare forward (in process)"]
    print(
        f"ResNet-18 3,224,224, CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"JPEG 500x375 body ({len(body)} bytes)"
    )
    for name, r in results.items():
        print(
            f"  {name:<32} p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms  {r['rps']:6.1f} img/s  "
            f"latency x{r['p50'] / base['p50']:.2f}  throughput x{r['rps'] / base['rps']:.2f}"
        )


if __name__ == "__main__":
    main()
