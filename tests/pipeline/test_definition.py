"""The pipeline's definition, read from the deployer's own platform template and resolved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.emulator import ACCOUNT_ID, EmbeddedEmulator
from harness.pipeline import cfn_yaml
from harness.pipeline.definition import (
    DefinitionError,
    codebuild_projects_from_template,
    load_platform_template,
    pipeline_from_template,
)
from harness.pipeline.resolve import ResolveError, StackContext, resolve


def _context(template: dict[str, Any], **parameters: str) -> StackContext:
    """A stack context built by hand: every resource's physical id is `phys-<logical id>` (synthetic)."""
    defaults = {
        name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec
    }
    types = {name: spec["Type"] for name, spec in template["Resources"].items()}
    context = StackContext(
        "platform",
        "us-east-1",
        ACCOUNT_ID,
        {**defaults, **parameters},
        {name: f"phys-{name}" for name in template["Resources"]},
        types,
    )
    from dataclasses import replace

    from harness.pipeline.resolve import evaluate_conditions

    return replace(context, conditions=evaluate_conditions(template, context))


def test_the_deployers_pipeline_reads_as_six_stages() -> None:
    template = load_platform_template()
    pipeline = pipeline_from_template(template, _context(template))

    assert [s.name for s in pipeline.stages] == [
        "Source",
        "Build",
        "Train",
        "Approve",
        "Register",
        "PublishApi",
    ]
    assert pipeline.name == "gptneo-intent-pipeline"
    assert pipeline.artifact_bucket == "phys-ArtifactBucket"
    keys = [a.action_type.key for s in pipeline.stages for a in s.actions]
    assert keys == [
        ("Source", "CodeCommit"),
        ("Build", "CodeBuild"),
        ("Invoke", "Lambda"),
        ("Approval", "Manual"),
        ("Invoke", "Lambda"),
        ("Invoke", "Lambda"),
    ]
    build = pipeline.action("Build", "BuildImage")
    assert build.input_artifacts == ("SourceOutput",)
    assert build.output_artifacts == ("BuildOutput",)
    assert build.namespace == "BuildVariables"
    train = pipeline.action("Train", "StartTraining")
    assert train.configuration["FunctionName"] == "phys-StartTrainingFunction"
    # CodePipeline's own variables stay for the runner to resolve per execution.
    assert (
        "#{TrainVariables.ExecutionArn}"
        in pipeline.action("Register", "RegisterModel").configuration["UserParameters"]
    )


def test_the_source_provider_parameter_switches_the_source_action() -> None:
    template = load_platform_template()
    context = _context(template, SourceProvider="CodeStarConnection", FullRepositoryId="me/repo")
    source = pipeline_from_template(template, context).stages[0].actions[0]
    assert source.action_type.key == ("Source", "CodeStarSourceConnection")
    assert source.configuration["FullRepositoryId"] == "me/repo"


def test_codebuild_project_from_the_template() -> None:
    template = load_platform_template()
    projects = codebuild_projects_from_template(template, _context(template))
    project = projects["gptneo-intent-image"]
    assert project.buildspec == "deployer/buildspec.yml"
    variables = {v.name: v.value for v in project.environment_variables}
    assert variables["REGISTRY_HOST"] == f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com"
    assert variables["IMAGE_REPO_NAME"] == "phys-ImageRepository"


def test_short_tags_load_as_long_form() -> None:
    loaded = cfn_yaml.loads(
        "A: !Ref X\nB: !GetAtt R.Arn\nC: !Sub '${X}-y'\nD: !If [Cond, !Ref X, !Ref 'AWS::NoValue']\n"
        "E: !Join ['-', [a, !Ref X]]\n"
    )
    assert loaded == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["R", "Arn"]},
        "C": {"Fn::Sub": "${X}-y"},
        "D": {"Fn::If": ["Cond", {"Ref": "X"}, {"Ref": "AWS::NoValue"}]},
        "E": {"Fn::Join": ["-", ["a", {"Ref": "X"}]]},
    }


def test_resolver_functions_and_errors() -> None:
    context = StackContext(
        "s",
        "eu-west-1",
        ACCOUNT_ID,
        {"Env": "dev"},
        {"Fn": "my-fn"},
        {"Fn": "AWS::Lambda::Function"},
        conditions={"IsDev": True},
    )
    value = {
        "Sub": {"Fn::Sub": "${AWS::Region}/${Env}/${Fn.Arn}/${!Literal}"},
        "SubVars": {"Fn::Sub": ["${A}-${Env}", {"A": {"Ref": "Fn"}}]},
        "If": {"Fn::If": ["IsDev", "yes", "no"]},
        "Gone": {"Fn::If": ["IsDev", {"Ref": "AWS::NoValue"}, "kept"]},
        "List": [{"Ref": "AWS::NoValue"}, {"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]}],
    }
    assert resolve(value, context) == {
        "Sub": f"eu-west-1/dev/arn:aws:lambda:eu-west-1:{ACCOUNT_ID}:function:my-fn/${{Literal}}",
        "SubVars": "my-fn-dev",
        "If": "yes",
        "List": ["b"],
    }
    with pytest.raises(ResolveError, match="no such parameter or resource"):
        resolve({"Ref": "Missing"}, context)
    with pytest.raises(ResolveError, match="cannot be resolved locally"):
        resolve({"Fn::GetAtt": ["Fn", "SnapStartResponse"]}, context)
    with pytest.raises(ResolveError, match="not supported"):
        resolve({"Fn::ImportValue": "x"}, context)


def test_pipeline_errors_name_the_problem() -> None:
    template = load_platform_template()
    context = _context(template)
    broken = json.loads(json.dumps(template))
    broken["Resources"]["Pipeline"]["Properties"]["Stages"][2]["Actions"][0]["InputArtifacts"] = [
        {"Name": "NoSuchArtifact"}
    ]
    with pytest.raises(DefinitionError, match="NoSuchArtifact"):
        pipeline_from_template(broken, context)
    with pytest.raises(DefinitionError, match="exactly one"):
        pipeline_from_template({"Resources": {}}, context)


TEMPLATE = """
Parameters:
  Prefix: {Type: String, Default: demo}
Resources:
  ArtifactBucket:
    Type: AWS::S3::Bucket
  Project:
    Type: AWS::CodeBuild::Project
    Properties:
      Name: !Sub "${Prefix}-build"
      ServiceRole: arn:aws:iam::123456789012:role/x
      Source: {Type: CODEPIPELINE}
      Artifacts: {Type: CODEPIPELINE}
      Environment: {Type: LINUX_CONTAINER, ComputeType: BUILD_GENERAL1_SMALL, Image: img}
Outputs:
  Bucket:
    Value: !Ref ArtifactBucket
"""


# moto's CloudFormation warns that it skips the CodeBuild project: exactly what this test is about.
@pytest.mark.filterwarnings("ignore:Tried to parse AWS..CodeBuild..Project:UserWarning")
def test_stack_context_from_the_emulators_cloudformation(tmp_path: Path) -> None:
    """A real stack in the embedded emulator; moto skips the CodeBuild project, its Name stands in."""
    template = cfn_yaml.loads(TEMPLATE)
    with EmbeddedEmulator() as emulator:
        cloudformation = emulator.client("cloudformation")
        cloudformation.create_stack(
            StackName="ctx",
            TemplateBody=TEMPLATE,
            Parameters=[{"ParameterKey": "Prefix", "ParameterValue": "x"}],
        )
        context = StackContext.from_cloudformation(cloudformation, "ctx", template, ACCOUNT_ID)
        bucket = emulator.client("s3").list_buckets()["Buckets"][0]["Name"]

    assert context.parameters["Prefix"] == "x"
    assert context.resources["ArtifactBucket"] == bucket
    assert context.outputs["Bucket"] == bucket
    assert resolve({"Ref": "Project"}, context) == "x-build"
