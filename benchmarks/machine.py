"""The machine a benchmark ran on, named the same way by every script: figures compare only within one CPU."""

from __future__ import annotations

import os


def cpu() -> str:
    """Model name, vCPUs and the widest bfloat16 unit (AMX, AVX-512 bf16, or neither)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info = f.read()
    except OSError:
        return f"unknown CPU ({os.cpu_count()} vCPUs)"
    lines = info.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = set(next((line for line in lines if line.startswith("flags")), "").split())
    kind = "AMX" if "amx_bf16" in flags else "AVX-512 bf16" if "avx512_bf16" in flags else "no bf16 unit"
    return f"{name} ({os.cpu_count()} vCPUs, {kind})"
