"""The deployed platform's roles for the per-principal tests: find one, take one permission out of it.

Each per-principal test deploys the platform's roles as the template has them (the `platform` fixture),
then replaces a role's inline policy with a copy that lacks one action for the duration of a block (the
template's policy with one permission removed, as the deployed role holds it), and restores it after.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from harness.emulator import EmbeddedEmulator

ACCOUNT = "123456789012"


def policy_document(raw: Any) -> dict[str, Any]:
    """GetRolePolicy's document. moto 5.2.5 answers a policy CloudFormation made with Python's repr of
    it (not JSON): read that too."""
    if isinstance(raw, dict):
        return raw
    try:
        return dict(json.loads(raw))
    except ValueError:
        return dict(ast.literal_eval(raw))


def deployed_role(emulator: EmbeddedEmulator, logical_id: str, prefix: str = "dtest") -> str:
    """The ARN of the platform's role `logical_id` (its physical name carries the logical id)."""
    roles = emulator.client("iam").list_roles()["Roles"]
    [arn] = [r["Arn"] for r in roles if logical_id in r["RoleName"] and r["RoleName"].startswith(prefix)]
    return str(arn)


@contextmanager
def role_without(emulator: EmbeddedEmulator, role_arn: str, action: str) -> Iterator[str]:
    """The deployed role's inline policy without `action` while the block runs; yields the role's name."""
    iam = emulator.client("iam")
    name = role_arn.rsplit("/", 1)[-1]
    [policy_name] = iam.list_role_policies(RoleName=name)["PolicyNames"]
    deployed = policy_document(iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"])
    statements = []
    removed = False
    for statement in deployed["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions:
            removed = True
            kept = [a for a in actions if a != action]
            if not kept:
                continue
            statement = {**statement, "Action": kept}
        statements.append(statement)
    assert removed, f"the deployed {name} does not grant {action}"
    thinner = {**deployed, "Statement": statements}
    iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(thinner))
    try:
        yield name
    finally:
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(deployed))


def denied(principal: str, action: str, resource: str) -> str:
    """IAM's message for an implicit deny of `principal` (an assumed-role ARN)."""
    return (
        f"User: {principal} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )
