"""Tiny data sets made in code, for tests that train."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from roost.data import im2rec
from roost.formats.lst import ListEntry, write_list

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


def make_rec_split(tmp: Path, per_class: int = 12, size: int = 20, classes: int = 3) -> tuple[Path, Path, int]:
    """train.rec / val.rec (+ .idx, classes.json) in ``tmp``; returns their paths and the train count."""
    images = make_image_folder(tmp / "images", per_class, size, classes)
    split = im2rec.split_class_folders(images, val_ratio=0.25)
    for name, entries in (("train", split.train), ("val", split.val)):
        write_list(tmp / f"{name}.lst", entries)
        im2rec.pack_list(tmp / f"{name}.lst", images, im2rec.EncodeOptions(encoding=".png"))
    im2rec.write_classes(tmp / "classes.json", split.classes)
    return tmp / "train.rec", tmp / "val.rec", len(split.train)


def single_entry_rec(tmp: Path, label: float) -> Path:
    img = np.zeros((8, 8, 3), np.uint8)
    cv2.imwrite(str(tmp / "x.png"), img)
    write_list(tmp / "one.lst", [ListEntry(0, "x.png", (label,))])
    im2rec.pack_list(tmp / "one.lst", tmp)
    return tmp / "one.rec"
