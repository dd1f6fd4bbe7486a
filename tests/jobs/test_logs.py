"""Job logs as CloudWatch Logs: the filter-pattern rules."""

from roost.jobs.logs import matches


def test_filter_patterns():
    assert matches("Epoch[3] Validation-accuracy=0.5", '"Validation-accuracy"')
    assert matches("a b c", "a c") and not matches("a b", "a c")
    assert not matches("Epoch[1] Train-accuracy", "Epoch -Train")
