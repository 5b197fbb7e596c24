"""The thin AWS half of the deployer: change sets, waiting, outputs, uploads, and errors one can act on.

`AwsClient` takes a boto3 `Session` (and optionally an endpoint URL, for an emulator or any
AWS-compatible endpoint); it knows nothing about what the stacks contain. Every AWS error leaves it as
a `DeployError` whose message says what to do: missing credentials or region, an unreachable endpoint,
a failed stack (each failed resource with its reason), a stack stuck in a rollback state.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

__all__ = ["AwsClient", "Change", "ChangeSetPlan", "DeployError", "StackResult"]

NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
GOOD_END_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})
# A stack whose creation failed cannot be updated, only deleted.
DEAD_STATES = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"})
ABSENT_STATES = frozenset({"DELETE_COMPLETE", "REVIEW_IN_PROGRESS"})


class DeployError(RuntimeError):
    """Something a person has to fix; the message says what."""


@dataclass(frozen=True)
class Change:
    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""


@dataclass(frozen=True)
class ChangeSetPlan:
    stack_name: str
    change_set_type: str
    changes: tuple[Change, ...]
    # Set from CloudFormation's verdict, not from an empty `changes`: an emulator may list no resource
    # change for a change of parameters only.
    no_change: bool = False


@dataclass(frozen=True)
class StackResult:
    stack_name: str
    action: str  # "created", "updated" or "unchanged"
    outputs: dict[str, str]


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn the errors boto3 raises into DeployErrors a person can act on."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise DeployError(
            f"{what}: no AWS credentials ({error}). Pass --profile, set AWS_PROFILE, or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from error
    except NoRegionError as error:
        raise DeployError(f"{what}: no AWS region. Pass --region or set AWS_REGION") from error
    except EndpointConnectionError as error:
        endpoint = error.kwargs.get("endpoint_url", "the endpoint")
        raise DeployError(f"{what}: cannot reach {endpoint}") from error
    except ClientError as error:
        details = error.response.get("Error", {})
        code, message = details.get("Code", "error"), details.get("Message", error)
        raise DeployError(f"{what}: {code}: {message}") from error


class AwsClient:
    def __init__(
        self,
        session: boto3.Session,
        endpoint_url: str | None = None,
        poll_seconds: float = 5.0,
        timeout_seconds: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._cloudformation: Any = session.client("cloudformation", endpoint_url=endpoint_url)
        self._s3: Any = session.client("s3", endpoint_url=endpoint_url)
        self._poll_seconds = poll_seconds
        self._timeout_seconds = timeout_seconds
        self._sleep = sleep

    # ------------------------------------------------------------------ stacks
    def describe(self, stack_name: str) -> dict[str, Any] | None:
        """The stack, or None when there is none (one only planned, REVIEW_IN_PROGRESS, counts as none)."""
        with aws_errors(f"describe stack {stack_name}"):
            try:
                stacks = self._cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
            except ClientError as error:
                if "does not exist" in str(error):
                    return None
                raise
        live = [stack for stack in stacks if stack["StackStatus"] not in ABSENT_STATES]
        return dict(live[0]) if live else None

    def outputs(self, stack_name: str) -> dict[str, str]:
        stack = self.describe(stack_name)
        if stack is None:
            raise DeployError(f"stack {stack_name} does not exist: run `mlops deploy` first")
        return {item["OutputKey"]: str(item["OutputValue"]) for item in stack.get("Outputs", [])}

    def plan(self, stack_name: str, body: str, parameters: Mapping[str, str]) -> ChangeSetPlan:
        """Create a change set, describe it, and delete it again: nothing is changed."""
        existed = self.describe(stack_name) is not None
        change_set_id, plan = self._create_change_set(stack_name, body, parameters, existed)
        with aws_errors(f"delete the planned change set of {stack_name}"):
            self._cloudformation.delete_change_set(ChangeSetName=change_set_id, StackName=stack_name)
            if not existed:
                # A CREATE change set leaves an empty stack in REVIEW_IN_PROGRESS behind.
                self._cloudformation.delete_stack(StackName=stack_name)
        return plan

    def apply(self, stack_name: str, body: str, parameters: Mapping[str, str]) -> StackResult:
        """Create or update the stack through a change set and wait; an unchanged stack is left alone."""
        existing = self.describe(stack_name)
        if existing is not None and existing["StackStatus"] in DEAD_STATES:
            raise DeployError(
                f"stack {stack_name} is {existing['StackStatus']} and cannot be updated: "
                f"{self.failure_detail(stack_name)}. Run `mlops destroy`, then deploy again"
            )
        if existing is not None and existing["StackStatus"].endswith("_IN_PROGRESS"):
            status = existing["StackStatus"]
            raise DeployError(f"stack {stack_name} is busy ({status}); try again when it settles")
        change_set_id, plan = self._create_change_set(stack_name, body, parameters, existing is not None)
        if plan.no_change:
            with aws_errors(f"delete the empty change set of {stack_name}"):
                self._cloudformation.delete_change_set(ChangeSetName=change_set_id, StackName=stack_name)
            return StackResult(stack_name, "unchanged", self.outputs(stack_name))
        with aws_errors(f"execute the change set of {stack_name}"):
            self._cloudformation.execute_change_set(ChangeSetName=change_set_id, StackName=stack_name)
        stack = self._wait_stack(stack_name)
        if stack["StackStatus"] not in GOOD_END_STATES:
            raise DeployError(
                f"stack {stack_name} ended {stack['StackStatus']}: {self.failure_detail(stack_name)}"
            )
        action = "created" if plan.change_set_type == "CREATE" else "updated"
        return StackResult(stack_name, action, self.outputs(stack_name))

    def delete(self, stack_name: str) -> bool:
        """Delete the stack and wait; False when there was none."""
        stack = self.describe(stack_name)
        if stack is None:
            return False
        with aws_errors(f"delete stack {stack_name}"):
            self._cloudformation.delete_stack(StackName=stack["StackId"])
        final = self._wait_stack(stack["StackId"])
        if final["StackStatus"] != "DELETE_COMPLETE":
            raise DeployError(
                f"stack {stack_name} ended {final['StackStatus']}: {self.failure_detail(stack['StackId'])}"
            )
        return True

    def failure_detail(self, stack_name: str) -> str:
        """The failed resources of the stack's events, newest first, each with its reason."""
        with aws_errors(f"read the events of {stack_name}"):
            events = self._cloudformation.describe_stack_events(StackName=stack_name).get("StackEvents", [])
        failures = [
            f"{event['LogicalResourceId']} ({event.get('ResourceType', '?')}) "
            f"{event['ResourceStatus']}: {event.get('ResourceStatusReason', 'no reason given')}"
            for event in events
            if str(event.get("ResourceStatus", "")).endswith("_FAILED")
        ]
        return "; ".join(failures[:5]) or "no failed resource reported"

    def _create_change_set(
        self, stack_name: str, body: str, parameters: Mapping[str, str], exists: bool
    ) -> tuple[str, ChangeSetPlan]:
        change_set_type = "UPDATE" if exists else "CREATE"
        name = f"mlops-{uuid.uuid4().hex[:12]}"
        with aws_errors(f"create a change set for {stack_name}"):
            created = self._cloudformation.create_change_set(
                StackName=stack_name,
                ChangeSetName=name,
                ChangeSetType=change_set_type,
                TemplateBody=body,
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
            )
        change_set_id = str(created["Id"])
        described = self._wait_change_set(change_set_id, stack_name)
        if described["Status"] == "FAILED":
            reason = str(described.get("StatusReason", ""))
            if any(marker in reason for marker in NO_CHANGES):
                return change_set_id, ChangeSetPlan(stack_name, change_set_type, (), no_change=True)
            raise DeployError(f"the change set for {stack_name} failed: {reason}")
        changes = tuple(
            Change(
                action=str(item["ResourceChange"].get("Action", "")),
                logical_id=str(item["ResourceChange"].get("LogicalResourceId", "")),
                resource_type=str(item["ResourceChange"].get("ResourceType", "")),
                replacement=str(item["ResourceChange"].get("Replacement", "")),
            )
            for item in described.get("Changes", [])
            if "ResourceChange" in item
        )
        return change_set_id, ChangeSetPlan(stack_name, change_set_type, changes)

    def _wait_change_set(self, change_set_id: str, stack_name: str) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            with aws_errors(f"describe the change set of {stack_name}"):
                described: dict[str, Any] = self._cloudformation.describe_change_set(
                    ChangeSetName=change_set_id, StackName=stack_name
                )
            return described if described["Status"] in {"CREATE_COMPLETE", "FAILED"} else None

        return self._poll(settled, f"the change set of {stack_name}")

    def _wait_stack(self, stack_name_or_id: str) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            with aws_errors(f"describe stack {stack_name_or_id}"):
                stack: dict[str, Any] = self._cloudformation.describe_stacks(StackName=stack_name_or_id)[
                    "Stacks"
                ][0]
            return None if stack["StackStatus"].endswith("_IN_PROGRESS") else stack

        try:
            return self._poll(settled, f"stack {stack_name_or_id}")
        except DeployError as error:
            if "does not exist" in str(error):  # AWS forgets a deleted stack's name at once
                return {"StackStatus": "DELETE_COMPLETE"}
            raise

    def _poll(self, settled: Callable[[], dict[str, Any] | None], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout_seconds
        while True:
            result = settled()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise DeployError(f"{what} did not settle within {self._timeout_seconds:g} s")
            self._sleep(self._poll_seconds)

    # ------------------------------------------------------------------ buckets
    def upload(self, bucket: str, key: str, body: bytes) -> bool:
        """Put an object unless one already exists at this (content-addressed) key; True when uploaded."""
        with aws_errors(f"check s3://{bucket}/{key}"):
            try:
                self._s3.head_object(Bucket=bucket, Key=key)
                return False
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") not in {"404", "NoSuchKey", "NotFound"}:
                    raise
        with aws_errors(f"upload s3://{bucket}/{key}"):
            self._s3.put_object(Bucket=bucket, Key=key, Body=body)
        return True

    def empty_bucket(self, bucket: str) -> int:
        """Delete every object version of the bucket; the count deleted."""
        deleted = 0
        with aws_errors(f"empty s3://{bucket}"):
            paginator = self._s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=bucket):
                entries = [
                    {"Key": item["Key"], "VersionId": item["VersionId"]}
                    for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                ]
                if entries:
                    self._s3.delete_objects(Bucket=bucket, Delete={"Objects": entries, "Quiet": True})
                    deleted += len(entries)
        return deleted
