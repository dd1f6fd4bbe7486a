"""The operations table of docs/compatibility.md is generated, complete, and true of a running server."""

import pytest
from botocore.exceptions import ClientError

from helpers import Server, generated_section
from roost.api.compatibility import WORKFLOW, operations_table, served
from roost.aws.shapes import service_model


def rows(table: str) -> list[tuple[str, str, str, str]]:
    """(service, operation, status, notes) of each row; the summaries come from botocore's model and may be
    reworded by a newer botocore without the table becoming false."""
    out = []
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        out.append((cells[0], cells[1].strip("`"), cells[2], cells[-1]))
    return out


def test_the_table_is_generated():
    assert rows(generated_section("compatibility.md", "operations")) == rows(operations_table()), (
        "run scripts/generate-docs.py"
    )


def test_every_operation_served_is_in_the_table_and_in_botocores_models():
    for service, (_, operations) in WORKFLOW.items():
        known = set(service_model(service).operation_names)
        assert set(operations) <= known, set(operations) - known
        assert served().get(service, set()) <= set(operations), service


# the least each operation needs on the wire; everything else is left out on purpose (parameter validation off)
WIRE = {
    "InvokeEndpoint": {"EndpointName": "nowhere", "Body": b"x"},
    "InvokeEndpointAsync": {"EndpointName": "nowhere", "InputLocation": "s3://b/k"},
    "InvokeEndpointWithResponseStream": {"EndpointName": "nowhere", "Body": b"x"},
    # S3: a bucket (and key) on every operation that names one
    **{
        op: {
            k: v
            for k, v in {
                "Bucket": "nowhere",
                "Key": "k",
                "UploadId": "u",
                "PartNumber": 1,
                "CopySource": "nowhere/k",
            }.items()
            if k in service_model("s3").operation_model(op).input_shape.members
        }
        for op in WORKFLOW["s3"][1]
        if op != "ListBuckets"
    },
    "CreateBucket": {"Bucket": "nowhere"},
    "HeadBucket": {"Bucket": "nowhere"},
    "DeleteBucket": {"Bucket": "nowhere"},
    "GetBucketLocation": {"Bucket": "nowhere"},
    "ListObjectsV2": {"Bucket": "nowhere"},
    "ListObjects": {"Bucket": "nowhere"},
    "ListMultipartUploads": {"Bucket": "nowhere"},
    "DeleteObjects": {"Bucket": "nowhere", "Delete": {"Objects": [{"Key": "k"}]}},
    "PutBucketVersioning": {"Bucket": "nowhere", "VersioningConfiguration": {"Status": "Enabled"}},
    "GetBucketVersioning": {"Bucket": "nowhere"},
    "PutBucketPolicy": {"Bucket": "nowhere", "Policy": "{}"},
    "PutBucketLifecycleConfiguration": {"Bucket": "nowhere"},
    "GetRole": {"RoleName": "r"},
    "SimulatePrincipalPolicy": {"PolicySourceArn": "arn:aws:iam::000000000000:role/r", "ActionNames": ["s3:GetObject"]},
}
#: what a server answers for an operation it does not serve, by protocol
NOT_SERVED = ("UnknownOperationException", "InvalidAction", "NotImplemented")


@pytest.mark.slow
def test_the_table_is_true_of_a_running_server(tmp_path):
    from botocore import xform_name

    srv = Server(tmp_path / "data").start()
    try:
        answered = {}
        for service, (_, operations) in WORKFLOW.items():
            client = srv.client(service, parameter_validation=False, inject_host_prefix=False)
            for op in operations:
                try:
                    getattr(client, xform_name(op))(**WIRE.get(op, {}))
                    answered[op] = "supported"
                except ClientError as err:
                    code = err.response["Error"]["Code"]
                    answered[op] = "not served" if code in NOT_SERVED else "supported"
        table = {op: status for _, op, status, _ in rows(generated_section("compatibility.md", "operations"))}
        assert answered == table
    finally:
        srv.stop()
