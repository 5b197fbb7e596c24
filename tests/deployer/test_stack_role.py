"""The API stack's role (ApiStackRole) without a permission CloudFormation's handler needs: the stack fails.

publish-api creates `<prefix>-api` with `RoleARN` = ApiStackRole, so CloudFormation's resource handlers
act as that role (CloudFormation user guide, "CloudFormation service role"). The handler of
`AWS::Lambda::Function` calls what its resource provider schema lists under
`handlers.create.permissions`, `lambda:GetFunctionCodeSigningConfig` among them (cfn-lint's copy of the
schemas, `aws-lambda-function.json`). Without it, the resource is CREATE_FAILED with the handler's
message naming the assumed role (session `AWSCloudFormation`) and the action, and the stack rolls back
to ROLLBACK_COMPLETE (CloudFormation user guide, "Stack status codes").
"""

from __future__ import annotations

import pytest

from deployer.lambdas import publish_api
from harness.emulator import EmbeddedEmulator
from tests.deployer.conftest import PROJECT, LambdaContext, publish_api_environment
from tests.deployer.roles import role_without

REMOVED = "lambda:GetFunctionCodeSigningConfig"


@pytest.fixture
def handler_env(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, emulator: EmbeddedEmulator, platform: dict[str, str]
) -> dict[str, str]:
    """publish-api's environment as the platform stack deployed it, with a stack of this test's own."""
    variables = publish_api_environment(emulator, platform, monkeypatch)
    monkeypatch.setenv("API_STACK_NAME", "dtest-api-thin-role")
    return variables


def test_a_missing_handler_permission_fails_the_function_and_rolls_the_stack_back(
    emulator: EmbeddedEmulator, handler_env: dict[str, str]
) -> None:
    role_arn = handler_env["API_STACK_ROLE_ARN"]
    with (
        role_without(emulator, role_arn, REMOVED) as role_name,
        pytest.raises(publish_api.PublishError) as raised,
    ):
        publish_api.handler({}, LambdaContext())

    function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{PROJECT}-api-proxy"
    denial = (
        f"User: arn:aws:sts::123456789012:assumed-role/{role_name}/AWSCloudFormation is not authorized "
        f"to perform: {REMOVED} on resource: {function_arn} because no identity-based policy allows the "
        f"{REMOVED} action"
    )
    assert "API stack dtest-api-thin-role is ROLLBACK_COMPLETE" in str(raised.value)
    assert denial in str(raised.value)

    cloudformation = emulator.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName="dtest-api-thin-role")["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE" and not stack.get("Outputs")
    events = cloudformation.describe_stack_events(StackName="dtest-api-thin-role")["StackEvents"]
    statuses = [(e["LogicalResourceId"], e["ResourceStatus"]) for e in reversed(events)]
    assert statuses == [
        ("dtest-api-thin-role", "CREATE_IN_PROGRESS"),
        ("ProxyFunction", "CREATE_IN_PROGRESS"),
        ("ProxyFunction", "CREATE_FAILED"),
        ("dtest-api-thin-role", "ROLLBACK_IN_PROGRESS"),
        ("ProxyFunction", "DELETE_COMPLETE"),
        ("dtest-api-thin-role", "ROLLBACK_COMPLETE"),
    ]
    [failed] = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    reason = failed["ResourceStatusReason"]
    assert reason.startswith(
        f'Resource handler returned message: "{denial} (Service: Lambda, Status Code: 403'
    )
    assert reason.endswith("HandlerErrorCode: AccessDenied)")
