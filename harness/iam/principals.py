"""Who signed a request: the admin, or a role session that moto's STS issued; and that role's policies.

A request's access key is the `Credential=` of its SigV4 `Authorization` header (or the presigned URL's
`X-Amz-Credential`), its session token `X-Amz-Security-Token`. The admin key ("testing") is the harness's
own; any other key must be one moto's STS issued by `sts:AssumeRole` (harness.iam.credentials): it
resolves to `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` and the role's identity-based policies,
inline and attached managed, read from moto's IAM backend at the time of the call (a policy changed or
detached since the credentials were issued applies at once, as on AWS). An unknown key is refused as
AWS refuses it (`InvalidClientTokenId`, S3's `InvalidAccessKeyId`); a temporary key with a wrong or
missing session token too (`InvalidClientTokenId` "The security token included in the request is
invalid", S3's `InvalidToken`).

Not modelled: session policies passed to AssumeRole, permissions boundaries, IAM users (the flow has
none; moto's IAM users' keys are refused as unknown).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from deployer.iam_policy import Policy, parse_policy
from harness.iam.credentials import ADMIN_ACCESS_KEY_ID, ADMIN_ARN, PARTITION, find_role
from harness.identity import ACCOUNT_ID

_CREDENTIAL: Final = re.compile(r"Credential=([^/,\s]+)/")


class UnknownAccessKey(PermissionError):
    """The access key is not one the emulator issued (AWS: InvalidClientTokenId / InvalidAccessKeyId)."""


class InvalidSessionToken(PermissionError):
    """A temporary key without its session token (AWS: InvalidClientTokenId / S3 InvalidToken)."""


@dataclass(frozen=True)
class Principal:
    """The caller: its ARN, and for a role session the role and its identity-based policies."""

    arn: str
    role_arn: str | None = None
    policies: tuple[Policy, ...] = ()

    @property
    def is_admin(self) -> bool:
        return self.role_arn is None

    @property
    def role_name(self) -> str:
        return (self.role_arn or "").rsplit("/", 1)[-1]


ADMIN: Final = Principal(ADMIN_ARN)


def access_key_of(headers: Mapping[str, str], query: Mapping[str, Any]) -> str | None:
    """The access key id that signed the request, or None for an unsigned request."""
    authorization = headers.get("Authorization") or headers.get("authorization") or ""
    match = _CREDENTIAL.search(authorization)
    if match:
        return match.group(1)
    if authorization.startswith("AWS "):  # SigV2 (S3's old presigned form): "AWS KEY:SIGNATURE"
        return authorization[4:].split(":", 1)[0]
    credential = query.get("X-Amz-Credential") or query.get("AWSAccessKeyId")
    if isinstance(credential, list):
        credential = credential[0] if credential else None
    if credential:
        return str(credential).split("/", 1)[0]
    return None


def session_token_of(headers: Mapping[str, str], query: Mapping[str, Any]) -> str | None:
    token = headers.get("X-Amz-Security-Token") or headers.get("x-amz-security-token")
    if token:
        return str(token)
    value = query.get("X-Amz-Security-Token")
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value else None


def resolve(access_key_id: str, session_token: str | None, account_id: str = ACCOUNT_ID) -> Principal:
    """The principal of a signed request; UnknownAccessKey / InvalidSessionToken as AWS refuses it."""
    if access_key_id == ADMIN_ACCESS_KEY_ID:
        return ADMIN
    from moto.sts.models import sts_backends

    for assumed in list(sts_backends[account_id][PARTITION].assumed_roles):
        if assumed.access_key_id != access_key_id:
            continue
        if session_token != assumed.session_token:
            raise InvalidSessionToken(access_key_id)
        return Principal(str(assumed.arn), str(assumed.role_arn), role_policies(str(assumed.role_arn)))
    raise UnknownAccessKey(access_key_id)


def role_session(role_arn: str, session_name: str) -> Principal:
    """The principal of a session of `role_arn` (for a service's own calls that never cross moto's
    HTTP boundary, such as Lambda writing a function's log with its execution role)."""
    account_id = role_arn.split(":")[4] or ACCOUNT_ID
    arn = f"arn:aws:sts::{account_id}:assumed-role/{role_arn.rsplit('/', 1)[-1]}/{session_name}"
    return Principal(arn, role_arn, role_policies(role_arn))


def role_policies(role_arn: str) -> tuple[Policy, ...]:
    """The role's inline and attached managed policies as moto's IAM backend holds them now."""
    role = find_role(role_arn)
    if role is None:
        return ()  # a deleted role's sessions are allowed nothing
    policies = [_parsed(f"{role.name}/{name}", _text(document)) for name, document in role.policies.items()]
    for arn, managed in list(role.managed_policies.items()):
        policies.append(_parsed(str(arn), _text(_default_document(managed))))
    return tuple(policies)


def _default_document(managed: Any) -> Any:
    for version in managed.versions:
        if version.is_default:
            return version.document
    return managed.versions[0].document


def _text(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document, sort_keys=True)


@lru_cache(maxsize=1024)
def _parsed(name: str, document: str) -> Policy:
    return parse_policy(name, json.loads(document))
