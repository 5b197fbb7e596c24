"""Credentials of the roles AWS services act as: what the harness uses when it calls on a service's behalf.

On AWS a service that works for you (SageMaker for a training job, CodeBuild for a build, CodePipeline
for its artifacts and actions, CloudFormation for a stack created with `RoleARN`) assumes the role you
named and makes its calls with that role's temporary credentials; a call the role's policies do not
allow is denied to it, whatever rights the caller who started the work had. The harness does the same:
`ServiceRoles.credentials(role_arn, session_name)` asks the emulator's STS for the role
(`sts:AssumeRole`, the harness's admin credentials as the caller, standing for the service's trust)
and keeps the answer until shortly before it expires; `client(...)` / `client_factory(...)` make boto3
clients that sign with it. With the emulator's IAM enforcement on (harness/iam), those calls are
evaluated against the role's policies; with it off they simply succeed.

The session names are the ones the services use, so that a denial names the principal as AWS would
(`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`): SageMaker `SageMaker`, CloudFormation
`AWSCloudFormation`, CodeBuild `AWSCodeBuild-<build uuid>`, CodePipeline a millisecond timestamp.

`denial_message(...)` is IAM's text for an implicit deny by identity-based policies (IAM user guide,
"Troubleshoot access denied error messages"), for the checks the harness makes itself (CloudFormation's
handler permissions) rather than at the emulator's boundary.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import boto3
from botocore.config import Config

from harness.identity import FAKE_CREDENTIALS, REGION

# The session names AWS services give the roles they assume (seen in their assumed-role ARNs).
SAGEMAKER_SESSION: Final = "SageMaker"
CLOUDFORMATION_SESSION: Final = "AWSCloudFormation"

# Asked for one hour (AssumeRole's default); renewed when less than this is left.
_DURATION_S: Final = 3600
_RENEW_BEFORE_S: Final = 300.0


def codebuild_session(build_uuid: str) -> str:
    return f"AWSCodeBuild-{build_uuid}"[:64]


def codepipeline_session() -> str:
    return str(int(time.time() * 1000))


@dataclass(frozen=True)
class RoleCredentials:
    """Temporary credentials of one assumed role."""

    role_arn: str
    assumed_role_arn: str  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: float  # epoch seconds

    def boto3_arguments(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
        }

    def environment(self) -> dict[str, str]:
        """As a process's environment (what CodeBuild's build container and Lambda's runtime get)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }

    def artifact_credentials(self) -> dict[str, str]:
        """As a CodePipeline job's `artifactCredentials`."""
        return {
            "accessKeyId": self.access_key_id,
            "secretAccessKey": self.secret_access_key,
            "sessionToken": self.session_token,
        }


class RoleError(Exception):
    """A role the service could not assume (AssumeRole failed); the message says why."""


def _client_config() -> Config:
    return Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=120)


class ServiceRoles:
    """Assumes roles through the emulator's STS at `endpoint_url` and makes clients that use them.

    Thread-safe: the compute plane's jobs and endpoints and the pipeline's actions ask from their own
    threads. Credentials are kept per (role, session name)."""

    def __init__(
        self,
        endpoint_url: str,
        region: str = REGION,
        admin_credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._admin = dict(admin_credentials or FAKE_CREDENTIALS)
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], RoleCredentials] = {}

    def credentials(self, role_arn: str, session_name: str) -> RoleCredentials:
        """The role's credentials for `session_name` (assumed now, or kept from an earlier call)."""
        if not role_arn.startswith("arn:") or ":role/" not in role_arn:
            raise RoleError(f"{role_arn!r} is not an IAM role ARN")
        key = (role_arn, session_name)
        with self._lock:
            held = self._held.get(key)
        if held is not None and held.expires_at - time.time() > _RENEW_BEFORE_S:
            return held
        sts = self.admin_client("sts")
        try:
            answer = sts.assume_role(
                RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=_DURATION_S
            )
        except Exception as error:  # botocore's ClientError or a connection error: say which role
            raise RoleError(f"could not assume the role {role_arn}: {error}") from error
        raw = answer["Credentials"]
        expiration = raw.get("Expiration")
        expires_at = expiration.timestamp() if hasattr(expiration, "timestamp") else time.time() + _DURATION_S
        fresh = RoleCredentials(
            role_arn=role_arn,
            assumed_role_arn=str(answer["AssumedRoleUser"]["Arn"]),
            access_key_id=str(raw["AccessKeyId"]),
            secret_access_key=str(raw["SecretAccessKey"]),
            session_token=str(raw["SessionToken"]),
            expires_at=expires_at,
        )
        with self._lock:
            self._held[key] = fresh
        return fresh

    def session(self, role_arn: str, session_name: str) -> boto3.Session:
        return boto3.session.Session(
            region_name=self.region, **self.credentials(role_arn, session_name).boto3_arguments()
        )

    def client(self, service: str, role_arn: str, session_name: str, config: Config | None = None) -> Any:
        """A `service` client of the emulator that signs with the role's credentials."""
        return self.session(role_arn, session_name).client(
            service, endpoint_url=self.endpoint_url, config=config or _client_config()
        )

    def client_factory(self, service: str, role_arn: str | None, session_name: str) -> Callable[[], Any]:
        """Makes a fresh client per call (credentials renewed as needed): one per thread or job. With no
        role (`None`), the clients use the harness's admin credentials."""

        def make() -> Any:
            if role_arn is None:
                return self.admin_client(service)
            return self.client(service, role_arn, session_name)

        return make

    def admin_client(self, service: str) -> Any:
        """A client with the harness's own credentials (full rights, as a deployer's)."""
        return boto3.session.Session(region_name=self.region, **self._admin).client(
            service, endpoint_url=self.endpoint_url, config=_client_config()
        )


_DENIED_CODES: Final = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)


def is_access_denied(error: BaseException) -> bool:
    """Whether `error` is an AWS API's access denial (S3's AccessDenied, the JSON APIs' AccessDenied...)."""
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, Mapping) else None
    return code in _DENIED_CODES


def denial_message(principal_arn: str, action: str, resource: str) -> str:
    """IAM's message for an action no identity-based policy allows."""
    return (
        f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )


def assumed_role_arn(role_arn: str, session_name: str) -> str:
    """`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION` for a role ARN (paths are not part of it)."""
    head, _, path_and_name = role_arn.partition(":role/")
    partition, account = head.split(":")[1], head.split(":")[4]
    name = path_and_name.rsplit("/", 1)[-1]
    return f"arn:{partition}:sts::{account}:assumed-role/{name}/{session_name}"
