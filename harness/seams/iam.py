"""IAM enforced at moto's boundary: every request is authorized for the principal that signed it.

What this builds on, and why: moto's own access control (`moto/iam/access_control.py`, switched on by
`INITIAL_NO_AUTH_ACTION_COUNT`) checks IAM users and assumed roles, but evaluates only the Action element
(resource "*", no Condition, so a policy scoped to one endpoint allows every endpoint), is global to the
process (a counter of requests, not a per-emulator switch), knows S3 and EC2 messages only and shapes
every other error as IAM's XML, which JSON-protocol clients cannot read. So the harness wraps moto's
dispatch instead, in two places:
- `BaseResponse.call_action` (every service but S3): the request's signer is resolved
  (harness.iam.principals), the call mapped to its IAM action, resource ARNs and condition keys
  (harness.iam.actions), evaluated (harness.iam.enforcement) and, when denied, answered with
  the protocol's error document (harness/iam/errors.py, written by harness/aws_errors.py: JSON
  `{"__type": "AccessDeniedException", "message": ...}`,
  query-protocol `<ErrorResponse><Error><Code>AccessDenied</Code>...`, rest-json with
  `x-amzn-ErrorType`). moto's own `self.serialized(ActionResult(exc))` was tried first: it warns (an
  error under pytest's `-W error`) for a code missing from the service's model, as AccessDeniedException
  is from SageMaker's, and gives every error of a model-less code HTTP 400;
- `S3Response._authenticate_and_authorize_s3_action`, which S3's own dispatch calls for every bucket
  and object request once it has named the action: a denial raises `S3Refusal`, an HTTP exception that
  S3's dispatch does not catch and Flask answers with S3's 403 XML error document.
The admin key passes; unsigned requests pass too (only the harness's own HTTP calls are unsigned; AWS
would refuse them, but none reaches AWS). Enforcement reads the running emulator's context
(`context.iam.enabled`), so `--no-iam` or a scenario setting turns it off for one stack only.

Error codes (each service's API reference, "Common Errors"): a denial is `AccessDeniedException` (HTTP
400 for the JSON-protocol services, 403 for rest-json ones such as Lambda and API Gateway) or
`AccessDenied` (HTTP 403, query protocol: STS, IAM, CloudFormation; and S3); an unknown access key
`UnrecognizedClientException` (JSON protocols) or `InvalidClientTokenId` (query) with "The security
token included in the request is invalid.", S3's `InvalidAccessKeyId`; a temporary key without its
token the same, S3's `InvalidToken`.

`sts:AssumeRole` through the API also checks the role's trust policy names the caller (its ARN or its
account), as STS does.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Final

from moto.core.responses import BaseResponse

from harness.aws_errors import request_protocol
from harness.context import HarnessContext, current
from harness.iam.actions import Call, parameters_from_json, requests_for
from harness.iam.credentials import find_role, trusts
from harness.iam.enforcement import Denial
from harness.iam.errors import Reply, S3Refusal, refusal
from harness.iam.managed_rules import managed_rules, may_create_managed_rules, refusal_message
from harness.iam.principals import (
    InvalidSessionToken,
    Principal,
    UnknownAccessKey,
    access_key_of,
    resolve,
    role_policies,
    session_token_of,
)

INVALID_TOKEN_MESSAGE: Final = "The security token included in the request is invalid."
S3_UNKNOWN_KEY_MESSAGE: Final = "The AWS Access Key Id you provided does not exist in our records."
S3_INVALID_TOKEN_MESSAGE: Final = "The provided token is malformed or otherwise invalid."

_installed = False


def _protocol(response: BaseResponse) -> str:
    return request_protocol(response.boto3_service_name, response.headers.get("Content-Type"))


def _error(response: BaseResponse, protocol: str, code: str, message: str) -> Reply:
    return refusal(response.boto3_service_name, protocol, code, message)


def _parameters(response: BaseResponse, protocol: str) -> dict[str, Any]:
    if protocol in ("query", "ec2"):
        return {str(k): v[0] for k, v in response.querystring.items() if isinstance(v, list) and v}
    params = parameters_from_json(response.body)
    if protocol != "json":
        params.update(getattr(response, "uri_match", None) or {})
    return params


def _principal_or_error(response: BaseResponse, protocol: str) -> tuple[Principal | None, Any]:
    key = access_key_of(response.headers, response.querystring)
    if key is None:
        return None, None
    try:
        return resolve(
            key, session_token_of(response.headers, response.querystring), response.current_account
        ), None
    except (UnknownAccessKey, InvalidSessionToken):
        code = "InvalidClientTokenId" if protocol in ("query", "ec2") else "UnrecognizedClientException"
        return None, _error(response, protocol, code, INVALID_TOKEN_MESSAGE)


def _denied(context: HarnessContext, response: BaseResponse) -> Any:
    """None to let the call through, else the error response."""
    protocol = _protocol(response)
    principal, refusal = _principal_or_error(response, protocol)
    if refusal is not None or principal is None:
        return refusal
    operation = response._get_action()
    call = Call(
        service=response.boto3_service_name,
        operation=str(operation),
        params=_parameters(response, protocol),
        region=response.region,
        account=response.current_account,
        method=response.method,
        path=str(getattr(response, "path", "/") or "/"),
    )
    denial = context.iam.authorize(principal, requests_for(call))
    if denial is None and call.service == "sts" and call.operation == "AssumeRole":
        denial = _untrusted(context, principal, str(call.params.get("RoleArn", "")))
    if denial is None:
        return _unassumable_role(response, protocol, call)
    code = "AccessDenied" if protocol in ("query", "ec2") else "AccessDeniedException"
    return _error(response, protocol, code, denial.message)


# Creating a resource with a role its service cannot assume fails at creation on AWS.
_SERVICE_ROLES: Final = {
    ("lambda", "CreateFunction"): ("Role", "lambda.amazonaws.com"),
    ("lambda", "UpdateFunctionConfiguration"): ("Role", "lambda.amazonaws.com"),
    ("stepfunctions", "CreateStateMachine"): ("roleArn", "states.amazonaws.com"),
    ("stepfunctions", "UpdateStateMachine"): ("roleArn", "states.amazonaws.com"),
}
_UNASSUMABLE: Final = {
    # Lambda API reference, CreateFunction errors (InvalidParameterValueException).
    "lambda": (
        "InvalidParameterValueException",
        "The role defined for the function cannot be assumed by Lambda.",
    ),
    # Step Functions API reference, CreateStateMachine errors (AccessDeniedException).
    "stepfunctions": (
        "AccessDeniedException",
        "Neither the global service principal states.amazonaws.com, nor the regional one is authorized to "
        "assume the provided role.",
    ),
}


def _unassumable_role(response: BaseResponse, protocol: str, call: Call) -> Reply | None:
    """AWS's refusal of a function or state machine whose (existing) role does not trust its service;
    a role missing from moto's IAM is let through (harness.iam.enforcement.IamEnforcement.session)."""
    wanted = _SERVICE_ROLES.get((call.service, call.operation))
    if wanted is None or not call.params.get(wanted[0]):
        return None
    role_arn = str(call.params[wanted[0]])
    role = find_role(role_arn)
    if role is None:
        return None
    if trusts(role, wanted[1], service=True):
        return _managed_rule_refusal(call, role_arn)
    code, message = _UNASSUMABLE[call.service]
    return refusal(call.service, protocol, code, message, status=400)


def _managed_rule_refusal(call: Call, role_arn: str) -> Reply | None:
    """CreateStateMachine / UpdateStateMachine refuse a role that may not create the managed rules of
    the definition's `.sync` Tasks (harness/iam/managed_rules.py)."""
    if call.service != "stepfunctions" or not call.params.get("definition"):
        return None
    rules = managed_rules(str(call.params["definition"]))
    if not rules or may_create_managed_rules(role_policies(role_arn), rules, call.region, call.account):
        return None
    return refusal(call.service, "json", "AccessDeniedException", refusal_message(role_arn))


def _untrusted(context: HarnessContext, principal: Principal, role_arn: str) -> Denial | None:
    role = find_role(role_arn) if role_arn else None
    if role is not None and trusts(role, principal.arn, service=False):
        return None
    denial = Denial(principal.arn, "sts:AssumeRole", role_arn, "implicit-deny")
    context.iam.record(denial)
    return denial


@functools.lru_cache(maxsize=1)
def _aws_managed_documents() -> dict[str, Any]:
    """moto's copy of AWS's managed policies, by name (read once: it is large)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    documents: dict[str, Any] = json.loads(aws_managed_policies_data)
    return documents


def attach_managed_policies(role: Any, arns: list[str], account_id: str, region: str) -> None:
    """Attaches each managed policy to the role, loading an AWS managed one into the account's backend
    first (moto loads none unless told to, and they are thousands)."""
    from moto.iam.models import AWSManagedPolicy, iam_backends

    backend = iam_backends[account_id]["aws"]
    for arn in arns:
        if arn not in backend.managed_policies and arn.startswith("arn:aws:iam::aws:policy/"):
            name = arn.rsplit("/", 1)[-1]
            data = _aws_managed_documents().get(name)
            if data is None:
                raise ValueError(f"{arn}: not an AWS managed policy moto knows")
            policy = AWSManagedPolicy.from_data(name, account_id, region, data)
            backend.managed_policies[policy.arn] = policy
        backend.attach_role_policy(arn, role.name)


def _install_role_managed_policies() -> None:
    """moto's CloudFormation Role ignores `ManagedPolicyArns` (AWS::IAM::Role, "ManagedPolicyArns": the
    managed policies attached to the role): the Lambda roles would lack AWSLambdaBasicExecutionRole."""
    from moto.iam.models import Role

    original = Role.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    @functools.wraps(original)
    def create(
        cls: Any,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        role = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        arns = cloudformation_json["Properties"].get("ManagedPolicyArns") or []
        attach_managed_policies(role, [str(arn) for arn in arns], account_id, region_name)
        return role

    Role.create_from_cloudformation_json = classmethod(create)  # type: ignore[method-assign,assignment,arg-type]

    original_delete = Role.delete_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    @functools.wraps(original_delete)
    def delete(
        cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        # CloudFormation detaches the ManagedPolicyArns it attached before it deletes the role (IAM
        # refuses DeleteRole with policies attached: DeleteConflict), so a stack delete succeeds.
        from moto.iam.models import iam_backends

        backend = iam_backends[account_id]["aws"]
        for role in list(backend.roles.values()):
            if role.name == resource_name:
                for arn in list(role.managed_policies):
                    backend.detach_role_policy(arn, role.name)
        original_delete(cls, resource_name, cloudformation_json, account_id, region_name)

    Role.delete_from_cloudformation_json = classmethod(delete)  # type: ignore[method-assign,assignment,arg-type]


def install() -> None:
    """Wraps moto's dispatch (idempotent)."""
    global _installed
    if _installed:
        return
    _install_role_managed_policies()
    original_call_action = BaseResponse.call_action

    @functools.wraps(original_call_action)  # moto's source stays readable through it (other seams' tests)
    def call_action(self: BaseResponse) -> Any:
        context = current()
        if context is not None and context.iam.enabled and self.service_name != "s3":
            refusal = _denied(context, self)
            if refusal is not None:
                return refusal
        return original_call_action(self)

    BaseResponse.call_action = call_action  # type: ignore[method-assign]

    from moto.s3.responses import S3Response

    from harness.iam.s3_actions import s3_requests

    original_s3 = S3Response._authenticate_and_authorize_s3_action

    @functools.wraps(original_s3)
    def authorize_s3(self: S3Response, bucket_name: str | None = None, key_name: str | None = None) -> None:
        context = current()
        if context is not None and context.iam.enabled:
            key = access_key_of(self.headers, self.querystring)
            if key is not None:
                try:
                    principal = resolve(
                        key, session_token_of(self.headers, self.querystring), self.current_account
                    )
                except UnknownAccessKey:
                    raise S3Refusal("InvalidAccessKeyId", S3_UNKNOWN_KEY_MESSAGE) from None
                except InvalidSessionToken:
                    raise S3Refusal("InvalidToken", S3_INVALID_TOKEN_MESSAGE) from None
                requests = s3_requests(
                    str(self.data.get("Action", "")),
                    bucket_name,
                    key_name,
                    self.headers,
                    self.querystring,
                    self.region,
                )
                denial = context.iam.authorize(principal, requests)
                if denial is not None:
                    raise S3Refusal("AccessDenied", denial.message)
        original_s3(self, bucket_name=bucket_name, key_name=key_name)

    S3Response._authenticate_and_authorize_s3_action = authorize_s3  # type: ignore[method-assign,assignment]
    _installed = True
