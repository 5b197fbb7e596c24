"""The pipeline's definition, read as the deployer's platform stack creates it in the emulator.

CloudFormation creates the pipeline and the CodeBuild project (harness/seams/cfn_pipeline.py); the
runner's definition is what GetPipeline and BatchGetProjects answer, its intrinsics resolved by moto's
CloudFormation (`Fn::If` on the source provider, `Ref`, `Fn::Sub`, `Fn::GetAtt`).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness.emulator import ACCOUNT_ID, EmbeddedEmulator
from harness.pipeline.definition import DefinitionError, codebuild_project_from_api, pipeline_from_api
from harness.pipeline.wiring import DeployedPipeline
from tests.pipeline.platform import deploy_platform


@pytest.fixture(scope="module")
def platforms(emulator: EmbeddedEmulator) -> tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline]:
    """The platform deployed twice: CodeCommit source (the default) and GitHub through a connection."""
    codecommit = deploy_platform(emulator, "defn")
    connection = deploy_platform(
        emulator,
        "defn-gh",
        SourceProvider="CodeStarConnection",
        FullRepositoryId="me/repo",
        ConnectionArn=f"arn:aws:codestar-connections:us-east-1:{ACCOUNT_ID}:connection/abc",
    )
    return emulator, codecommit, connection


def test_the_deployers_pipeline_reads_as_six_stages(
    platforms: tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline],
) -> None:
    emulator, deployed, _ = platforms
    pipeline = deployed.pipeline
    assert [s.name for s in pipeline.stages] == [
        "Source",
        "Build",
        "Train",
        "Approve",
        "Register",
        "PublishApi",
    ]
    assert pipeline.name == "defn-pipeline"
    outputs = emulator.client("cloudformation").describe_stacks(StackName="defn-platform")["Stacks"][0][
        "Outputs"
    ]
    by_key = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    assert pipeline.artifact_bucket == by_key["ArtifactBucketName"]
    assert by_key["PipelineName"] == "defn-pipeline" and by_key["BuildProjectName"] == "defn-image"
    assert pipeline.role_arn.startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/defn-platform-PipelineRole")
    keys = [a.action_type.key for s in pipeline.stages for a in s.actions]
    assert keys == [
        ("Source", "CodeCommit"),
        ("Build", "CodeBuild"),
        ("Invoke", "Lambda"),
        ("Approval", "Manual"),
        ("Invoke", "Lambda"),
        ("Invoke", "Lambda"),
    ]
    source = pipeline.action("Source", "Source")
    # CodePipeline keeps configuration values as strings (the template's YAML false included).
    assert source.configuration == {
        "RepositoryName": "gptneo-intent",
        "BranchName": "main",
        "PollForSourceChanges": "false",
    }
    build = pipeline.action("Build", "BuildImage")
    assert build.input_artifacts == ("SourceOutput",) and build.output_artifacts == ("BuildOutput",)
    assert build.namespace == "BuildVariables" and build.configuration["ProjectName"] == "defn-image"
    assert pipeline.action("Train", "StartTraining").configuration["FunctionName"] == "defn-start-training"
    # CodePipeline's own variables stay for the runner to resolve per execution.
    assert (
        "#{TrainVariables.ExecutionArn}"
        in pipeline.action("Register", "RegisterModel").configuration["UserParameters"]
    )


def test_the_source_provider_parameter_switches_the_source_action(
    platforms: tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline],
) -> None:
    _, _, connection = platforms
    source = connection.pipeline.stages[0].actions[0]
    assert source.action_type.key == ("Source", "CodeStarSourceConnection")
    assert source.configuration["FullRepositoryId"] == "me/repo"
    assert source.configuration["DetectChanges"] == "true"


def test_the_codebuild_project_as_batch_get_projects_answers(
    platforms: tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline],
) -> None:
    emulator, deployed, _ = platforms
    project = deployed.projects["defn-image"]
    assert project.buildspec == "deployer/buildspec.yml"
    assert project.image == "aws/codebuild/standard:7.0" and project.privileged_mode
    assert project.timeout_minutes == 60
    assert (project.cache_type, project.cache_modes) == (
        "LOCAL",
        ("LOCAL_DOCKER_LAYER_CACHE", "LOCAL_CUSTOM_CACHE"),
    )
    variables = {v.name: v.value for v in project.environment_variables}
    assert variables["REGISTRY_HOST"] == f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com"
    assert variables["IMAGE_REPO_NAME"] == "defn"
    bucket = emulator.client("cloudformation").describe_stack_resource(
        StackName="defn-platform", LogicalResourceId="ArtifactBucket"
    )["StackResourceDetail"]["PhysicalResourceId"]
    assert variables["ARTIFACT_BUCKET"] == bucket
    assert project.service_role.startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/defn-platform-BuildRole")


DECLARATION: dict[str, Any] = {
    "name": "p",
    "roleArn": "arn:aws:iam::123456789012:role/r",
    "artifactStore": {"type": "S3", "location": "bucket"},
    "stages": [
        {
            "name": "Source",
            "actions": [
                {
                    "name": "Source",
                    "actionTypeId": {
                        "category": "Source",
                        "owner": "AWS",
                        "provider": "CodeCommit",
                        "version": "1",
                    },
                    "configuration": {"RepositoryName": "r"},
                    "outputArtifacts": [{"name": "Out"}],
                }
            ],
        },
        {
            "name": "Build",
            "actions": [
                {
                    "name": "Build",
                    "actionTypeId": {
                        "category": "Build",
                        "owner": "AWS",
                        "provider": "CodeBuild",
                        "version": "1",
                    },
                    "configuration": {"ProjectName": "b"},
                    "inputArtifacts": [{"name": "Out"}],
                    "runOrder": 2,
                }
            ],
        },
    ],
}


def test_a_declaration_reads_into_typed_stages() -> None:
    pipeline = pipeline_from_api(DECLARATION)
    assert (pipeline.name, pipeline.artifact_bucket, pipeline.role_arn) == (
        "p",
        "bucket",
        "arn:aws:iam::123456789012:role/r",
    )
    assert pipeline.action("Build", "Build").run_order == 2
    assert pipeline.action("Build", "Build").action_type.key == ("Build", "CodeBuild")


def test_pipeline_errors_name_the_problem() -> None:
    broken = copy.deepcopy(DECLARATION)
    broken["stages"][1]["actions"][0]["inputArtifacts"] = [{"name": "NoSuchArtifact"}]
    with pytest.raises(DefinitionError, match="NoSuchArtifact"):
        pipeline_from_api(broken)
    with pytest.raises(DefinitionError, match="no stages"):
        pipeline_from_api({**DECLARATION, "stages": []})
    with pytest.raises(DefinitionError, match="artifact bucket"):
        pipeline_from_api({**DECLARATION, "artifactStore": {}})
    unknown = copy.deepcopy(DECLARATION)
    unknown["stages"][0]["actions"][0]["actionTypeId"]["category"] = "Teleport"
    with pytest.raises(DefinitionError, match="unknown action category 'Teleport'"):
        pipeline_from_api(unknown)
    with pytest.raises(DefinitionError, match="without a name"):
        codebuild_project_from_api({"environment": {}})
