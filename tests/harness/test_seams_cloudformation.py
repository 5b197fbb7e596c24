"""The CloudFormation seam: a stack deployed through change sets shows its executed template's outputs."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto.cloudformation import models as cloudformation_models

from harness.emulator import EmbeddedEmulator
from harness.seams import cloudformation as seam

TEMPLATE = {
    "Parameters": {"Suffix": {"Type": "String"}},
    "Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "seam-bucket"}}},
    "Outputs": {"BucketName": {"Value": {"Ref": "Bucket"}}, "Suffix": {"Value": {"Ref": "Suffix"}}},
}


@pytest.fixture(scope="module")
def cloudformation(emulator: EmbeddedEmulator) -> Any:
    return emulator.client("cloudformation")


def _execute(client: Any, kind: str, suffix: str) -> dict[str, str]:
    change_set = client.create_change_set(
        StackName="seam-test",
        ChangeSetName=f"cs-{suffix}",
        ChangeSetType=kind,
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": "Suffix", "ParameterValue": suffix}],
    )
    client.execute_change_set(ChangeSetName=change_set["Id"], StackName="seam-test")
    stack = client.describe_stacks(StackName="seam-test")["Stacks"][0]
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}


def test_the_seam_wraps_moto_change_set_apply(cloudformation: Any) -> None:
    assert cloudformation_models.ChangeSet.apply is seam._apply
    assert seam._moto_apply is not seam._apply


def test_outputs_and_parameters_follow_each_executed_change_set(cloudformation: Any) -> None:
    # Without the seam a created stack shows no outputs at all, and an update the previous ones.
    assert _execute(cloudformation, "CREATE", "one") == {"BucketName": "seam-bucket", "Suffix": "one"}
    assert _execute(cloudformation, "UPDATE", "two") == {"BucketName": "seam-bucket", "Suffix": "two"}
    stack = cloudformation.describe_stacks(StackName="seam-test")["Stacks"][0]
    assert stack["Parameters"] == [{"ParameterKey": "Suffix", "ParameterValue": "two"}]


def _queue_template(timeout: int) -> str:
    queue = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": "seam-queue", "VisibilityTimeout": timeout},
    }
    return json.dumps({"Resources": {"Queue": queue}, "Outputs": {"Timeout": {"Value": str(timeout)}}})


def test_the_seam_wraps_moto_stack_creation_and_update(cloudformation: Any) -> None:
    assert cloudformation_models.Stack.create_resources is seam._create_resources
    assert cloudformation_models.Stack.update is seam._update


def test_an_update_the_stack_role_may_not_make_rolls_back_to_the_previous_template(
    cloudformation: Any,
) -> None:
    """CloudFormation user guide, "CloudFormation service role": UpdateStack with RoleARN runs every
    resource handler as that role; AWS::SQS::Queue's update handler calls sqs:SetQueueAttributes (its
    provider schema's handlers.update.permissions). Without it the resource is UPDATE_FAILED and the
    stack ends UPDATE_ROLLBACK_COMPLETE on its previous template and outputs ("Stack status codes")."""
    iam = boto3.client(
        "iam",
        endpoint_url=cloudformation.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudformation.amazonaws.com"}}]}
    role = iam.create_role(RoleName="seam-stack-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    create_only = ["sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:ListQueueTags"]
    statement: dict[str, Any] = {"Effect": "Allow", "Action": create_only, "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    iam.put_role_policy(RoleName="seam-stack-role", PolicyName="queue", PolicyDocument=json.dumps(policy))
    # sqs:TagQueue is missing too: the create handler lists it, so creation already fails.
    cloudformation.create_stack(StackName="seam-role", TemplateBody=_queue_template(30), RoleARN=role["Arn"])
    stack = cloudformation.describe_stacks(StackName="seam-role")["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    cloudformation.delete_stack(StackName="seam-role")

    statement["Action"] = [*create_only, "sqs:TagQueue"]
    iam.put_role_policy(RoleName="seam-stack-role", PolicyName="queue", PolicyDocument=json.dumps(policy))
    cloudformation.create_stack(StackName="seam-role", TemplateBody=_queue_template(30), RoleARN=role["Arn"])
    assert (
        cloudformation.describe_stacks(StackName="seam-role")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    )

    cloudformation.update_stack(StackName="seam-role", TemplateBody=_queue_template(60), RoleARN=role["Arn"])
    stack = cloudformation.describe_stacks(StackName="seam-role")["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert stack["Outputs"] == [{"OutputKey": "Timeout", "OutputValue": "30"}]
    events = cloudformation.describe_stack_events(StackName="seam-role")["StackEvents"]
    [failed] = [e for e in events if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert failed["LogicalResourceId"] == "Queue"
    assert (
        "assumed-role/seam-stack-role/AWSCloudFormation is not authorized to perform: sqs:SetQueueAttributes"
        in failed["ResourceStatusReason"]
    )
    assert events[0]["ResourceStatus"] == "UPDATE_ROLLBACK_COMPLETE"


def test_fn_sub_with_variables_keeps_double_dollars_as_aws_does(cloudformation: Any) -> None:
    """CloudFormation's Fn::Sub has one escape, `${!Literal}` (user guide, "Fn::Sub"); `$$` is two
    dollars, as a Step Functions definition's context paths (`$$.Execution.Name`) need. moto's variable
    form read `$$` as an escaped `$` (string.Template); the seam substitutes the variables itself."""
    assert seam._moto_clean_json is not seam._clean_json
    text = "$$.Execution.Name ${Device} ${!Literal} ${AWS::Region} ${Kind}"
    template = {
        "Parameters": {"Kind": {"Type": "String"}},
        "Conditions": {"IsGpu": {"Fn::Equals": [{"Ref": "Kind"}, "ml.g5.xlarge"]}},
        "Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "seam-sub"}}},
        "Outputs": {"Text": {"Value": {"Fn::Sub": [text, {"Device": {"Fn::If": ["IsGpu", "cuda", "cpu"]}}]}}},
    }
    outputs = {}
    for kind in ("ml.m5.large", "ml.g5.xlarge"):
        name = f"seam-sub-{kind.replace('.', '-')}"
        cloudformation.create_stack(
            StackName=name,
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": "Kind", "ParameterValue": kind}],
        )
        stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        outputs[kind] = {item["OutputKey"]: item["OutputValue"] for item in stack["Outputs"]}["Text"]
        cloudformation.delete_stack(StackName=name)
    assert outputs == {
        "ml.m5.large": "$$.Execution.Name cpu ${Literal} us-east-1 ml.m5.large",
        "ml.g5.xlarge": "$$.Execution.Name cuda ${Literal} us-east-1 ml.g5.xlarge",
    }
