"""Roost: SageMaker's built-in Image Classification algorithm, self-hosted on PyTorch."""

import os as _os

__version__ = "0.1.0"

#: the largest image (width x height) Roost decodes; OpenCV checks it from the file's header, before it allocates
MAX_IMAGE_PIXELS = int(_os.environ.get("ROOST_MAX_IMAGE_PIXELS") or 100_000_000)
# OpenCV reads its limit once, when it is first imported: Roost's package comes first in every process
_os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_IMAGE_PIXELS)
