"""Decoding: every image Roost reads goes through one module, and none is decoded above the pixel limit."""

import resource

import cv2
import numpy as np
import pytest

from helpers import png_declaring
from roost import MAX_IMAGE_PIXELS
from roost.data.images import ImageTooLarge, decode_rgb, imdecode, imread, read_rgb


def test_an_image_declaring_too_many_pixels_is_refused_from_its_header(tmp_path):
    bomb = png_declaring(20_000, 20_000)  # 400 megapixels in a few hundred bytes
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for decode in (
        lambda: decode_rgb(bomb, 3),
        lambda: read_rgb(path, 3),
        lambda: imdecode(bomb),
        lambda: imread(path),
    ):
        with pytest.raises(
            ImageTooLarge, match=f"20000x20000 = 400,000,000 pixels, more than the limit of {MAX_IMAGE_PIXELS:,}"
        ):
            decode()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100  # decoding it would have taken 400 MB at least


def test_images_within_the_limit_decode_as_before():
    ok, png = cv2.imencode(".png", np.full((30, 40, 3), (10, 20, 30), np.uint8))
    rgb = decode_rgb(png.tobytes(), 3)
    assert rgb.shape == (30, 40, 3) and tuple(rgb[0, 0]) == (30, 20, 10)
    assert decode_rgb(b"not an image", 3) is None
