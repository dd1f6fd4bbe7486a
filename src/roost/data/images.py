"""Image decoding and encoding with OpenCV, the codec MXNet's tools use.

Decoding through the same library (``cv2.imread`` flags, EXIF orientation,
CMYK and greyscale JPEGs, truncated JPEGs that libjpeg still decodes) is what
makes Roost's records match MXNet's pixel for pixel. Every decode in Roost goes
through this module, and none decodes an image above ``roost.MAX_IMAGE_PIXELS``
(``ROOST_MAX_IMAGE_PIXELS``): a 400 KB PNG can declare 20000 x 20000 pixels, and
decoding it would take 1.2 GB.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

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


def _decode(what: str, decode, *args) -> np.ndarray | None:
    """``decode(*args)``, with OpenCV's refusal of an oversized image as :class:`ImageTooLarge`."""
    try:
        return decode(*args)
    except cv2.error as err:
        # OpenCV has no typed errors: its size check is the assertion named below
        if "CV_IO_MAX_IMAGE_PIXELS" in str(err):
            raise ImageTooLarge(
                f"{what} is larger than {MAX_IMAGE_PIXELS:,} pixels, the limit (ROOST_MAX_IMAGE_PIXELS); "
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
    img = _decode(str(p), cv2.imread, os.fspath(p), color)
    if img is None:
        raise ImageDecodeError(
            f"{p}: cannot be decoded as an image (corrupt, truncated beyond repair, or not an image)"
        )
    return img


def imdecode(data: bytes, color: int = 1) -> np.ndarray:
    img = _decode(f"the {len(data)}-byte image", cv2.imdecode, np.frombuffer(data, dtype=np.uint8), color)
    if img is None:
        raise ImageDecodeError(f"{len(data)} bytes cannot be decoded as an image")
    return img


def _to_rgb(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def decode_rgb(data: bytes, channels: int) -> np.ndarray | None:
    """Encoded bytes -> HWC RGB (``channels`` 3) or HW greyscale (1), as training and serving see images;
    None when the bytes are not an image, :class:`ImageTooLarge` above the pixel limit."""
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    img = _decode(f"the {len(data)}-byte image", cv2.imdecode, np.frombuffer(data, np.uint8), flag)
    return None if img is None else _to_rgb(img)


def read_rgb(path: str | os.PathLike, channels: int) -> np.ndarray | None:
    """:func:`decode_rgb` for a file; ``imread``, not ``imdecode``, because it also decodes truncated JPEGs as
    im2rec (and MXNet) do."""
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    img = _decode(os.fspath(path), cv2.imread, os.fspath(path), flag)
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
    return os.path.splitext(name)[1].lower() in exts
