"""Small helpers for the Step Functions conformance tests: create a machine, run it, read its failures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.harness.planes import ROLE_ARN, Harness, wait_until

DEPLOYER_ASL = Path(__file__).resolve().parents[2] / "deployer" / "statemachine" / "training.asl.json"


def machine(harness: Harness, name: str, definition: dict[str, Any] | str) -> str:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    sfn = harness.client("stepfunctions")
    return str(sfn.create_state_machine(name=name, definition=text, roleArn=ROLE_ARN)["stateMachineArn"])


def run(
    harness: Harness, arn: str, name: str, payload: dict[str, Any], timeout: float = 90
) -> dict[str, Any]:
    sfn = harness.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))["executionArn"]
    return dict(
        wait_until(
            lambda: sfn.describe_execution(executionArn=execution),
            lambda described: described["status"] != "RUNNING",
            timeout=timeout,
        )
    )


def task_failures(harness: Harness, execution_arn: str) -> list[dict[str, Any]]:
    events = harness.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    return [dict(event["taskFailedEventDetails"]) for event in events if event["type"] == "TaskFailed"]


def one_task(resource: str, parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "StartAt": "Task",
        "States": {
            "Task": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True, **extra}
        },
    }


def deployer_definition() -> str:
    """The deployer's state machine with its CloudFormation placeholders filled in."""
    text = DEPLOYER_ASL.read_text(encoding="utf-8")
    for placeholder, value in {
        "${SageMakerExecutionRole.Arn}": ROLE_ARN,
        "${TrainingInstanceType}": "ml.m5.large",
        "${HostingInstanceType}": "ml.m5.large",
        "${HostingDevice}": "cpu",  # platform.yaml's HostsOnGpu is false for a CPU type
        "${HostingAmiVersion}": "none",
    }.items():
        text = text.replace(placeholder, value)
    assert not re.search(r"\$\{[A-Za-z]", text), "a CloudFormation placeholder is left"
    return text


def deployer_state(name: str) -> dict[str, Any]:
    states: dict[str, Any] = json.loads(deployer_definition())["States"]
    return dict(states[name])
