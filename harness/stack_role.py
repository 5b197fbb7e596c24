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
inline policies and the attached managed ones, `harness.iam.principals.role_policies`) and evaluated
with `deployer.iam_policy`.

`first_denial(...)` answers the first resource (template order) with a permission the role lacks; the
message is CloudFormation's for a handler denied by IAM (aws/aws-cdk#29474 shows the frame
`Resource handler returned message: "..." (RequestToken: ..., HandlerErrorCode: ...)`; the assumed
role's session is `AWSCloudFormation`, aws/serverless-application-model#154).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deployer.iam_check import Requirement, allowed, stack_role_requirements
from deployer.iam_policy import Policy
from harness.iam import enforcement
from harness.service_roles import CLOUDFORMATION_SESSION, assumed_role_arn

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
    denial: enforcement.Denial  # IAM's denial (principal, action, resource, message)
    reason: str  # the resource event's ResourceStatusReason


def first_denial(
    template: Mapping[str, Any],
    stack_name: str,
    parameters: Mapping[str, str],
    role_arn: str,
    policies: Sequence[Policy],
    operations: Mapping[str, Sequence[str]] | None = None,
) -> Denial | None:
    """The first resource whose handler permissions the role lacks (None: the stack can be deployed)."""
    principal = assumed_role_arn(role_arn, CLOUDFORMATION_SESSION)
    kinds = {logical: str(spec.get("Type")) for logical, spec in (template.get("Resources") or {}).items()}
    needed = stack_role_requirements(template, stack_name, parameters, role_arn, operations)
    for logical, requirement in needed:
        if allowed(policies, requirement):
            continue
        # A permission the template names no resource for (e.g. apigateway:POST of a new API): "*".
        resource = requirement.resource or "*"
        denied = enforcement.Denial(principal, requirement.action, resource, "implicit-deny")
        prefix = requirement.action.partition(":")[0]
        service = _SERVICE_NAMES.get(prefix, prefix)
        reason = (
            f'Resource handler returned message: "{denied.message} (Service: {service}, Status Code: 403, '
            f'Request ID: {uuid.uuid4()})" (RequestToken: {uuid.uuid4()}, HandlerErrorCode: AccessDenied)'
        )
        return Denial(logical, kinds.get(logical, ""), requirement, denied, reason)
    return None
