"""Real sample images that ship inside a registry package, for demos and tests.

``animal-mnist`` carries 10,000 28x28 greyscale animal silhouettes (1,000 per
class, bird among them) in its wheel; nothing is downloaded. Its own loader
imports TensorFlow, so Roost installs it with ``--no-deps`` and reads the
bundled arrays directly.
"""

from __future__ import annotations

import gzip
import pickle
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
INSTALL_HINT = "pip install --no-deps animal-mnist==0.4 (make demo and make test do this)"


def load_animal_shapes() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 28, 28], labels [N])`` from the installed ``animal-mnist`` package."""
    try:
        base = resources.files("animal_mnist") / "data" / "Animal_MNIST"
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"the animal-mnist package is not installed: {INSTALL_HINT}") from None
    # pickled numpy arrays from a pinned, installed package: as trusted as its code
    with (base / "animal_data_version_3.gz").open("rb") as raw, gzip.open(raw, "rb") as f:
        images = pickle.load(f)
    with (base / "animal_label_version_3.gz").open("rb") as raw, gzip.open(raw, "rb") as f:
        labels = pickle.load(f)
    return np.asarray(images, dtype=np.uint8), np.asarray(labels)


def export_animal_shapes(out: str | Path, per_class: int = 60, classes=ANIMAL_CLASSES, offset: int = 0) -> Path:
    """Write ``out/<class>/<class>_NNNN.png``: a folder of class folders, as users keep photos."""
    images, labels = load_animal_shapes()
    out = Path(out)
    for name in classes:
        if name not in ANIMAL_CLASSES:
            raise ValueError(f"unknown class {name!r}; animal-mnist has {', '.join(ANIMAL_CLASSES)}")
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        idx = np.flatnonzero(labels == ANIMAL_CLASSES.index(name))[offset : offset + per_class]
        for n, i in enumerate(idx):
            cv2.imwrite(str(folder / f"{name}_{n:04d}.png"), images[i])
    return out
