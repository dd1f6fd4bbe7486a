"""Write real demo images: silhouettes from the ``animal-mnist`` package, one folder per class.

``animal-mnist`` ships 10,000 28x28 greyscale animal silhouettes (1,000 per
class, bird among them) inside its wheel; no download happens. Its own loader
imports TensorFlow, so the Makefile installs it with ``--no-deps`` and this
script reads the bundled arrays directly.

    python examples/animal_shapes.py demo/images --per-class 60
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import sys
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


def load() -> tuple[np.ndarray, np.ndarray]:
    try:
        base = resources.files("animal_mnist") / "data" / "Animal_MNIST"
    except ModuleNotFoundError:
        sys.exit("animal-mnist is not installed: run `make demo`, or `pip install --no-deps animal-mnist==0.4`")
    # pickles from a pinned, installed package: trusted like its code
    with gzip.open(base / "animal_data_version_3.gz", "rb") as f:
        images = pickle.load(f)
    with gzip.open(base / "animal_label_version_3.gz", "rb") as f:
        labels = pickle.load(f)
    return np.asarray(images, dtype=np.uint8), np.asarray(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder to create class folders in")
    ap.add_argument("--per-class", type=int, default=60, help="images per class")
    ap.add_argument("--classes", nargs="+", default=CLASSES, choices=CLASSES, metavar="NAME",
                    help=f"classes to export (default: all of {' '.join(CLASSES)})")
    args = ap.parse_args()
    images, labels = load()
    for name in args.classes:
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        idx = np.flatnonzero(labels == CLASSES.index(name))[: args.per_class]
        for n, i in enumerate(idx):
            cv2.imwrite(str(folder / f"{name}_{n:04d}.png"), images[i])
    print(f"wrote {len(args.classes)} classes x {args.per_class} images to {args.out}")


if __name__ == "__main__":
    main()
