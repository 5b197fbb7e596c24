"""The deploy blockers a review against AWS's documentation found, each checked on the definitions.

Each test names the document and section its rule comes from. The templates before the fix are kept in
tests/deployer/fixtures/before/ (test_iam_check.py shows the static check finding these there).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from deployer import compile as compiler

REPO = Path(__file__).resolve().parents[2]


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in template["Resources"][role]["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statements += [s for s in statement["Fn::If"][1:] if isinstance(s, dict)]
            else:
                statements.append(statement)
    return statements


def _actions(template: dict[str, Any], role: str) -> set[str]:
    found: set[str] = set()
    for statement in _statements(template, role):
        action = statement["Action"]
        found |= {action} if isinstance(action, str) else set(action)
    return found


def test_the_dockerfile_defaults_to_a_public_base_image_codebuild_can_pull() -> None:
    """Amazon ECR Public Gallery, "Docker Official Images" (public.ecr.aws/docker/library/...): pulled
    without a login or Docker Hub's rate limit. The CodeBuild project passes no BASE_IMAGE, so the
    Dockerfile's default is what CodeBuild builds on."""
    dockerfile = (REPO / "container" / "Dockerfile").read_text(encoding="utf-8")
    [default] = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert default == "public.ecr.aws/docker/library/python:3.11-slim-bookworm"
    buildspec = (REPO / "deployer" / "buildspec.yml").read_text(encoding="utf-8")
    assert "BASE_IMAGE" not in buildspec


def test_the_build_project_defines_what_the_build_needs() -> None:
    """CodeBuild user guide, "Docker images provided by CodeBuild" (standard:7.0 offers python 3.11) and
    "Runtime versions"; privileged mode is required to run Docker in the build ("Docker in custom image
    sample" / ProjectEnvironment.privilegedMode). The buildspec pins the image's Python."""
    template = compiler.render_platform()
    environment = template["Resources"]["BuildProject"]["Properties"]["Environment"]
    assert environment["Image"] == "aws/codebuild/standard:7.0"
    assert environment["PrivilegedMode"] is True
    names = {variable["Name"] for variable in environment["EnvironmentVariables"]}
    assert names == {"REGISTRY_HOST", "REGISTRY_LOGIN", "IMAGE_REPO_NAME", "ARTIFACT_BUCKET"}
    buildspec = yaml.safe_load((REPO / "deployer" / "buildspec.yml").read_text(encoding="utf-8"))
    assert buildspec["phases"]["install"]["runtime-versions"] == {"python": "3.11"}


def test_a_codecommit_commit_reaches_the_pipeline_through_an_eventbridge_rule() -> None:
    """CodePipeline user guide, "Valid settings for the PollForSourceChanges parameter" (with it false,
    create the change detection resources) and "Create an EventBridge rule for a CodeCommit source":
    source aws.codecommit, detail-type "CodeCommit Repository State Change", the branch's reference
    events, the pipeline as target with a role EventBridge assumes to call StartPipelineExecution."""
    template = compiler.render_platform()
    rule = template["Resources"]["SourceChangedRule"]
    assert rule["Condition"] == "UseCodeCommit"
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.codecommit"]
    assert pattern["detail-type"] == ["CodeCommit Repository State Change"]
    assert pattern["detail"]["event"] == ["referenceCreated", "referenceUpdated"]
    assert pattern["detail"]["referenceName"] == [{"Ref": "BranchName"}]
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"]["Fn::Sub"].endswith(":${ProjectName}-pipeline")
    assert target["RoleArn"] == {"Fn::GetAtt": ["SourceEventRole", "Arn"]}
    assert _actions(template, "SourceEventRole") == {"codepipeline:StartPipelineExecution"}
    trust = template["Resources"]["SourceEventRole"]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}


def test_a_github_source_detects_changes_through_its_connection() -> None:
    """CodePipeline user guide, "CodeStarSourceConnection for Bitbucket Cloud, GitHub, ...":
    DetectChanges (default true) starts the pipeline on a push; the role needs
    codestar-connections:UseConnection."""
    template = compiler.render_platform()
    [source] = template["Resources"]["Pipeline"]["Properties"]["Stages"][0]["Actions"]
    _condition, codecommit, connection = source["Fn::If"]
    assert codecommit["ActionTypeId"]["Provider"] == "CodeCommit"
    assert connection["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert connection["Configuration"]["DetectChanges"] is True
    assert "codestar-connections:UseConnection" in _actions(template, "PipelineRole")


def test_the_thin_roles_have_what_aws_documents() -> None:
    """Step Functions developer guide, "IAM policies for Amazon SageMaker" (sagemaker:ListTags on "*");
    CodePipeline user guide, "Manage the CodePipeline service role" (s3:GetBucketAcl,
    s3:GetBucketLocation); CodeBuild user guide, "Allow CodeBuild to interact with other AWS services"
    (s3:GetObjectVersion for the input artifact)."""
    template = compiler.render_platform()
    list_tags = [
        s for s in _statements(template, "StateMachineRole") if s["Action"] == ["sagemaker:ListTags"]
    ]
    assert [s["Resource"] for s in list_tags] == ["*"]
    assert {"s3:GetBucketAcl", "s3:GetBucketLocation"} <= _actions(template, "PipelineRole")
    assert {"s3:GetObjectVersion", "s3:GetBucketAcl", "s3:GetBucketLocation"} <= _actions(
        template, "BuildRole"
    )


def test_endpoint_names_are_lower_case_only() -> None:
    """IAM user guide, "IAM identifiers" (ARNs are matched case-sensitively) and SageMaker's ARNs, which
    carry endpoint names in lower case: an upper-case EndpointName would never match its policies."""
    pattern = re.compile(compiler.render_platform()["Parameters"]["EndpointName"]["AllowedPattern"])
    api_pattern = re.compile(compiler.render_api()["Parameters"]["EndpointName"]["AllowedPattern"])
    for accepted in ("gptneo-intent", "a", "x" * 53, "model-2"):
        assert pattern.match(accepted), accepted
    for refused in ("GptNeo", "gptneo-Intent", "-a", "a-", "x" * 54):
        assert not pattern.match(refused), refused
    assert api_pattern.match("gptneo-intent-candidate") and not api_pattern.match("Gptneo")
