"""Image decoding and encoding with OpenCV, the codec MXNet's tools use.

Decoding through the same library (``cv2.imread`` flags, EXIF orientation,
CMYK and greyscale JPEGs, truncated JPEGs that libjpeg still decodes) is what
makes Roost's records match MXNet's pixel for pixel. Every decode in Roost goes
through this module, and none decodes an image above ``roost.MAX_IMAGE_PIXELS``
(``ROOST_MAX_IMAGE_PIXELS``): a 400 KB PNG can declare 20000 x 20000 pixels, and
decoding it would take 1.2 GB. The size comes from the file's header, read by
Pillow without decoding (about 1% of a decode's time); OpenCV's own limit, set
from the same value when Roost is imported first, guards what Pillow cannot read.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from roost import MAX_IMAGE_PIXELS
from roost.errors import UserError

#: What ``im2rec.py --exts`` accepts by default (MXNet >= 1.1).
DEFAULT_EXTS = (".jpeg", ".jpg", ".png")

# libjpeg's "Premature end of JPEG file" and friends would otherwise interleave
# with progress bars; failures are reported by Roost itself.
try:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - very old OpenCV
    pass


class ImageDecodeError(UserError):
    pass


class ImageTooLarge(ImageDecodeError):
    pass


Image.MAX_IMAGE_PIXELS = None  # Roost applies its own limit, with its own message


def check_size(source: bytes | str | os.PathLike, what: str) -> None:
    """:class:`ImageTooLarge` when the header of ``source`` (bytes or a file) declares more than the pixel limit."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            width, height = im.size
    except Exception:  # noqa: BLE001 - not something Pillow reads: OpenCV decides, under its own limit
        return
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLarge(
            f"{what} is {width}x{height} = {width * height:,} pixels, more than the limit of {MAX_IMAGE_PIXELS:,} "
            "pixels (ROOST_MAX_IMAGE_PIXELS); shrink it, or raise the limit"
        )


def _decode(what: str, source: bytes | str, decode, *args) -> np.ndarray | None:
    """``decode(*args)`` once ``source``'s size is known to be within the limit (OpenCV's own refusal of an
    oversized image is :class:`ImageTooLarge` too)."""
    check_size(source, what)
    try:
        return decode(*args)
    except cv2.error as err:
        # OpenCV has no typed errors: its size check is the assertion named below
        if "CV_IO_MAX_IMAGE_PIXELS" in str(err):
            raise ImageTooLarge(
                f"{what} is larger than the limit of {MAX_IMAGE_PIXELS:,} pixels (ROOST_MAX_IMAGE_PIXELS); "
                "shrink it, or raise the limit"
            ) from None
        return None


def imread(path: str | os.PathLike, color: int = 1) -> np.ndarray:
    """``cv2.imread(path, color)`` with an error that says why instead of ``None``.

    ``color`` is im2rec's ``--color``: 1 colour (BGR, alpha dropped), 0 greyscale,
    -1 unchanged.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageDecodeError(f"{p}: file not found")
    # imread rather than imdecode(fromfile): OpenCV's imdecode gives up on
    # truncated JPEGs that imread (and therefore MXNet) still decodes.
    img = _decode(str(p), os.fspath(p), cv2.imread, os.fspath(p), color)
    if img is None:
        raise ImageDecodeError(
            f"{p}: cannot be decoded as an image (corrupt, truncated beyond repair, or not an image)"
        )
    return img


def imdecode(data: bytes, color: int = 1) -> np.ndarray:
    img = _decode(f"the {len(data)}-byte image", data, cv2.imdecode, np.frombuffer(data, dtype=np.uint8), color)
    if img is None:
        raise ImageDecodeError(f"{len(data)} bytes cannot be decoded as an image")
    return img


def _to_rgb(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def decode_rgb(data: bytes, channels: int) -> np.ndarray | None:
    """Encoded bytes -> HWC RGB (``channels`` 3) or HW greyscale (1), as training and serving see images;
    None when the bytes are not an image, :class:`ImageTooLarge` above the pixel limit."""
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    img = _decode(f"the {len(data)}-byte image", data, cv2.imdecode, np.frombuffer(data, np.uint8), flag)
    return None if img is None else _to_rgb(img)


def read_rgb(path: str | os.PathLike, channels: int) -> np.ndarray | None:
    """:func:`decode_rgb` for a file; ``imread``, not ``imdecode``, because it also decodes truncated JPEGs as
    im2rec (and MXNet) do."""
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    img = _decode(os.fspath(path), os.fspath(path), cv2.imread, os.fspath(path), flag)
    return None if img is None else _to_rgb(img)


def resize_exact(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize to ``height`` x ``width``, aspect ratio ignored (SageMaker's inference preprocessing)."""
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)


def limit_threads() -> None:
    """One OpenCV thread: for worker processes that already run one per core."""
    cv2.setNumThreads(1)


def encode(img: np.ndarray, encoding: str = ".jpg", quality: int = 95) -> bytes:
    """``mx.recordio.pack_img``'s encoding step: JPEG quality or PNG compression level."""
    fmt = encoding.lower()
    if fmt in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif fmt == ".png":
        # MXNet passes --quality straight through (95 by default); OpenCV then
        # falls back to the maximum level 9, which we do without its warning.
        params = [cv2.IMWRITE_PNG_COMPRESSION, min(max(int(quality), 0), 9)]
    else:
        raise ValueError(f"unsupported encoding {encoding!r}: use .jpg or .png")
    ok, buf = cv2.imencode(fmt, img, params)
    if not ok:
        raise ImageDecodeError(f"OpenCV could not encode a {img.shape} image as {fmt}")
    return buf.tobytes()


def is_image_name(name: str, exts=DEFAULT_EXTS) -> bool:
    return os.path.splitext(name)[1].lower() in (e.lower() for e in exts)
