"""Who you are, as STS and IAM answer it, so the tools that ask work against Roost alone.

``GetCallerIdentity`` answers the account Roost's ARNs carry, the caller as an assumed role (what SDK v2's
``get_execution_role`` turns into a role ARN, and SDK v3's role resolver asks about). ``GetRole`` answers any
role a job names, trusting SageMaker to assume it, and ``SimulatePrincipalPolicy`` allows every action: Roost
keeps no IAM policies (its one key pair is the whole of its access control, docs/security.md), so nothing is
denied here that Roost would enforce elsewhere. SDK v3's role check then passes without
``SAGEMAKER_VALIDATE_ROLE=false``.
"""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import quote

from roost.aws import Account, Service, operation

#: the role a caller of this server is, as STS names it
ROLE_NAME = "RoostExecutionRole"
SESSION_NAME = "roost"
#: when the roles Roost answers for were "created" (a fixed moment: GetRole answers the same each time)
CREATED = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, 0))


def _id(prefix: str, text: str) -> str:
    return prefix + hashlib.sha1(text.encode()).hexdigest()[:17].upper()


class StsService(Service):
    target_prefix = "AWSSecurityTokenServiceV20110615"
    model_name = "sts"

    def __init__(self, account: Account | None = None) -> None:
        self.account = account or Account()

    @operation("GetCallerIdentity")
    def get_caller_identity(self, req: dict) -> dict:
        acct = self.account.account_id
        return {
            "UserId": f"{_id('AROA', ROLE_NAME)}:{SESSION_NAME}",
            "Account": acct,
            "Arn": f"arn:aws:sts::{acct}:assumed-role/{ROLE_NAME}/{SESSION_NAME}",
        }


class IamService(Service):
    target_prefix = "AWSIdentityManagementV20100508"
    model_name = "iam"

    def __init__(self, account: Account | None = None) -> None:
        self.account = account or Account()

    @operation("GetRole")
    def get_role(self, req: dict) -> dict:
        name = req["RoleName"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        return {
            "Role": {
                "Path": "/service-role/",
                "RoleName": name,
                "RoleId": _id("AROA", name),
                "Arn": f"arn:aws:iam::{self.account.account_id}:role/service-role/{name}",
                "CreateDate": CREATED,
                "AssumeRolePolicyDocument": quote(json.dumps(trust)),
                "MaxSessionDuration": 3600,
            }
        }

    @operation("SimulatePrincipalPolicy")
    def simulate_principal_policy(self, req: dict) -> dict:
        resources = req.get("ResourceArns") or ["*"]
        return {
            "EvaluationResults": [
                {"EvalActionName": action, "EvalResourceName": resource, "EvalDecision": "allowed"}
                for action in req.get("ActionNames") or []
                for resource in resources
            ],
            "IsTruncated": False,
        }
