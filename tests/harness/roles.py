"""Roles for the seams' tests: one that a service can assume (its trust policy names the service) and
that may do everything, so that a test of another seam is not a test of IAM (tests/iam/ are those)."""

from __future__ import annotations

import json
from typing import Any

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def service_role(emulator: Any, name: str, service: str = "lambda.amazonaws.com") -> dict[str, Any]:
    """Creates the role (trusting `service`, allowed everything) and returns CreateRole's answer."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    iam = emulator.client("iam")
    role: dict[str, Any] = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=name, PolicyName="allow-all", PolicyDocument=json.dumps(ALLOW_ALL))
    return role
