"""Packing speed: `roost im2rec --resize 256` against a plain Pillow loop, in one run.

Makes a few hundred photo-sized (500x375) JPEGs, then packs them
* with a single-process Pillow decode -> resize -> encode loop (the baseline),
* with Roost's packer on 1 worker and on 2 workers,
and prints images/s and each one's ratio to the baseline.

    .venv/bin/python benchmarks/bench_im2rec.py [--images 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from roost.data import im2rec as core
from roost.formats.lst import ListEntry, write_list
from roost.system import available_cores


def make_photos(folder: Path, n: int, size=(500, 375)) -> list[ListEntry]:
    """Smooth gradients, blobs and noise: compresses like a photo, unlike flat colour or pure noise."""
    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    entries = []
    for i in range(n):
        base = np.stack(
            [(xx / w) * rng.uniform(60, 200), (yy / h) * rng.uniform(60, 200), np.full_like(xx, rng.uniform(40, 160))],
            axis=-1,
        )
        for _ in range(6):
            cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(15, 90)
            mask = ((xx - cx) ** 2 + (yy - cy) ** 2) < r * r
            base[mask] = rng.uniform(0, 255, 3)
        img = np.clip(cv2.GaussianBlur(base, (0, 0), 2.0) + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        name = f"img_{i:04d}.jpg"
        cv2.imwrite(str(folder / name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        entries.append(ListEntry(i, name, (float(i % 4),)))
    return entries


def pillow_loop(folder: Path, entries: list[ListEntry], resize: int) -> None:
    for e in entries:
        with Image.open(folder / e.path) as im:
            im = im.convert("RGB")
            w, h = im.size
            new = (resize, h * resize // w) if h > w else (w * resize // h, resize)
            im = im.resize(new, Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=95)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        entries = make_photos(folder, args.images)
        lst = folder / "bench.lst"
        write_list(lst, entries)
        opts = core.EncodeOptions(resize=args.resize)
        n = len(entries)
        results = {"pillow loop (baseline)": best_of(args.repeat, lambda: pillow_loop(folder, entries, args.resize))}
        for workers in (1, 2):
            results[f"roost im2rec, {workers} worker{'s' if workers > 1 else ''}"] = best_of(
                args.repeat, lambda workers=workers: core.pack_list(lst, folder, opts, num_workers=workers)
            )
    base = n / results["pillow loop (baseline)"]
    print(
        f"{n} JPEGs 500x375 -> --resize {args.resize}, JPEG q95; best of {args.repeat}; "
        f"{available_cores()} cores available; python {sys.version.split()[0]}"
    )
    for name, seconds in results.items():
        rate = n / seconds
        print(f"  {name:<28} {rate:8.1f} img/s   ratio {rate / base:5.2f}x")


if __name__ == "__main__":
    main()
