"""Line-oriented text files (``.lst``, ``.idx``, manifests) read so that every error names the file and line."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator


def numbered_lines(path: str | os.PathLike, error: Callable[[int, str], Exception]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file; a line that is not UTF-8 raises ``error(line number, message)``."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise error(lineno, f"not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})") from None
