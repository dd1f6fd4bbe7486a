"""What precision_dtype becomes on each device."""

import torch

from roost.algorithm.runtime import precision_plan


def test_precision_plans():
    cpu = torch.device("cpu")
    assert precision_plan("float32", cpu).autocast_dtype is None
    assert precision_plan("float16", cpu, cpu_bf16=True).autocast_dtype == torch.bfloat16
    plan = precision_plan("float16", cpu, cpu_bf16=False)
    assert plan.autocast_dtype is None and "no native half precision" in plan.description
