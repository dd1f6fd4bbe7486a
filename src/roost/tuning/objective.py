"""What a tuning job optimises, and every comparison of objective values: one rule for the service, the tuner,
the search and the console."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: a relative improvement of the best objective below this is "not improving" (SageMaker: 1 %)
IMPROVEMENT = 0.01


@dataclass(frozen=True)
class Objective:
    """A metric, maximised or minimised, and the target value that completes a tuning job when one reaches it."""

    metric: str
    maximize: bool = True
    target: float | None = None

    @classmethod
    def of(cls, request: Mapping[str, Any]) -> Objective:
        """The objective of a CreateHyperParameterTuningJob request, or of a DescribeHyperParameterTuningJob answer:
        ``HyperParameterTuningJobObjective``, else the training definition's ``TuningObjective``."""
        config = request.get("HyperParameterTuningJobConfig") or {}
        definitions = request.get("TrainingJobDefinitions") or [request.get("TrainingJobDefinition") or {}]
        given = config.get("HyperParameterTuningJobObjective") or (definitions[0] or {}).get("TuningObjective") or {}
        criteria = config.get("TuningJobCompletionCriteria") or {}
        return cls(
            given.get("MetricName", ""),
            given.get("Type", "Maximize") == "Maximize",
            criteria.get("TargetObjectiveMetricValue"),
        )

    @property
    def type(self) -> str:
        return "Maximize" if self.maximize else "Minimize"

    def better(self, value: float, than: float | None) -> bool:
        """Whether ``value`` beats ``than`` (anything beats nothing)."""
        return than is None or (value > than if self.maximize else value < than)

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` by more than :data:`IMPROVEMENT` of it (BestObjectiveNotImproving)."""
        if best is None:
            return True
        margin = IMPROVEMENT * max(abs(best), 1e-12)
        return value > best + margin if self.maximize else value < best - margin

    def best_of(self, items: Iterable[T], value: Callable[[T], float | None]) -> T | None:
        """The item whose value is best, among those that have one."""
        best: T | None = None
        best_value: float | None = None
        for item in items:
            v = value(item)
            if v is not None and self.better(v, best_value):
                best, best_value = item, v
        return best

    def reached(self, value: float) -> bool:
        """Whether ``value`` meets the target (TargetObjectiveMetricValue)."""
        return self.target is not None and (value >= self.target if self.maximize else value <= self.target)
