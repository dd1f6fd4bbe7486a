"""Augmentation, checked statistically over many draws."""

import cv2
import numpy as np
import pytest

from roost.data.augment import FILL_VALUE, Preprocess, crop, hsl_jitter, random_affine, resize_short


def _gradient(h=40, w=60):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4, y * 6, np.full_like(x, 100)], axis=-1).astype(np.uint8)


def test_resize_short_uses_integer_division():
    assert resize_short(np.zeros((300, 400, 3), np.uint8), 64).shape == (64, 85, 3)
    assert resize_short(np.zeros((400, 300, 3), np.uint8), 64).shape == (85, 64, 3)
    assert resize_short(np.zeros((64, 90), np.uint8), 64).shape == (64, 90)


def test_validation_is_a_centre_crop_without_randomness():
    img = _gradient()
    pre = Preprocess(20, 30, augmentation_type="crop_color_transform", train=False)
    outs = {pre(img, np.random.default_rng(i)).tobytes() for i in range(20)}
    assert len(outs) == 1
    assert np.array_equal(pre(img, np.random.default_rng(0)), img[10:30, 15:45])


def test_no_augmentation_centre_crops_in_training_too():
    img = _gradient()
    out = Preprocess(20, 30, train=True)(img, np.random.default_rng(1))
    assert np.array_equal(out, img[10:30, 15:45])


def test_crop_positions_are_uniform_and_mirror_is_a_coin_flip():
    img = _gradient()
    pre = Preprocess(20, 30, augmentation_type="crop")
    rng = np.random.default_rng(0)
    xs, mirrored = [], 0
    for _ in range(2000):
        out = pre(img, rng)
        # column 0 of the crop: its x value (channel 0 = 4*x) tells the position, reversed when mirrored
        first, last = int(out[0, 0, 0]) // 4, int(out[0, -1, 0]) // 4
        if first > last:
            mirrored += 1
            first = last
        xs.append(first)
    counts = np.bincount(xs, minlength=31)
    assert len(counts) == 31 and counts.min() > 30  # every offset 0..30 drawn
    assert abs(mirrored / 2000 - 0.5) < 0.05


def test_small_images_are_scaled_up_to_fit():
    out = crop(np.zeros((10, 20, 3), np.uint8), 16, 16, None)
    assert out.shape == (16, 16, 3)


def test_hsl_offsets_stay_within_limits_and_vary():
    img = np.full((4, 4, 3), (120, 80, 60), np.uint8)
    base = cv2.cvtColor(img, cv2.COLOR_RGB2HLS)[0, 0].astype(int)
    rng = np.random.default_rng(0)
    deltas = []
    for _ in range(500):
        hls = cv2.cvtColor(hsl_jitter(img, rng, 36, 50, 50), cv2.COLOR_RGB2HLS)[0, 0].astype(int)
        deltas.append(hls - base)
    d = np.array(deltas)
    assert np.abs(d[:, 0]).max() <= 36 + 2 and np.abs(d[:, 1]).max() <= 50 + 2 and np.abs(d[:, 2]).max() <= 50 + 2
    assert d[:, 0].std() > 5 and d[:, 1].std() > 5 and d[:, 2].std() > 5


def test_affine_fills_corners_and_keeps_size():
    img = np.full((50, 50, 3), 10, np.uint8)
    rng = np.random.default_rng(3)
    filled = 0
    for _ in range(50):
        out = random_affine(img, rng, 10, 0.1, 0.25)
        assert out.shape == img.shape
        filled += int((out == FILL_VALUE).all(axis=-1).any())
    assert filled > 25  # most warps expose the border fill


@pytest.mark.parametrize("level", [None, "crop", "crop_color", "crop_color_transform"])
def test_output_shape_and_greyscale(level):
    pre = Preprocess(24, 24, resize=32, augmentation_type=level)
    rng = np.random.default_rng(0)
    assert pre(_gradient(), rng).shape == (24, 24, 3)
    assert pre(_gradient()[..., 0], rng).shape == (24, 24)
