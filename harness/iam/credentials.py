"""Credentials of the harness's principals: the admin key, and temporary ones from moto's STS.

Every principal other than the admin acts with credentials that moto's STS backend issued for an
`sts:AssumeRole` of a role in moto's IAM backend, as AWS services do for the roles they are given
(Lambda for a function's execution role, Step Functions for a state machine's role, SageMaker, CodeBuild,
CodePipeline and CloudFormation for theirs). `credentials_for` is that AssumeRole, done in process (the
harness acts as the service), and checks the role's trust policy names the service when one is given:
a role that does not trust `lambda.amazonaws.com` cannot be a function's execution role on AWS either
(IAM user guide, "Terms and concepts for roles": the trust policy defines which principals can assume
the role).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from deployer.iam_policy import Request, evaluate, parse_policy
from harness.identity import ACCOUNT_ID, FAKE_CREDENTIALS, REGION

PARTITION: Final = "aws"
# The harness's own key: deploying stacks, putting data, the tests' checks. Full rights, as a deployer's.
ADMIN_ACCESS_KEY_ID: Final = FAKE_CREDENTIALS["aws_access_key_id"]
ADMIN_ARN: Final = f"arn:aws:iam::{ACCOUNT_ID}:root"
# AWS's default and maximum session for AssumeRole by a service (1 hour is the default duration).
SESSION_SECONDS: Final = 3600


class TrustPolicyError(PermissionError):
    """The role's trust policy does not let the principal assume it (AWS answers AccessDenied)."""


@dataclass(frozen=True)
class Credentials:
    """Temporary security credentials, with the principal they stand for."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    principal_arn: str

    def as_env(self) -> dict[str, str]:
        """As a process's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token is not None:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def as_boto3(self) -> dict[str, str]:
        """As keyword arguments of `boto3.Session(...)` or `boto3.client(...)`."""
        kwargs = {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}
        if self.session_token is not None:
            kwargs["aws_session_token"] = self.session_token
        return kwargs


ADMIN_CREDENTIALS: Final = Credentials(
    FAKE_CREDENTIALS["aws_access_key_id"], FAKE_CREDENTIALS["aws_secret_access_key"], None, ADMIN_ARN
)


def role_name_of(role_arn: str) -> str:
    """`arn:aws:iam::ACCOUNT:role/path/NAME` -> NAME; ValueError for anything else."""
    prefix, _, rest = role_arn.partition(":role/")
    if not rest or not prefix.startswith("arn:") or ":iam::" not in prefix:
        raise ValueError(f"not an IAM role ARN: {role_arn!r}")
    return rest.rsplit("/", 1)[-1]


def _iam_backend(account_id: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id][PARTITION]


def find_role(role_arn: str) -> Any | None:
    """moto's Role for `role_arn`, or None when it does not exist (now)."""
    account_id = role_arn.split(":")[4] or ACCOUNT_ID
    try:
        return _iam_backend(account_id).get_role(role_name_of(role_arn))
    except Exception:  # moto raises its own NoSuchEntity (an HTTP exception class)
        return None


def trusts(role: Any, principal: str, service: bool) -> bool:
    """Whether the role's trust policy allows sts:AssumeRole to `principal` (a service name such as
    `lambda.amazonaws.com` when `service`, else an ARN; the account's root also stands for its ARNs)."""
    document = role.assume_role_policy_document
    raw = json.loads(document) if isinstance(document, str) else document
    statements = raw.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for index, statement in enumerate(statements):
        if not _names_principal(statement.get("Principal"), principal, service):
            continue
        stripped = {key: value for key, value in statement.items() if key != "Principal"}
        stripped.setdefault("Resource", "*")
        policy = parse_policy(f"{role.name} trust policy statement {index}", {"Statement": [stripped]})
        decision = evaluate([policy], Request("sts:AssumeRole", role.arn))
        if decision.reason == "explicit-deny":
            return False
        allowed = allowed or decision.allowed
    return allowed


def _names_principal(raw: Any, principal: str, service: bool) -> bool:
    if raw == "*":
        return not service
    if not isinstance(raw, dict):
        return False
    key = "Service" if service else "AWS"
    values = raw.get(key, [])
    names = [values] if isinstance(values, str) else list(values)
    if service:
        return principal in names
    account = principal.split(":")[4] if principal.count(":") >= 5 else ""
    return any(name in ("*", principal, account, f"arn:aws:iam::{account}:root") for name in names)


def credentials_for(
    context: object | None, role_arn: str, session_name: str, service: str | None = None
) -> Credentials:
    """Temporary credentials of `role_arn` from moto's STS, as an AWS service gets them by AssumeRole.

    `service` (e.g. "lambda.amazonaws.com"): the principal that assumes the role; its trust policy must
    allow it (TrustPolicyError otherwise). `context` is the HarnessContext the principal acts in (kept in
    the signature so that a later per-context setting needs no new API; unused today). The credentials
    stay valid for the emulator's life; the role's policies are read at each call they sign.
    """
    del context
    if not session_name or len(session_name) > 64:
        raise ValueError(f"a role session name has 2-64 characters, got {session_name!r}")
    role = find_role(role_arn)
    if role is None:
        raise TrustPolicyError(f"the role {role_arn} does not exist, so no one can assume it")
    if service is not None and not trusts(role, service, service=True):
        raise TrustPolicyError(
            f"{service} is not authorized to perform: sts:AssumeRole on resource: {role_arn} "
            f"(the role's trust policy does not name {service})"
        )
    from moto.sts.models import sts_backends

    account_id = role_arn.split(":")[4] or ACCOUNT_ID
    assumed = sts_backends[account_id][PARTITION].assume_role(
        region_name=REGION,
        role_session_name=session_name,
        role_arn=role_arn,
        policy="",
        duration=SESSION_SECONDS,
        external_id="",
    )
    return Credentials(
        access_key_id=str(assumed.access_key_id),
        secret_access_key=str(assumed.secret_access_key),
        session_token=str(assumed.session_token),
        principal_arn=str(assumed.arn),
    )
