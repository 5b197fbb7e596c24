"""Clients of the roles AWS services act as: what the harness uses when it calls on a service's behalf.

On AWS a service that works for you (SageMaker for a training job or an endpoint, CodeBuild for a build,
CodePipeline for its artifacts and actions, CloudFormation for a stack created with `RoleARN`) assumes
the role you named and makes its calls with that role's temporary credentials; a call the role's
policies do not allow is denied to it, whatever rights the caller who started the work had.
`ServiceRoles` gives the harness's parts those credentials and boto3 clients signing with them: the
sessions come from the context's IAM enforcement (`harness.iam`, `IamEnforcement.session`: moto's STS,
the role's trust policy must name the service), so the emulator's boundary evaluates each call against
the role's policies. Enforcement off, or a role the emulator's IAM does not hold (the seams' unit tests
name made-up ones), gives the admin's credentials: the calls then run with full rights, as before.

The session names are the ones the services use, so that a denial names the principal as AWS does
(`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`): SageMaker `SageMaker`, CloudFormation
`AWSCloudFormation` (aws/serverless-application-model#154), CodeBuild `AWSCodeBuild-<build uuid>`,
CodePipeline a millisecond timestamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import boto3
from botocore.config import Config

from deployer.iam_policy import Request
from harness.boto_sessions import SessionClients, client_config, new_session
from harness.iam.credentials import ADMIN_CREDENTIALS, Credentials, TrustPolicyError
from harness.iam.enforcement import IamEnforcement
from harness.iam.principals import resolve
from harness.identity import REGION

# The session names AWS services give the roles they assume (seen in their assumed-role ARNs).
SAGEMAKER_SESSION: Final = "SageMaker"
CLOUDFORMATION_SESSION: Final = "AWSCloudFormation"

# The service principals that assume them (what the roles' trust policies name).
SAGEMAKER: Final = "sagemaker.amazonaws.com"
CODEBUILD: Final = "codebuild.amazonaws.com"
CODEPIPELINE: Final = "codepipeline.amazonaws.com"
CLOUDFORMATION: Final = "cloudformation.amazonaws.com"


def codebuild_session(build_uuid: str) -> str:
    return f"AWSCodeBuild-{build_uuid}"[:64]


def codepipeline_session() -> str:
    return str(int(time.time() * 1000))


class RoleError(Exception):
    """A role the service could not assume (its trust policy does not name the service)."""


class ServiceRoles:
    """Credentials and clients of the emulator at `endpoint_url` as the roles services act with.

    `iam` is the running context's enforcement (`HarnessContext.iam`); None gives the admin's credentials
    to everyone (a plane made without a context). Thread-safe: IamEnforcement keeps the sessions.

    Every client comes from one session (`SessionClients`), with the role's credentials given to the
    client."""

    def __init__(self, endpoint_url: str, iam: IamEnforcement | None, region: str = REGION) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._iam = iam
        self._clients = SessionClients(region)

    def credentials(self, role_arn: str | None, session_name: str, service: str) -> Credentials:
        """What `service` acts with for `role_arn` (the admin's for no role, no enforcement)."""
        if role_arn is None or self._iam is None:
            return ADMIN_CREDENTIALS
        try:
            return self._iam.session(role_arn, session_name, service)
        except (TrustPolicyError, ValueError) as error:
            raise RoleError(f"{service} could not assume the role {role_arn}: {error}") from error

    def session(self, role_arn: str | None, session_name: str, service: str) -> boto3.Session:
        credentials = self.credentials(role_arn, session_name, service)
        return new_session(self.region, credentials.as_boto3())

    def client(
        self, api: str, role_arn: str | None, session_name: str, service: str, config: Config | None = None
    ) -> Any:
        """An `api` client of the emulator that signs with the role's credentials (`config`: the client's
        settings, default: standard retries, 3 attempts)."""
        credentials = self.credentials(role_arn, session_name, service)
        return self._clients.client(api, self.endpoint_url, config or client_config(), credentials.as_boto3())

    def authorize(
        self, role_arn: str | None, session_name: str, service: str, action: str, resource: str
    ) -> str | None:
        """For a call the harness makes for a service without going through the emulator's boundary
        (moto has no such API, e.g. CodeBuild's StartBuild of a project CloudFormation skipped): None
        when the role may, else IAM's denial message (the denial is recorded, as the boundary's are)."""
        if self._iam is None or role_arn is None:
            return None
        credentials = self.credentials(role_arn, session_name, service)
        principal = resolve(credentials.access_key_id, credentials.session_token)
        denial = self._iam.authorize(principal, [Request(action, resource)])
        return None if denial is None else denial.message

    def client_factory(
        self, api: str, role_arn: str | None, session_name: str, service: str
    ) -> Callable[[], Any]:
        """Makes a fresh client per call: one per thread or job."""

        def make() -> Any:
            return self.client(api, role_arn, session_name, service)

        return make


_DENIED_CODES: Final = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)


def is_access_denied(error: BaseException) -> bool:
    """Whether `error` is an AWS API's access denial (S3's AccessDenied, the JSON APIs' AccessDenied...)."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, Mapping) else None
    return code in _DENIED_CODES


def assumed_role_arn(role_arn: str, session_name: str) -> str:
    """`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` for a role ARN (paths are not part of it)."""
    head, _, path_and_name = role_arn.partition(":role/")
    fields = head.split(":")
    name = path_and_name.rsplit("/", 1)[-1]
    return f"arn:{fields[1]}:sts::{fields[4]}:assumed-role/{name}/{session_name}"
