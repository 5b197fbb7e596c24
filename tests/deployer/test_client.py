"""AwsClient's error messages for stack states moto never reaches (it neither fails nor rolls back a stack).

The CloudFormation answers come from botocore's Stubber, which checks each request and answer against
the service's API model; the emulator-backed paths are in test_deploy.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from deployer.client import AwsClient, DeployError

NOW = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/p-platform/1111"


def stubbed_client() -> tuple[AwsClient, Stubber]:
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    client = AwsClient(session, poll_seconds=0, sleep=lambda _: None)
    stubber = Stubber(client._cloudformation)
    stubber.activate()
    return client, stubber


def stack(status: str) -> dict[str, Any]:
    return {
        "Stacks": [
            {"StackId": STACK_ID, "StackName": "p-platform", "CreationTime": NOW, "StackStatus": status}
        ]
    }


def failed_events() -> dict[str, Any]:
    def event(logical: str, status: str, reason: str, kind: str) -> dict[str, Any]:
        return {
            "StackId": STACK_ID,
            "EventId": f"{logical}-{status}",
            "StackName": "p-platform",
            "Timestamp": NOW,
            "LogicalResourceId": logical,
            "ResourceType": kind,
            "ResourceStatus": status,
            "ResourceStatusReason": reason,
        }

    return {
        "StackEvents": [
            event("p-platform", "UPDATE_ROLLBACK_COMPLETE", "", "AWS::CloudFormation::Stack"),
            event(
                "StartTrainingFunction",
                "UPDATE_FAILED",
                "Error occurred while GetObject. S3 Error Code: NoSuchKey",
                "AWS::Lambda::Function",
            ),
            event("RegistryTable", "UPDATE_COMPLETE", "", "AWS::DynamoDB::Table"),
        ]
    }


def test_an_update_that_rolls_back_names_the_failed_resource_and_its_reason() -> None:
    client, stubber = stubbed_client()
    stubber.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "p-platform"})
    stubber.add_response(
        "create_change_set",
        {"Id": "cs-1", "StackId": STACK_ID},
        {
            "StackName": "p-platform",
            "ChangeSetName": ANY,
            "ChangeSetType": "UPDATE",
            "TemplateBody": "{}",
            "Parameters": [],
            "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        },
    )
    stubber.add_response(
        "describe_change_set",
        {
            "ChangeSetId": "cs-1",
            "Status": "CREATE_COMPLETE",
            "Changes": [
                {
                    "Type": "Resource",
                    "ResourceChange": {
                        "Action": "Modify",
                        "LogicalResourceId": "StartTrainingFunction",
                        "ResourceType": "AWS::Lambda::Function",
                    },
                }
            ],
        },
        {"ChangeSetName": "cs-1", "StackName": "p-platform"},
    )
    stubber.add_response("execute_change_set", {}, {"ChangeSetName": "cs-1", "StackName": "p-platform"})
    stubber.add_response("describe_stacks", stack("UPDATE_ROLLBACK_IN_PROGRESS"), {"StackName": "p-platform"})
    stubber.add_response("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": "p-platform"})
    stubber.add_response("describe_stack_events", failed_events(), {"StackName": "p-platform"})
    with pytest.raises(DeployError) as caught:
        client.apply("p-platform", "{}", {})
    assert str(caught.value) == (
        "stack p-platform ended UPDATE_ROLLBACK_COMPLETE: StartTrainingFunction (AWS::Lambda::Function) "
        "UPDATE_FAILED: Error occurred while GetObject. S3 Error Code: NoSuchKey"
    )
    stubber.assert_no_pending_responses()


def test_a_stack_whose_creation_failed_is_not_updated() -> None:
    client, stubber = stubbed_client()
    stubber.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"), {"StackName": "p-platform"})
    stubber.add_response("describe_stack_events", failed_events(), {"StackName": "p-platform"})
    with pytest.raises(
        DeployError,
        match=r"ROLLBACK_COMPLETE and cannot be updated: StartTrainingFunction .*"
        r"Run `mlops destroy`, then deploy again",
    ):
        client.apply("p-platform", "{}", {})
    stubber.assert_no_pending_responses()


def test_a_change_set_that_fails_for_another_reason_is_an_error() -> None:
    client, stubber = stubbed_client()
    stubber.add_client_error("describe_stacks", "ValidationError", "Stack with id p-platform does not exist")
    stubber.add_response("create_change_set", {"Id": "cs-2", "StackId": STACK_ID}, None)
    stubber.add_response(
        "describe_change_set",
        {
            "ChangeSetId": "cs-2",
            "Status": "FAILED",
            "StatusReason": "Requires capabilities : [CAPABILITY_AUTO_EXPAND]",
        },
        None,
    )
    with pytest.raises(DeployError, match="the change set for p-platform failed: Requires capabilities"):
        client.apply("p-platform", "{}", {})
