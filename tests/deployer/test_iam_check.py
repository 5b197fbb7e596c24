"""The static IAM check (deployer.iam_check, `mlops check-iam`): today's definitions kept from before the
fix give a finding for each deploy blocker the review found; the fixed ones give none; removing one permission
from any role of a copy of the template is found, naming the role, the action and the rule's source.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deployer import compile as compiler
from deployer import iam_check
from mlops.cli import app

REPO = Path(__file__).resolve().parents[2]
BEFORE = Path(__file__).resolve().parent / "fixtures" / "before"


def _today() -> list[iam_check.Finding]:
    return iam_check.check(
        compiler.render_platform(),
        compiler.render_api(),
        buildspec_text=(REPO / "deployer" / "buildspec.yml").read_text(encoding="utf-8"),
        dockerfile_text=(REPO / "container" / "Dockerfile").read_text(encoding="utf-8"),
    )


def test_the_fixed_definitions_give_no_finding() -> None:
    assert [str(finding) for finding in _today()] == []


def test_the_definitions_before_the_fix_give_a_finding_for_each_blocker() -> None:
    findings = iam_check.check(
        compiler.render_platform(template=iam_check.load_yaml(BEFORE / "platform.yaml")),
        iam_check.load_yaml(BEFORE / "api.yaml"),
        buildspec_text=(BEFORE / "buildspec.yml").read_text(encoding="utf-8"),
        dockerfile_text=(BEFORE / "Dockerfile").read_text(encoding="utf-8"),
    )
    found = {(finding.subject, finding.missing) for finding in findings}
    # The API stack would roll back: CloudFormation's own handler permissions.
    for action in (
        "lambda:GetFunctionCodeSigningConfig",
        "lambda:GetRuntimeManagementConfig",
        "lambda:GetFunctionRecursionConfig",
        "lambda:PutFunctionRecursionConfig",
        "s3:GetObjectVersion",
        "lambda:GetPolicy",
    ):
        assert ("ApiStackRole", action) in found, action
    # Roles thinner than AWS documents.
    assert ("StateMachineRole", "sagemaker:ListTags") in found
    assert ("PipelineRole", "s3:GetBucketAcl") in found and ("PipelineRole", "s3:GetBucketLocation") in found
    assert ("BuildRole", "s3:GetObjectVersion") in found
    # An upper-case endpoint name breaks IAM.
    assert any(s == "StateMachineRole" and "EndpointName admits upper case" in m for s, m in found)
    # A commit starts nothing; the image does not build on CodeBuild.
    assert any(s == "Pipeline" and "EventBridge rule" in m for s, m in found)
    assert any(s == "deployer/buildspec.yml" and "runtime-versions" in m for s, m in found)
    assert any(s == "container/Dockerfile" and "mlops-base:bookworm" in m for s, m in found)
    # The code changed with the fix (ROLLBACK_COMPLETE is deleted): the old role cannot delete the stack.
    assert ("PublishApiRole", "cloudformation:DeleteStack") in found
    sources = {finding.source for finding in findings if finding.subject == "ApiStackRole"}
    assert sources == {
        f"CloudFormation resource provider schema {kind} handlers.create/read/update/delete.permissions "
        "(cfn-lint data)"
        for kind in ("AWS::Lambda::Function", "AWS::Lambda::Permission")
    }


def _without(template: dict[str, Any], role: str, action: str) -> dict[str, Any]:
    """A copy of the template whose `role` no longer lists `action` in any inline policy statement."""
    changed = copy.deepcopy(template)
    removed = 0
    for policy in changed["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            candidates = [statement] if "Fn::If" not in statement else statement["Fn::If"][1:]
            for item in candidates:
                actions = item["Action"] if isinstance(item["Action"], list) else [item["Action"]]
                if action in actions:
                    item["Action"] = [a for a in actions if a != action] or ["none:Nothing"]
                    removed += 1
    assert removed, f"{role} does not list {action}"
    return changed


REMOVALS = [
    ("SageMakerExecutionRole", "s3:GetObject", "SageMaker developer guide"),
    ("SageMakerExecutionRole", "ecr:GetAuthorizationToken", "SageMaker developer guide"),
    ("StateMachineRole", "sagemaker:CreateTrainingJob", "Step Functions developer guide"),
    ("StateMachineRole", "iam:PassRole", "Step Functions developer guide"),
    ("StateMachineRole", "events:PutRule", "Step Functions developer guide"),
    ("StateMachineRole", "sagemaker:DeleteEndpoint", "aws-sdk:sagemaker:deleteEndpoint"),
    ("StartTrainingRole", "states:StartExecution", "code: deployer.lambdas.start_training"),
    ("StartTrainingRole", "s3:ListBucket", "list_objects_v2"),
    ("StartTrainingRole", "sqs:SendMessage", "dead-letter queue"),
    ("RegisterModelRole", "dynamodb:PutItem", "code: deployer.lambdas.register_model"),
    ("RegisterModelRole", "codepipeline:GetJobDetails", "code: deployer.lambdas.register_model"),
    ("ApiProxyRole", "sagemaker:InvokeEndpoint", "code: deployer.lambdas.api_proxy"),
    ("ApiStackRole", "lambda:CreateFunction", "AWS::Lambda::Function handlers"),
    ("ApiStackRole", "apigateway:POST", "AWS::ApiGateway::"),
    ("ApiStackRole", "iam:PassRole", "AWS::Lambda::Function handlers"),
    ("PublishApiRole", "cloudformation:CreateStack", "code: deployer.lambdas.publish_api"),
    ("PublishApiRole", "sagemaker:UpdateEndpoint", "code: deployer.lambdas.publish_api"),
    ("BuildRole", "ecr:PutImage", "Amazon ECR user guide"),
    ("BuildRole", "logs:PutLogEvents", "CodeBuild user guide"),
    ("PipelineRole", "codebuild:StartBuild", "CodePipeline user guide"),
    ("PipelineRole", "lambda:InvokeFunction", "CodePipeline user guide"),
    ("PipelineRole", "codecommit:GetBranch", "CodePipeline user guide"),
    ("SourceEventRole", "codepipeline:StartPipelineExecution", "EventBridge user guide"),
]


@pytest.mark.parametrize(("role", "action", "source"), REMOVALS)
def test_removing_a_permission_any_role_needs_is_found(role: str, action: str, source: str) -> None:
    platform = _without(compiler.load_template("platform"), role, action)
    findings = iam_check.check(compiler.render_platform(template=platform), compiler.render_api())
    matching = [f for f in findings if f.subject == role and f.missing == action]
    assert matching, [str(f) for f in findings]
    assert any(source in finding.source for finding in matching), [f.source for f in matching]


def test_every_role_of_the_templates_is_covered_by_a_removal_test() -> None:
    platform = compiler.load_template("platform")
    roles = {name for name, r in platform["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == {role for role, _, _ in REMOVALS}


def test_a_github_source_needs_the_connection_not_codecommit() -> None:
    """With SourceProvider CodeStarConnection the pipeline role needs codestar-connections:UseConnection
    on the connection (and no CodeCommit rule exists to check)."""
    arn = "arn:aws:codestar-connections:us-east-1:123456789012:connection/abc"
    parameters = {"SourceProvider": "CodeStarConnection", "ConnectionArn": arn, "FullRepositoryId": "o/r"}
    assert iam_check.check(compiler.render_platform(), compiler.render_api(), parameters) == []
    platform = _without(
        compiler.load_template("platform"), "PipelineRole", "codestar-connections:UseConnection"
    )
    findings = iam_check.check(compiler.render_platform(template=platform), compiler.render_api(), parameters)
    assert [(f.subject, f.missing, f.resource) for f in findings] == [
        ("PipelineRole", "codestar-connections:UseConnection", arn)
    ]


def test_the_lambdas_calls_are_read_from_their_code() -> None:
    """botocore's operation names, the IAM action named after them (signing name `states` for Step
    Functions), except ListObjectsV2, which S3 authorizes as s3:ListBucket (Service Authorization
    Reference, "Actions defined by Amazon S3")."""
    actions = {call.action for call in iam_check.lambda_calls("deployer.lambdas.start_training.handler")}
    assert actions == {
        "codepipeline:PutJobFailureResult",
        "codepipeline:PutJobSuccessResult",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "states:DescribeExecution",
        "states:StartExecution",
    }


def test_a_lambda_of_another_author_is_read_as_well(tmp_path: Path) -> None:
    package = tmp_path / "deployer" / "extra"
    package.mkdir(parents=True)
    (package / "helper.py").write_text("def put(table):\n    table.put_item(TableName='t', Item={})\n")
    (package / "fn.py").write_text(
        "import boto3\nfrom deployer.extra.helper import put\n\n"
        "def handler(event, context):\n    db = boto3.client('dynamodb')\n    put(db)\n"
        "    boto3.client('sqs').send_message(QueueUrl='q', MessageBody='m')\n"
    )
    calls = iam_check.lambda_calls("deployer.extra.fn.handler", tmp_path)
    assert {(c.action, c.module) for c in calls} == {
        ("dynamodb:PutItem", "deployer.extra.helper"),
        ("sqs:SendMessage", "deployer.extra.fn"),
    }


def test_conditional_handler_permissions_apply_only_with_their_property() -> None:
    plain = iam_check.handler_permissions("AWS::Lambda::Function", {"Role": "r"})
    assert "lambda:CreateFunction" in plain and "lambda:GetFunctionRecursionConfig" in plain
    assert not any(p.startswith(("ec2:", "kms:")) for p in plain)
    in_vpc = iam_check.handler_permissions("AWS::Lambda::Function", {"VpcConfig": {"SubnetIds": ["s"]}})
    assert {"ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeNetworkInterfaces"} <= set(
        in_vpc
    )
    keyed = iam_check.handler_permissions("AWS::Lambda::Function", {"KmsKeyArn": "k"})
    assert "kms:Decrypt" in keyed


def test_the_command_exits_1_with_findings_2_on_bad_input_0_when_clean(tmp_path: Path) -> None:
    runner = CliRunner()
    clean = runner.invoke(app, ["check-iam"])
    assert clean.exit_code == 0, clean.output
    before = runner.invoke(
        app, ["check-iam", "--platform", str(BEFORE / "platform.yaml"), "--api", str(BEFORE / "api.yaml")]
    )
    assert before.exit_code == 1 and "ApiStackRole: lambda:GetFunctionCodeSigningConfig" in before.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("Resources: [1\n")
    bad = runner.invoke(app, ["check-iam", "--platform", str(broken)])
    assert bad.exit_code == 2 and "cannot read its input" in bad.output
    assert runner.invoke(app, ["check-iam", "--parameter", "nope"]).exit_code == 2
