"""Ranges as Optuna distributions, the strategies' samplers and pruners, and SageMaker's early-stopping rule."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from roost.tuning.search import MedianRunningAveragePruner, Range, RangeError, SearchSpace, hyperband_resources

STATIC = {"num_classes": "10", "num_training_samples": "1000"}


def space(**ranges) -> SearchSpace:
    return SearchSpace.parse(ranges, STATIC)


def test_scaling_types_become_distributions():
    s = space(
        ContinuousParameterRanges=[
            {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.5", "ScalingType": "Auto"},
            {"Name": "weight_decay", "MinValue": "0", "MaxValue": "0.1", "ScalingType": "Auto"},
            {"Name": "beta_1", "MinValue": "0.01", "MaxValue": "0.05", "ScalingType": "Logarithmic"},
            {"Name": "momentum", "MinValue": "0.5", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"},
        ],
        IntegerParameterRanges=[
            {"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "512", "ScalingType": "Linear"}
        ],
        CategoricalParameterRanges=[{"Name": "optimizer", "Values": ["sgd", "adam"]}],
    )
    d = s.distributions()
    assert d["learning_rate"] == FloatDistribution(0.0001, 0.5, log=True)  # Auto: a span of decades above 0
    assert d["weight_decay"] == FloatDistribution(0.0, 0.1, log=False)  # Auto: from 0, linear
    assert d["beta_1"].log and d["mini_batch_size"] == IntDistribution(8, 512, log=False)
    assert d["optimizer"] == CategoricalDistribution(("sgd", "adam"))
    # ReverseLogarithmic: 1 - x on a log scale, values crowd towards 1
    assert d["momentum"] == FloatDistribution(1 - 0.999, 0.5, log=True)
    assert float(s.hyperparameters({"momentum": 0.001})["momentum"]) == pytest.approx(0.999)
    sampler = optuna.samplers.RandomSampler(seed=0)
    draws = [sampler.sample_independent(None, None, "momentum", d["momentum"]) for _ in range(2000)]
    values = [1 - u for u in draws]
    assert all(0.5 <= v <= 0.999 for v in values)
    assert sum(v > 0.95 for v in values) > sum(v < 0.75 for v in values)
    assert s.hyperparameters({"mini_batch_size": 17, "optimizer": "adam"}) == {
        "mini_batch_size": "17",
        "optimizer": "adam",
    }
    assert s.params(
        {
            "learning_rate": "0.01",
            "weight_decay": "0",
            "beta_1": "0.02",
            "momentum": "0.9",
            "mini_batch_size": "32",
            "optimizer": "sgd",
        }
    )["momentum"] == pytest.approx(0.1)
    assert s.params({"learning_rate": "0.9"}) is None  # outside this space: not a warm-start point


@pytest.mark.parametrize(
    ("ranges", "words"),
    [
        (
            {"ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "0.1", "MaxValue": "1.5"}]},
            "allows '1.5'",
        ),
        ({"ContinuousParameterRanges": [{"Name": "num_layers", "MinValue": "18", "MaxValue": "50"}]}, "takes integers"),
        ({"CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adagrad"]}]}, "allows 'adagrad'"),
        ({"CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "sgd"]}]}, "repeat"),
        ({"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1.5", "MaxValue": "3"}]}, "must be integers"),
        (
            {"IntegerParameterRanges": [{"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "9000"}]},
            "allows '9000'",
        ),
        (
            {
                "ContinuousParameterRanges": [
                    {"Name": "momentum", "MinValue": "0.5", "MaxValue": "1", "ScalingType": "ReverseLogarithmic"}
                ]
            },
            "MaxValue < 1",
        ),
        (
            {"ContinuousParameterRanges": [{"Name": "_tuning_objective_metric", "MinValue": "0", "MaxValue": "1"}]},
            "set by SageMaker's tools",
        ),
        ({"AutoParameters": [{"Name": "learning_rate", "ValueHint": "0.1"}]}, "not supported"),
    ],
)
def test_ranges_outside_the_schema_are_refused(ranges, words):
    with pytest.raises(RangeError, match=words):
        SearchSpace.parse(ranges, STATIC)


def test_the_grid_is_every_combination_shuffled_by_the_seed():
    s = space(
        CategoricalParameterRanges=[
            {"Name": "optimizer", "Values": ["sgd", "adam", "nag"]},
            {"Name": "learning_rate", "Values": ["0.1", "0.01"]},
        ]
    )
    a, b = s.grid(1, 750), s.grid(1, 750)
    assert a == b and len(a) == 6 and len({tuple(p.items()) for p in a}) == 6
    assert any(s.grid(seed, 750) != a for seed in range(2, 10))


def test_hyperband_takes_max_resource_from_the_config_or_the_epochs():
    assert hyperband_resources({"HyperbandStrategyConfig": {"MinResource": 2, "MaxResource": 27}}, {}) == (2, 27)
    assert hyperband_resources(None, {"epochs": "9"}) == (1, 9)
    assert hyperband_resources(None, {"num_epochs": "4"}) == (1, 4)
    with pytest.raises(RangeError, match="needs a MaxResource"):
        hyperband_resources(None, {})
    with pytest.raises(RangeError, match="MinResource"):
        hyperband_resources({"HyperbandStrategyConfig": {"MinResource": 10, "MaxResource": 3}}, {})


def _study(curves: list[list[float]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    d = {"x": FloatDistribution(0, 1)}
    for values in curves:
        study.add_trial(
            create_trial(
                params={"x": 0.5},
                distributions=d,
                value=values[-1],
                intermediate_values=dict(enumerate(values, 1)),
                state=TrialState.COMPLETE,
            )
        )
    return study


def test_early_stopping_compares_the_current_value_with_the_median_of_running_averages():
    # three earlier jobs; their running averages at epoch 3: 0.6, 0.5 and 0.4 -> median 0.5
    study = _study([[0.4, 0.6, 0.8], [0.3, 0.5, 0.7], [0.2, 0.4, 0.6]])
    pruner = MedianRunningAveragePruner()

    def judged(values: list[float]) -> bool:
        trial = create_trial(
            state=TrialState.RUNNING, intermediate_values=dict(enumerate(values, 1)), params={}, distributions={}
        )
        trial.number = 99
        return pruner.prune(study, trial)

    assert judged([0.1, 0.2, 0.49])  # worse than 0.5: stopped
    assert not judged([0.1, 0.2, 0.51])  # Optuna's MedianPruner would compare 0.51 with the median value 0.7
    # SageMaker compares the current value, not the best so far
    assert judged([0.9, 0.9, 0.3])
    # fewer than three jobs reached epoch 4: no judgement yet
    assert not judged([0.1, 0.1, 0.6, 0.0])


def test_auto_scaling_rule():
    assert Range("a", "Continuous", 0.001, 0.1).log
    assert not Range("a", "Continuous", 0.01, 0.05).log
    assert not Range("a", "Continuous", 0.0, 1.0).log
    assert not Range("a", "Integer", 1, 512, "Linear").log
