"""One rule for which objective value is better, the best, an improvement, the target reached."""

from roost.tuning.objective import Objective


def test_maximise_and_minimise():
    up, down = Objective("validation:accuracy"), Objective("loss", maximize=False, target=0.1)
    assert up.better(0.9, 0.8) and not up.better(0.8, 0.8) and up.better(0.1, None)
    assert down.better(0.2, 0.3) and not down.better(0.3, 0.2)
    assert up.best_of([("a", 0.5), ("b", None), ("c", 0.7), ("d", 0.7)], lambda x: x[1]) == ("c", 0.7)
    assert down.best_of([("a", 0.5), ("c", 0.7)], lambda x: x[1]) == ("a", 0.5)
    assert up.best_of([], lambda x: x) is None
    assert up.improves(0.5, None) and up.improves(0.506, 0.5) and not up.improves(0.504, 0.5)
    assert down.improves(0.49, 0.5) and not down.improves(0.496, 0.5)
    assert down.reached(0.1) and not down.reached(0.11) and not up.reached(1.0)  # no target: never reached
    assert up.type == "Maximize" and down.type == "Minimize"


def test_read_from_a_request_or_a_description():
    config = {
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:loss"},
        "TuningJobCompletionCriteria": {"TargetObjectiveMetricValue": 0.2},
    }
    assert Objective.of({"HyperParameterTuningJobConfig": config}) == Objective("validation:loss", False, 0.2)
    defined = {
        "HyperParameterTuningJobConfig": {},
        "TrainingJobDefinitions": [{"TuningObjective": config["HyperParameterTuningJobObjective"]}],
    }
    assert Objective.of(defined) == Objective("validation:loss", False)
    assert Objective.of({}) == Objective("", True)
