"""What ``precision_dtype`` becomes on this device."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

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
        return Precision(
            "mixed precision: float16 autocast with dynamic loss scaling (CUDA)",
            torch.float16,
            torch.amp.GradScaler("cuda"),
        )
    if cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16:
        return Precision("mixed precision: bfloat16 autocast (CPU with native bfloat16)", torch.bfloat16)
    return Precision(
        "float32: precision_dtype=float16 was requested, but this CPU has no native half precision "
        "(it would run many times slower)"
    )
