"""roost.aws: AWS's error shape and wording, ARNs, names, and operations dispatched by registration."""

import pytest

from roost.aws import Account, Service, ServiceError, operation, validation_errors
from roost.aws.dispatch import dispatch_table


class Things(Service):
    @operation("CreateThing")
    def create(self, req: dict) -> dict:
        return {"created": req["Name"]}

    @operation("DescribeThing")
    def describe(self, req: dict) -> dict:
        return {}

    def helper(self) -> None:  # not an operation
        pass


class Logs(Service):
    target_prefix = "Logs_20140328"

    @operation("GetLogEvents")
    def get(self, req: dict) -> dict:
        return {"events": []}


def test_operations_are_dispatched_by_target():
    table = dispatch_table(Things(), Logs())
    assert sorted(table) == ["Logs_20140328.GetLogEvents", "SageMaker.CreateThing", "SageMaker.DescribeThing"]
    assert table["SageMaker.CreateThing"]({"Name": "x"}) == {"created": "x"}


def test_an_operation_registered_twice_is_refused():
    with pytest.raises(RuntimeError, match="SageMaker.CreateThing is registered twice"):
        dispatch_table(Things(), Things())


def test_errors_names_and_arns():
    err = ServiceError("ModelError", "bad", 424, OriginalStatusCode=415)
    assert err.body() == {"__type": "ModelError", "message": "bad", "OriginalStatusCode": 415}
    err = validation_errors([("x", "a"), ("y.z", "b"), ("x", "c")])
    assert err.message == "3 validation errors detected: a; b; c"
    assert err.fields == {"x": "a; c", "y.z": "b"} and "fields" not in err.body()
    assert Account("eu-west-1", "123456789012").arn("endpoint", "Birds") == (
        "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/birds"
    )
