"""The CloudFormation seam for CodePipeline pipelines and CodeBuild projects (harness/seams/cfn_pipeline.py).

What AWS documents and these tests hold the seam to:
- CloudFormation template reference, "AWS::CodePipeline::Pipeline", Return values: `Ref` returns the
  pipeline's name; `Fn::GetAtt` `Version` returns its version. UpdatePipeline (API reference): "the
  pipeline version ... incremented by 1" on each update; a pipeline's version starts at 1.
- CloudFormation template reference, "AWS::CodeBuild::Project", Return values: `Ref` returns the
  project's name; `Fn::GetAtt` `Arn` returns its ARN (`arn:aws:codebuild:REGION:ACCOUNT:project/NAME`).
- Both resource provider schemas (cfn-lint's copies, `createOnlyProperties: ["/properties/Name"]`): a
  new Name replaces the resource; any other change is an update in place.
- GetPipeline / BatchGetProjects (API references): the structure in the API's member names; action
  configuration values are strings.
"""

from __future__ import annotations

import json
from typing import Any

from harness.emulator import ACCOUNT_ID, EmbeddedEmulator
from harness.seams import cfn_pipeline

CONNECTION = "arn:aws:codestar-connections:us-east-1:123456789012:connection/x"


def _template(
    pipeline_name: str = "seam-pipeline", project_name: str = "seam-build", image: str = "img:1"
) -> dict[str, Any]:
    return {
        "Parameters": {
            "Branch": {"Type": "String", "Default": "main"},
            "UseGitHub": {"Type": "String", "Default": "no"},
        },
        "Conditions": {"GitHub": {"Fn::Equals": [{"Ref": "UseGitHub"}, "yes"]}},
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket"},
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                # moto's create_pipeline reads one service name here (docs/FACTS.md)
                                "Principal": {"Service": "codepipeline.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                },
            },
            "Project": {
                "Type": "AWS::CodeBuild::Project",
                "Properties": {
                    "Name": project_name,
                    "ServiceRole": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Source": {"Type": "CODEPIPELINE", "BuildSpec": "ci/buildspec.yml"},
                    "Artifacts": {"Type": "CODEPIPELINE"},
                    "Environment": {
                        "Type": "LINUX_CONTAINER",
                        "ComputeType": "BUILD_GENERAL1_SMALL",
                        "Image": image,
                        "PrivilegedMode": "true",
                        "EnvironmentVariables": [{"Name": "BUCKET", "Value": {"Ref": "Bucket"}}],
                    },
                    "Cache": {"Type": "LOCAL", "Modes": ["LOCAL_CUSTOM_CACHE"]},
                    "TimeoutInMinutes": 30,
                },
            },
            "Pipeline": {
                "Type": "AWS::CodePipeline::Pipeline",
                "Properties": {
                    "Name": pipeline_name,
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "ArtifactStore": {"Type": "S3", "Location": {"Ref": "Bucket"}},
                    "Stages": [
                        {
                            "Name": "Source",
                            "Actions": [
                                {
                                    "Fn::If": [
                                        "GitHub",
                                        {
                                            "Name": "Source",
                                            "ActionTypeId": {
                                                "Category": "Source",
                                                "Owner": "AWS",
                                                "Provider": "CodeStarSourceConnection",
                                                "Version": "1",
                                            },
                                            "Configuration": {
                                                "FullRepositoryId": "me/repo",
                                                "BranchName": {"Ref": "Branch"},
                                                "DetectChanges": True,
                                                "ConnectionArn": CONNECTION,
                                            },
                                            "OutputArtifacts": [{"Name": "Src"}],
                                        },
                                        {
                                            "Name": "Source",
                                            "ActionTypeId": {
                                                "Category": "Source",
                                                "Owner": "AWS",
                                                "Provider": "CodeCommit",
                                                "Version": "1",
                                            },
                                            "Configuration": {
                                                "RepositoryName": "repo",
                                                "BranchName": {"Ref": "Branch"},
                                                "PollForSourceChanges": False,
                                            },
                                            "OutputArtifacts": [{"Name": "Src"}],
                                        },
                                    ]
                                }
                            ],
                        },
                        {
                            "Name": "Build",
                            "Actions": [
                                {
                                    "Name": "Build",
                                    "ActionTypeId": {
                                        "Category": "Build",
                                        "Owner": "AWS",
                                        "Provider": "CodeBuild",
                                        "Version": 1,
                                    },
                                    "Configuration": {"ProjectName": {"Ref": "Project"}},
                                    "InputArtifacts": [{"Name": "Src"}],
                                    "RunOrder": "1",
                                }
                            ],
                        },
                    ],
                    "Tags": [{"Key": "team", "Value": "ml"}],
                },
            },
        },
        "Outputs": {
            "PipelineRef": {"Value": {"Ref": "Pipeline"}},
            "PipelineVersion": {"Value": {"Fn::GetAtt": ["Pipeline", "Version"]}},
            "ProjectRef": {"Value": {"Ref": "Project"}},
            "ProjectArn": {"Value": {"Fn::GetAtt": ["Project", "Arn"]}},
        },
    }


def _change(
    client: Any, stack: str, kind: str, template: dict[str, Any], **parameters: str
) -> dict[str, str]:
    """Creates and executes one change set; returns the stack's outputs."""
    change_set = client.create_change_set(
        StackName=stack,
        ChangeSetName=f"cs-{len(client.list_change_sets(StackName=stack)['Summaries'])}"
        if kind == "UPDATE"
        else "cs",
        ChangeSetType=kind,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    client.execute_change_set(ChangeSetName=change_set["Id"], StackName=stack)
    described = client.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def test_moto_picks_up_both_models() -> None:
    from moto.cloudformation import parsing

    model_map = parsing.get_model_map()
    assert model_map["AWS::CodePipeline::Pipeline"] is cfn_pipeline.CfnPipeline
    assert model_map["AWS::CodeBuild::Project"] is cfn_pipeline.CfnProject


def test_create_update_and_delete_through_change_sets(emulator: EmbeddedEmulator) -> None:
    cloudformation = emulator.client("cloudformation")
    codepipeline, codebuild = emulator.client("codepipeline"), emulator.client("codebuild")

    outputs = _change(cloudformation, "seam-cp", "CREATE", _template())
    assert outputs == {
        "PipelineRef": "seam-pipeline",
        "PipelineVersion": "1",
        "ProjectRef": "seam-build",
        "ProjectArn": f"arn:aws:codebuild:us-east-1:{ACCOUNT_ID}:project/seam-build",
    }
    resources = cloudformation.describe_stack_resources(StackName="seam-cp")["StackResources"]
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    assert physical["Pipeline"] == "seam-pipeline" and physical["Project"] == "seam-build"

    answer = codepipeline.get_pipeline(name="seam-pipeline")
    pipeline = answer["pipeline"]
    bucket = physical["Bucket"]
    assert pipeline["artifactStore"] == {"type": "S3", "location": bucket}
    assert pipeline["roleArn"].startswith(f"arn:aws:iam::{ACCOUNT_ID}:role/")
    source = pipeline["stages"][0]["actions"][0]
    assert source["actionTypeId"] == {
        "category": "Source",
        "owner": "AWS",
        "provider": "CodeCommit",
        "version": "1",
    }
    assert source["configuration"] == {
        "RepositoryName": "repo",
        "BranchName": "main",
        "PollForSourceChanges": "false",
    }
    build = pipeline["stages"][1]["actions"][0]
    assert build["configuration"] == {"ProjectName": "seam-build"} and build["runOrder"] == 1
    assert build["actionTypeId"]["version"] == "1"
    assert answer["metadata"]["pipelineArn"] == f"arn:aws:codepipeline:us-east-1:{ACCOUNT_ID}:seam-pipeline"
    assert codepipeline.list_tags_for_resource(resourceArn=answer["metadata"]["pipelineArn"])["tags"] == [
        {"key": "team", "value": "ml"}
    ]

    (project,) = codebuild.batch_get_projects(names=["seam-build"])["projects"]
    assert project["source"] == {"type": "CODEPIPELINE", "buildspec": "ci/buildspec.yml"}
    assert project["environment"]["privilegedMode"] is True
    assert project["environment"]["environmentVariables"] == [
        {"name": "BUCKET", "value": bucket, "type": "PLAINTEXT"}
    ]
    assert project["cache"] == {"type": "LOCAL", "modes": ["LOCAL_CUSTOM_CACHE"]}
    assert project["timeoutInMinutes"] == 30
    assert project["serviceRole"] == pipeline["roleArn"]

    # An update in place: a parameter changes the pipeline (version 2), a property the project.
    outputs = _change(
        cloudformation, "seam-cp", "UPDATE", _template(image="img:2"), Branch="release", UseGitHub="yes"
    )
    assert outputs["PipelineVersion"] == "2" and outputs["PipelineRef"] == "seam-pipeline"
    source = codepipeline.get_pipeline(name="seam-pipeline")["pipeline"]["stages"][0]["actions"][0]
    assert source["actionTypeId"]["provider"] == "CodeStarSourceConnection"
    assert (
        source["configuration"]["BranchName"] == "release"
        and source["configuration"]["DetectChanges"] == "true"
    )
    (project,) = codebuild.batch_get_projects(names=["seam-build"])["projects"]
    assert project["environment"]["image"] == "img:2"

    # A new Name replaces: the new pipeline and project exist, the old ones are gone.
    outputs = _change(cloudformation, "seam-cp", "UPDATE", _template("seam-pipeline-2", "seam-build-2"))
    assert outputs["PipelineRef"] == "seam-pipeline-2" and outputs["PipelineVersion"] == "1"
    assert outputs["ProjectArn"].endswith(":project/seam-build-2")
    names = [p["name"] for p in codepipeline.list_pipelines()["pipelines"]]
    assert "seam-pipeline-2" in names and "seam-pipeline" not in names
    assert codebuild.batch_get_projects(names=["seam-build"])["projects"] == []

    # A change set that removes the resources deletes them; so does deleting the stack.
    without = _template("seam-pipeline-2", "seam-build-2")
    del without["Resources"]["Pipeline"]
    without["Outputs"] = {"ProjectRef": {"Value": {"Ref": "Project"}}}
    _change(cloudformation, "seam-cp", "UPDATE", without)
    assert "seam-pipeline-2" not in [p["name"] for p in codepipeline.list_pipelines()["pipelines"]]
    cloudformation.delete_stack(StackName="seam-cp")
    assert "seam-build-2" not in codebuild.list_projects()["projects"]


def test_api_shape_camel_cases_members_but_not_configuration_keys() -> None:
    shaped = cfn_pipeline.api_shape(
        {
            "Source": {"BuildSpec": "b.yml", "GitCloneDepth": 1},
            "Configuration": {"UserParameters": {"a": 1}, "Flag": True},
        }
    )
    assert shaped == {
        "source": {"buildspec": "b.yml", "gitCloneDepth": 1},
        "configuration": {"UserParameters": '{"a":1}', "Flag": "true"},
    }
