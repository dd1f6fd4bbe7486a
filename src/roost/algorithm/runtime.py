"""What ``precision_dtype`` becomes on this device."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from roost.algorithm.layout import FLOAT32_MATH_ENV, parse_float32_math
from roost.errors import UserError

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


class PrecisionError(UserError):
    """A precision setting that is not one of its values."""


def float32_math(device: torch.device, cpu_bf16: bool | None = None) -> str:
    """Opt-in reduced-precision float32 math (never the default, as TF32 on GPUs): ``bf16`` lets oneDNN compute
    float32 convolutions and matrix products with bfloat16 multiplies (float32 sums) on CPUs with native
    bfloat16. Set oneDNN's float32 math as ``ROOST_FLOAT32_MATH`` asks (``ieee``, the default, or ``bf16``); says what
    it did, for the log."""
    try:
        wanted = parse_float32_math(os.environ.get(FLOAT32_MATH_ENV, "ieee"))
    except ValueError as err:
        raise PrecisionError(str(err)) from None
    if wanted == "ieee" or device.type != "cpu":
        torch.backends.mkldnn.fp32_precision = "ieee"
        return "float32" if wanted == "ieee" else f"float32 ({FLOAT32_MATH_ENV}=bf16 applies to CPUs only)"
    if not (cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16):
        torch.backends.mkldnn.fp32_precision = "ieee"
        return f"float32 ({FLOAT32_MATH_ENV}=bf16 ignored: this CPU has no native bfloat16)"
    torch.backends.mkldnn.fp32_precision = "bf16"
    return f"float32 with bfloat16 math in oneDNN's convolutions and matrix products ({FLOAT32_MATH_ENV}=bf16)"


def precision_plan(requested: str, device: torch.device, cpu_bf16: bool | None = None) -> Precision:
    """What ``precision_dtype`` becomes on this device; the log states the outcome."""
    if requested != "float16":
        return Precision(float32_math(device, cpu_bf16))
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
