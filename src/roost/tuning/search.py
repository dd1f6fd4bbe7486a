"""A tuning job's search, in Optuna's terms: ranges as distributions, strategies as samplers and pruners.

SageMaker's ``ParameterRanges`` become Optuna distributions (:class:`SearchSpace`),
its ``Strategy`` a sampler (:func:`sampler_for`), ``TrainingJobEarlyStoppingType=Auto``
and ``Hyperband`` a pruner (:func:`pruner_for`). Where SageMaker's rule is documented
and Optuna's differs, the rule is SageMaker's (:class:`MedianRunningAveragePruner`);
where SageMaker's is undisclosed the choice is written down in docs/tuning.md.
"""

from __future__ import annotations

import difflib
import itertools
import math
import random
import statistics
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import BasePruner, HyperbandPruner, NopPruner
from optuna.trial import FrozenTrial, TrialState

from roost.algorithm.hyperparameters import HyperparameterError, HyperParameters, parse_hyperparameters
from roost.aws import camel
from roost.tuning.objective import Objective

#: StaticHyperParameters keys SageMaker reads Hyperband's MaxResource from when StrategyConfig leaves it out
EPOCH_KEYS = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
#: Hyperband's largest MaxResource (SageMaker's HyperbandStrategyConfig)
MAX_RESOURCE = 20_000
#: earlier jobs that must have reached an epoch before Auto early stopping judges a job at that epoch
EARLY_STOPPING_STARTUP_JOBS = 3

#: the members of a ParameterRanges, the API path each is at
RANGE_KINDS = ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges")


class RangeError(ValueError):
    """A ParameterRanges entry that cannot be searched; ``field`` is its member path for the console."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Range:
    name: str
    kind: str  # Integer, Continuous or Categorical
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Auto"
    values: tuple[str, ...] = ()

    @property
    def log(self) -> bool:
        """Searched on a log scale: Logarithmic, or Auto where the range spans a decade or more above zero."""
        if self.scaling == "Logarithmic":
            return True
        return self.scaling == "Auto" and self.low > 0 and self.high / self.low >= 10

    def distribution(self) -> BaseDistribution:
        if self.kind == "Categorical":
            return CategoricalDistribution(self.values)
        if self.kind == "Integer":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        if self.scaling == "ReverseLogarithmic":
            # no Optuna equivalent: 1 - x searched on a log scale, so values crowd towards the top (near 1)
            return FloatDistribution(1.0 - self.high, 1.0 - self.low, log=True)
        return FloatDistribution(self.low, self.high, log=self.log)

    @property
    def extremes(self) -> tuple[str, ...]:
        """The values a job can get at the ends of the range (every value of a categorical one), as strings."""
        if self.kind == "Categorical":
            return self.values
        if self.kind == "Integer":
            return (str(int(self.low)), str(int(self.high)))
        return (repr(self.low), repr(self.high))

    def value(self, sampled: Any) -> str:
        """The hyperparameter's string, as the training job gets it."""
        if self.kind == "Categorical":
            return str(sampled)
        if self.kind == "Integer":
            return str(int(sampled))
        x = 1.0 - float(sampled) if self.scaling == "ReverseLogarithmic" else float(sampled)
        return repr(min(max(x, self.low), self.high))

    def sampled(self, value: str) -> Any:
        """The inverse of :meth:`value`: what Optuna holds for a hyperparameter's string (a warm start's)."""
        if self.kind == "Categorical":
            return value
        if self.kind == "Integer":
            return int(float(value))
        x = float(value)
        return 1.0 - x if self.scaling == "ReverseLogarithmic" else x


class SearchSpace:
    """The ranges of a ``ParameterRanges``, checked against the algorithm's hyperparameter schema."""

    def __init__(self, ranges: list[Range]) -> None:
        self.ranges = ranges
        self.by_name = {r.name: r for r in ranges}

    @classmethod
    def parse(cls, parameter_ranges: Mapping[str, Any] | None, static: Mapping[str, str]) -> SearchSpace:
        """Ranges from the request; :class:`RangeError` naming the first one that is wrong and why."""
        ranges: list[Range] = []
        seen: set[str] = set()
        pr = parameter_ranges or {}
        if pr.get("AutoParameters"):
            raise RangeError(
                "AutoParameters (Autotune) is not supported by Roost: give the ranges as Integer, Continuous or "
                "Categorical ParameterRanges",
                "hyperParameterTuningJobConfig.parameterRanges.autoParameters",
            )
        for kind_key in RANGE_KINDS:
            for i, item in enumerate(pr.get(kind_key) or [], 1):
                field = f"hyperParameterTuningJobConfig.parameterRanges.{camel(kind_key)}.{i}"
                name = item["Name"]
                if name in seen:
                    raise RangeError(f"Hyperparameter {name} is given more than one range", field)
                seen.add(name)
                kind = kind_key.removesuffix("ParameterRanges")
                if kind == "Categorical":
                    values = tuple(str(v) for v in item["Values"])
                    if len(set(values)) != len(values):
                        raise RangeError(f"The values of {name} repeat: {list(values)}", field)
                    r = Range(name, kind, values=values)
                else:
                    r = _numeric_range(name, kind, item, field)
                _check_schema(r, static, field)
                ranges.append(r)
        if not ranges:
            raise RangeError(
                "ParameterRanges has no range: give at least one Integer, Continuous or Categorical range",
                "hyperParameterTuningJobConfig.parameterRanges",
            )
        return cls(ranges)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {r.name: r.distribution() for r in self.ranges}

    def hyperparameters(self, params: Mapping[str, Any]) -> dict[str, str]:
        return {name: self.by_name[name].value(v) for name, v in params.items() if name in self.by_name}

    def params(self, hyperparameters: Mapping[str, str]) -> dict[str, Any] | None:
        """Optuna's params for a job's tuned hyperparameters, or None where they do not fit this space."""
        out = {}
        for r in self.ranges:
            if r.name not in hyperparameters:
                return None
            text = hyperparameters[r.name]
            if r.kind == "Categorical":
                if text not in r.values:
                    return None
            else:
                try:
                    if not r.low <= float(text) <= r.high:
                        return None
                except ValueError:
                    return None
            out[r.name] = r.sampled(text)
        return out

    @property
    def grid_size(self) -> int:
        """How many combinations a categorical-only space has, counted without making them (30 ranges of 30
        values are 30**30 points: every cap is checked against this number first)."""
        return math.prod(len(r.values) for r in self.ranges)

    def grid(self, seed: int | None, limit: int) -> list[dict[str, str]]:
        """Every combination of a categorical-only space, in an order shuffled by ``seed``; a space of more than
        ``limit`` combinations is refused before any is made."""
        if self.grid_size > limit:
            raise RangeError(f"The grid has {self.grid_size} combinations; at most {limit} can be searched")
        names = [r.name for r in self.ranges]
        points = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(r.values for r in self.ranges))]
        random.Random(seed).shuffle(points)
        return points

    @property
    def categorical_only(self) -> bool:
        return all(r.kind == "Categorical" for r in self.ranges)


def _numeric_range(name: str, kind: str, item: Mapping[str, Any], field: str) -> Range:
    scaling = item.get("ScalingType") or "Auto"
    cast = int if kind == "Integer" else float
    try:
        low, high = cast(item["MinValue"]), cast(item["MaxValue"])
    except ValueError:
        what = "integers" if kind == "Integer" else "numbers"
        raise RangeError(
            f"The MinValue and MaxValue of {name} must be {what}: got {item['MinValue']!r} and {item['MaxValue']!r}",
            field,
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise RangeError(f"The MinValue of {name} ({low}) must not be larger than its MaxValue ({high})", field)
    if scaling == "Logarithmic" and low <= 0:
        raise RangeError(f"Logarithmic scaling of {name} needs MinValue > 0 (got {low})", field)
    if scaling == "ReverseLogarithmic":
        if kind == "Integer":
            raise RangeError(f"ReverseLogarithmic scaling is for continuous ranges only; {name} is an integer range")
        if not (0 <= low < high < 1):
            raise RangeError(
                f"ReverseLogarithmic scaling of {name} needs 0 <= MinValue < MaxValue < 1 (got {low} and {high})",
                field,
            )
    return Range(name, kind, low, high, scaling)


def _is_integer_field(name: str) -> bool:
    annotation = HyperParameters.model_fields[name].annotation
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
    return base is int or (typing.get_origin(base) is typing.Union and int in typing.get_args(base))


def _check_schema(r: Range, static: Mapping[str, str], field: str) -> None:
    """A range must lie inside what its hyperparameter accepts: every end (or value) is tried with the static
    hyperparameters, so a job it launches is never refused for a value the range allowed."""
    if r.name.startswith(("sagemaker_", "_tuning")):
        raise RangeError(f"{r.name} is set by SageMaker's tools and cannot be tuned", field)
    if r.name not in HyperParameters.model_fields:
        close = difflib.get_close_matches(r.name, HyperParameters.model_fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise RangeError(f"Cannot tune {r.name}: the algorithm has no hyperparameter of that name{hint}", field)
    if r.kind == "Continuous" and _is_integer_field(r.name):
        raise RangeError(
            f"{r.name} takes integers: give it an IntegerParameterRanges entry, not a continuous range", field
        )
    for value in r.extremes:
        try:
            parse_hyperparameters({**static, r.name: value})
        except HyperparameterError as err:
            own = err.fields.get(r.name)
            if own:  # problems of other hyperparameters are the static ones', reported when the job is checked
                message = f"The range of {r.name} allows {value!r}, which it does not accept: {own[0]}"
                raise RangeError(message, field) from None


# --------------------------------------------------------------------------- strategies


def sampler_for(strategy: str, seed: int | None, max_jobs: int) -> optuna.samplers.BaseSampler:
    """The sampler of a strategy. Grid's points are enqueued by the tuner (see :meth:`SearchSpace.grid`), so its
    sampler never samples."""
    if strategy in ("Bayesian", "Hyperband"):
        # constant_liar: trials still running count as (pessimistic) results, so parallel asks spread out
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            constant_liar=True,
            n_startup_trials=max(3, min(10, max_jobs // 3)),
        )
    return optuna.samplers.RandomSampler(seed=seed)


def pruner_for(strategy: str, early_stopping: str, min_resource: int, max_resource: int) -> BasePruner:
    if strategy == "Hyperband":
        return HyperbandPruner(min_resource=min_resource, max_resource=max_resource, reduction_factor=3)
    if early_stopping == "Auto":
        return MedianRunningAveragePruner()
    return NopPruner()


def hyperband_resources(strategy_config: Mapping[str, Any] | None, static: Mapping[str, str]) -> tuple[int, int]:
    """``(MinResource, MaxResource)`` in epochs; MaxResource from the static epochs where the config has none."""
    cfg = (strategy_config or {}).get("HyperbandStrategyConfig") or {}
    high = cfg.get("MaxResource")
    if high is None:
        key = next((k for k in EPOCH_KEYS if k in static), None)
        if key is None:
            raise RangeError(
                "Hyperband needs a MaxResource: give StrategyConfig.HyperbandStrategyConfig.MaxResource or an "
                "'epochs' static hyperparameter",
                "hyperParameterTuningJobConfig.strategyConfig",
            )
        try:
            high = int(static[key])
        except ValueError:
            raise RangeError(f"The static hyperparameter {key}={static[key]!r} is not a number of epochs") from None
    low = cfg.get("MinResource") or 1
    if not (1 <= low <= high <= MAX_RESOURCE):
        raise RangeError(
            f"Hyperband needs 1 <= MinResource ({low}) <= MaxResource ({high}) <= {MAX_RESOURCE}",
            "hyperParameterTuningJobConfig.strategyConfig",
        )
    return low, high


class MedianRunningAveragePruner(BasePruner):
    """SageMaker's ``TrainingJobEarlyStoppingType=Auto``: after each epoch, a job whose objective is worse than the
    median of the other jobs' running averages of the objective up to that epoch is stopped.

    Optuna's ``MedianPruner`` differs twice: it compares the trial's best value so far (SageMaker: the current
    one) with the median of the others' values at that step (SageMaker: of their running averages).
    """

    def __init__(self, startup_jobs: int = EARLY_STOPPING_STARTUP_JOBS) -> None:
        self.startup_jobs = startup_jobs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        current = trial.intermediate_values[step]
        averages = []
        for other in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        ):
            if other.number == trial.number:
                continue
            upto = [v for s, v in other.intermediate_values.items() if s <= step]
            if other.intermediate_values and max(other.intermediate_values) >= step and upto:
                averages.append(sum(upto) / len(upto))
        if len(averages) < self.startup_jobs:
            return False
        median = statistics.median(averages)
        objective = Objective("", maximize=study.direction == optuna.study.StudyDirection.MAXIMIZE)
        return objective.better(median, than=current)
