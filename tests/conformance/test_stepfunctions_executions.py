"""Step Functions executions: what StartExecution does with a name that is taken (API Reference)."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from botocore.exceptions import ClientError

from tests.conformance.conftest import Target
from tests.harness.planes import ROLE_ARN, wait_until

# On AWS, CreateStateMachine needs a role that Step Functions can assume; a Pass-only machine needs no
# permissions. Without this variable the test runs against the harness only.
ROLE_ENV = "MLOPS_CONFORMANCE_SFN_ROLE_ARN"


@pytest.mark.aws_verified
def test_a_closed_executions_name_is_refused_and_a_running_ones_is_idempotent(target: Target) -> None:
    """Step Functions API Reference, StartExecution: "If StartExecution is called with the same name and
    input as a running execution, the call succeeds and return the same response as the original
    request. If the execution is closed or if the input is different, it returns a 400
    ExecutionAlreadyExists error. You can reuse names after 90 days." (Standard workflows.)"""
    role = os.environ.get(ROLE_ENV) if target.is_aws else ROLE_ARN
    if not role:
        pytest.skip(f"{ROLE_ENV} names the role for the state machine on AWS")
    sfn = target.client("stepfunctions")
    suffix = uuid.uuid4().hex[:8]
    definition = {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 3, "End": True}}}
    machine = sfn.create_state_machine(
        name=f"conformance-names-{suffix}", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    try:
        first = sfn.start_execution(stateMachineArn=machine, name="same", input="{}")
        again = sfn.start_execution(stateMachineArn=machine, name="same", input="{}")
        assert again["executionArn"] == first["executionArn"]
        with pytest.raises(ClientError) as other_input:
            sfn.start_execution(stateMachineArn=machine, name="same", input='{"other": 1}')
        assert other_input.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
        wait_until(
            lambda: sfn.describe_execution(executionArn=first["executionArn"])["status"],
            lambda status: status != "RUNNING",
            timeout=60,
            interval=0.5,
        )
        with pytest.raises(ClientError) as closed:
            sfn.start_execution(stateMachineArn=machine, name="same", input="{}")
        assert closed.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    finally:
        sfn.delete_state_machine(stateMachineArn=machine)
