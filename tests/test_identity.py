"""STS and IAM as the SDKs ask them, through the same dispatch as the server, answers checked against botocore."""

import json
from urllib.parse import unquote

from helpers import Api
from roost.identity import IamService, StsService


def test_who_you_are_and_the_roles_jobs_name():
    api = Api(StsService(), IamService())
    me = api("GetCallerIdentity", {}, "AWSSecurityTokenServiceV20110615")
    assert me["Account"] == "000000000000" and me["Arn"].startswith("arn:aws:sts::000000000000:assumed-role/")
    role = api("GetRole", {"RoleName": "AmazonSageMaker-ExecutionRole"}, "AWSIdentityManagementV20100508")["Role"]
    assert role["Arn"].endswith(":role/service-role/AmazonSageMaker-ExecutionRole")
    trust = json.loads(unquote(role["AssumeRolePolicyDocument"]))
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    simulated = api(
        "SimulatePrincipalPolicy",
        {"PolicySourceArn": role["Arn"], "ActionNames": ["ecr:GetAuthorizationToken", "ec2:CreateNetworkInterface"]},
        "AWSIdentityManagementV20100508",
    )
    assert [r["EvalDecision"] for r in simulated["EvaluationResults"]] == ["allowed", "allowed"]
