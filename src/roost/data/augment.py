"""Training-time preprocessing, after MXNet 1.3's default image augmenter (docs/sagemaker.md, "Augmentation").

Per image: optional ``resize`` of the shorter side -> affine (rotation, shear,
aspect; ``crop_color_transform``) -> crop to ``image_shape`` (random with any
``augmentation_type``, centred without) -> HSL jitter (``crop_color`` and up)
-> random horizontal mirror (any ``augmentation_type``).

Choices the reference leaves open, made here:
* ``resize`` applies to validation images too, so both see the same scale.
* An image smaller than ``image_shape`` after resizing is scaled up (shorter
  side first, aspect kept) until the crop fits, as MXNet 1.3 does; SageMaker's
  docs say such images fail the job, which helps nobody.
* Pixels uncovered by the affine warp are filled with 127 (MXNet's example
  scripts; the C++ default would be 255).
* Images are RGB, 0..255; no mean subtraction (``bn_data`` normalises).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

FILL_VALUE = 127

#: augmentation_type -> (random crop + mirror, max H/S/L offsets, max rotate deg, max shear, max aspect change)
LEVELS = {
    None: (False, (0, 0, 0), 0, 0.0, 0.0),
    "crop": (True, (0, 0, 0), 0, 0.0, 0.0),
    "crop_color": (True, (36, 50, 50), 0, 0.0, 0.0),
    "crop_color_transform": (True, (36, 50, 50), 10, 0.1, 0.25),
}


@dataclass(frozen=True)
class Preprocess:
    height: int
    width: int
    resize: int | None = None
    augmentation_type: str | None = None
    train: bool = True

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        random_crop, hsl, max_angle, max_shear, max_aspect = LEVELS[self.augmentation_type if self.train else None]
        if self.resize:
            img = resize_short(img, self.resize)
        if max_angle or max_shear or max_aspect:
            img = random_affine(img, rng, max_angle, max_shear, max_aspect)
        img = crop(img, self.height, self.width, rng if random_crop else None)
        if any(hsl) and img.ndim == 3:
            img = hsl_jitter(img, rng, *hsl)
        if random_crop and rng.random() < 0.5:
            img = img[:, ::-1]
        return np.ascontiguousarray(img)


def resize_short(img: np.ndarray, size: int) -> np.ndarray:
    """Shorter side -> ``size``, the other scaled with integer division (MXNet's rule), bilinear."""
    h, w = img.shape[:2]
    if h == size and w <= h or w == size and h <= w:
        return img
    new = (size, h * size // w) if h > w else (w * size // h, size)
    return cv2.resize(img, new, interpolation=cv2.INTER_LINEAR)


def crop(img: np.ndarray, height: int, width: int, rng: np.random.Generator | None) -> np.ndarray:
    h, w = img.shape[:2]
    if h < height or w < width:
        scale = max(height / h, width / w)
        img = cv2.resize(
            img, (max(width, math.ceil(w * scale)), max(height, math.ceil(h * scale))), interpolation=cv2.INTER_LINEAR
        )
        h, w = img.shape[:2]
    if rng is None:
        y, x = (h - height) // 2, (w - width) // 2
    else:
        y, x = int(rng.integers(0, h - height + 1)), int(rng.integers(0, w - width + 1))
    return img[y : y + height, x : x + width]


def random_affine(
    img: np.ndarray, rng: np.random.Generator, max_angle: int, max_shear: float, max_aspect: float
) -> np.ndarray:
    """MXNet's rotate/shear/aspect warp: one 2x3 matrix, centred, same output size."""
    h, w = img.shape[:2]
    s = rng.uniform(-max_shear, max_shear) if max_shear else 0.0
    angle = int(rng.integers(-max_angle, max_angle + 1)) if max_angle else 0
    ratio = rng.uniform(1 - max_aspect, 1 + max_aspect) if max_aspect else 1.0
    a = math.radians(angle)
    hs = 2.0 / (1.0 + ratio)
    ws = ratio * hs
    m = np.array(
        [
            [hs * math.cos(a) - s * math.sin(a) * ws, hs * math.sin(a) + s * math.cos(a) * ws, 0.0],
            [-math.sin(a) * ws, math.cos(a) * ws, 0.0],
        ],
        dtype=np.float64,
    )
    # translate so the image centre stays the centre
    centre = np.array([w / 2.0, h / 2.0])
    m[:, 2] = centre - m[:, :2] @ centre
    border = (FILL_VALUE,) * (img.shape[2] if img.ndim == 3 else 1)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def hsl_jitter(img: np.ndarray, rng: np.random.Generator, max_h: int, max_s: int, max_l: int) -> np.ndarray:
    """One random offset per channel in hue/saturation/lightness, clamped (OpenCV HLS, H in 0..180)."""

    def offset(limit: int) -> int:
        r = (rng.random() + 4 * rng.random()) / 5  # MXNet's draw
        return int(r * 2 * limit - limit)

    dh, ds, dl = offset(max_h), offset(max_s), offset(max_l)
    hls = cv2.cvtColor(img, cv2.COLOR_RGB2HLS).astype(np.int16)
    hls[..., 0] = np.clip(hls[..., 0] + dh, 0, 180)
    hls[..., 1] = np.clip(hls[..., 1] + dl, 0, 255)
    hls[..., 2] = np.clip(hls[..., 2] + ds, 0, 255)
    return cv2.cvtColor(hls.astype(np.uint8), cv2.COLOR_HLS2RGB)
