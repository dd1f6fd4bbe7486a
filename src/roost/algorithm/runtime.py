"""Process-level settings that make CPU training faster."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_tuned = False


def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Let glibc keep and reuse freed memory instead of mapping fresh pages for every large tensor.

    PyTorch's CPU allocator does not cache: each step's activations (tens of MB each) are
    malloc'ed and freed, glibc serves blocks that large with mmap/munmap, and every step
    pays page faults and kernel zeroing again. Serving them from the heap and trimming it
    only beyond ``trim_threshold`` measured +6-11% for ResNet-18 at 224x224 and +3-4% for
    ResNet-20 at 28x28 on a 2-core VM (benchmarks/README.md). No-op off glibc.
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _tuned = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return _tuned
