"""The machine side of training: allocator settings and what ``precision_dtype`` becomes on this device."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from dataclasses import dataclass

import torch

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


# --------------------------------------------------------------------------- precision


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: without them bfloat16 autocast is emulated, 15-45x slower than float32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


@dataclass
class Precision:
    description: str
    autocast_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    @property
    def numpy_name(self) -> str:
        return "float16" if self.autocast_dtype is not None else "float32"


def precision_plan(requested: str, device: torch.device, cpu_bf16: bool | None = None) -> Precision:
    """What ``precision_dtype`` becomes on this device; the log states the outcome."""
    if requested != "float16":
        return Precision("float32")
    if device.type == "cuda":
        return Precision("mixed precision: float16 autocast with dynamic loss scaling (CUDA)", torch.float16,
                         torch.amp.GradScaler("cuda"))
    if cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16:
        return Precision("mixed precision: bfloat16 autocast (CPU with native bfloat16)", torch.bfloat16)
    return Precision("float32: precision_dtype=float16 was requested, but this CPU has no native half precision "
                     "(it would run many times slower)")
