"""CloudFormation's stack role: whether the role a stack was created with may do what each resource needs.

A stack created or updated with `RoleARN` is deployed by CloudFormation with that role's credentials
(CloudFormation user guide, "CloudFormation service role"); each resource type's handler makes the
calls its resource provider schema lists (`handlers.create/update/delete.permissions`; cfn-lint ships
the schemas offline). A call the role may not make fails that resource (`CREATE_FAILED` /
`UPDATE_FAILED`) with the handler's message, and the stack rolls back.

What a resource needs is `deployer.iam_check.stack_role_requirements` (the same rules as the static
check: the permissions that apply only when a property is set, e.g. `ec2:*` for `VpcConfig`, `kms:*` for
`KmsKeyArn`, are required only when the resource sets it; `deployer.iam_check.CONDITIONAL_PERMISSIONS`
lists them with the reason). The role's policies are read from the emulator's IAM (moto's backend: the
inline policies and the attached managed ones) and evaluated with `deployer.iam_policy`.

`first_denial(...)` answers the first resource (template order) with a permission the role lacks; the
message is CloudFormation's for a handler denied by IAM (aws/aws-cdk#29474 shows the frame
`Resource handler returned message: "..." (RequestToken: ..., HandlerErrorCode: ...)`; the assumed
role's session is `AWSCloudFormation`, aws/serverless-application-model#154).
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer.iam_check import Requirement, allowed, stack_role_requirements
from deployer.iam_policy import Policy, PolicyError, parse_policy
from harness.service_roles import CLOUDFORMATION_SESSION, assumed_role_arn, denial_message

_SERVICE_NAMES = {  # the "Service:" a handler's SDK error names
    "lambda": "Lambda",
    "s3": "S3",
    "iam": "Iam",
    "apigateway": "ApiGateway",
    "logs": "CloudWatchLogs",
    "ec2": "Ec2",
    "kms": "Kms",
}


@dataclass(frozen=True)
class Denial:
    logical_id: str
    resource_type: str
    requirement: Requirement
    reason: str  # the resource event's ResourceStatusReason


def role_policies(iam_backend: Any, role_arn: str) -> list[Policy] | None:
    """The role's identity-based policies in moto's IAM backend; None when there is no such role."""
    role = next((r for r in list(iam_backend.roles.values()) if r.arn == role_arn), None)
    if role is None:
        return None
    policies = []
    for name, document in list(role.policies.items()):
        policies.append(parse_policy(f"{role.name}/{name}", _document(document)))
    for arn, managed in list(role.managed_policies.items()):
        version = next((v for v in managed.versions if v.is_default_version), None)
        if version is not None:
            policies.append(parse_policy(arn, _document(version.document)))
    return policies


def _document(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    text = str(raw)
    if not text.lstrip().startswith("{"):
        text = urllib.parse.unquote(text)
    loaded = json.loads(text)
    if not isinstance(loaded, Mapping):
        raise PolicyError("a policy document must be a JSON object")
    return loaded


def first_denial(
    template: Mapping[str, Any],
    stack_name: str,
    parameters: Mapping[str, str],
    role_arn: str,
    policies: Sequence[Policy] | None,
    operations: Mapping[str, Sequence[str]] | None = None,
) -> Denial | None:
    """The first resource whose handler permissions the role lacks (None: the stack can be deployed).
    `policies` None (no such role) denies everything, as an unknown role would be."""
    principal = assumed_role_arn(role_arn, CLOUDFORMATION_SESSION)
    kinds = {logical: str(spec.get("Type")) for logical, spec in (template.get("Resources") or {}).items()}
    for logical, requirement in stack_role_requirements(
        template, stack_name, parameters, role_arn, operations
    ):
        if policies is not None and allowed(policies, requirement):
            continue
        resource = requirement.resource or "*"
        service = _SERVICE_NAMES.get(
            requirement.action.partition(":")[0], requirement.action.partition(":")[0]
        )
        message = denial_message(principal, requirement.action, resource)
        reason = (
            f'Resource handler returned message: "{message} (Service: {service}, Status Code: 403, '
            f'Request ID: {uuid.uuid4()})" (RequestToken: {uuid.uuid4()}, HandlerErrorCode: AccessDenied)'
        )
        return Denial(logical, kinds.get(logical, ""), requirement, reason)
    return None
