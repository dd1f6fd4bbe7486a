"""What precision_dtype becomes on each device."""

import torch

from roost.algorithm.runtime import precision_plan


def test_precision_plans():
    cpu = torch.device("cpu")
    assert precision_plan("float32", cpu).autocast_dtype is None
    assert precision_plan("float16", cpu, cpu_bf16=True).autocast_dtype == torch.bfloat16
    plan = precision_plan("float16", cpu, cpu_bf16=False)
    assert plan.autocast_dtype is None and "no native half precision" in plan.description


def test_bfloat16_math_for_float32_is_opt_in_and_only_where_the_cpu_has_it(monkeypatch):
    import pytest

    from roost.algorithm.runtime import FLOAT32_MATH_ENV, PrecisionError

    cpu = torch.device("cpu")
    monkeypatch.delenv(FLOAT32_MATH_ENV, raising=False)
    assert precision_plan("float32", cpu, cpu_bf16=True).description == "float32"
    assert torch.backends.mkldnn.fp32_precision == "ieee"  # off by default, even where the CPU could
    try:
        monkeypatch.setenv(FLOAT32_MATH_ENV, "bf16")
        plan = precision_plan("float32", cpu, cpu_bf16=True)
        assert plan.autocast_dtype is None and "bfloat16 math in oneDNN" in plan.description
        assert torch.backends.mkldnn.fp32_precision == "bf16"
        assert "ignored: this CPU has no native bfloat16" in precision_plan("float32", cpu, cpu_bf16=False).description
        assert torch.backends.mkldnn.fp32_precision == "ieee"
        monkeypatch.setenv(FLOAT32_MATH_ENV, "fast")
        with pytest.raises(PrecisionError, match="ROOST_FLOAT32_MATH='fast': give one of ieee, bf16"):
            precision_plan("float32", cpu)
    finally:
        torch.backends.mkldnn.fp32_precision = "ieee"
