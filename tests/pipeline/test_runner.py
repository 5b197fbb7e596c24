"""The runner core end to end with real executors, against the embedded emulator.

The pipeline and its CodeBuild project are created by the emulator's CloudFormation (the seam
harness/seams/cfn_pipeline.py) and read back with GetPipeline and BatchGetProjects. Real: the git
source, the buildspec (run in bash), the artifact bucket (the emulator's S3), the CodePipeline job API
(the emulator's, harness.seams.codepipeline), the approval policies. The Lambda functions here are
local Python callables (the test's stand-in for deployed functions: they receive the job event and
report through the emulator's job API with boto3, as a deployed function does).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deployer.lambdas.pipeline_job import PipelineJob
from harness.emulator import ACCOUNT_ID, EmbeddedEmulator
from harness.pipeline.approval import ApprovalDecision, ApprovalRequest, ManualApprovalExecutor, auto_approve
from harness.pipeline.artifacts import ArtifactStore
from harness.pipeline.build import CodeBuildExecutor
from harness.pipeline.lambda_action import EmulatorJobBoard, FunctionError, LambdaInvokeExecutor
from harness.pipeline.model import ActionExecutor, PipelineEvent, SourceRequest
from harness.pipeline.runner import PipelineRunner
from harness.pipeline.source import git_source_action
from harness.pipeline.wiring import DeployedPipeline, deployed_pipeline
from tests.pipeline.conftest import git

TEMPLATE = """
Parameters:
  Prefix: {Type: String, Default: unit}
Resources:
  Artifacts:
    Type: AWS::S3::Bucket
  PipelineRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Principal: {Service: codepipeline.amazonaws.com}, Action: sts:AssumeRole}
  Project:
    Type: AWS::CodeBuild::Project
    Properties:
      Name: !Sub "${AWS::StackName}-build"
      ServiceRole: !Sub "arn:aws:iam::${AWS::AccountId}:role/build"
      Source: {Type: CODEPIPELINE, BuildSpec: ci/buildspec.yml}
      Artifacts: {Type: CODEPIPELINE}
      Environment:
        Type: LINUX_CONTAINER
        ComputeType: BUILD_GENERAL1_SMALL
        Image: aws/codebuild/standard:7.0
        EnvironmentVariables:
          - {Name: TARGET, Value: !Sub "${Prefix}-target"}
  Pipeline:
    Type: AWS::CodePipeline::Pipeline
    Properties:
      Name: !Sub "${AWS::StackName}-pipeline"
      RoleArn: !GetAtt PipelineRole.Arn
      ArtifactStore: {Type: S3, Location: !Ref Artifacts}
      Stages:
        - Name: Source
          Actions:
            - Name: Source
              Namespace: SourceVariables
              ActionTypeId: {Category: Source, Owner: AWS, Provider: CodeCommit, Version: "1"}
              Configuration: {RepositoryName: repo, BranchName: main}
              OutputArtifacts: [{Name: SourceOutput}]
        - Name: Build
          Actions:
            - Name: Build
              Namespace: BuildVariables
              ActionTypeId: {Category: Build, Owner: AWS, Provider: CodeBuild, Version: "1"}
              Configuration:
                ProjectName: !Ref Project
                EnvironmentVariables: '[{"name": "FROM_ACTION", "value": "#{SourceVariables.BranchName}"}]'
              InputArtifacts: [{Name: SourceOutput}]
              OutputArtifacts: [{Name: BuildOutput}]
        - Name: Train
          Actions:
            - Name: Train
              Namespace: TrainVariables
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: "1"}
              Configuration:
                FunctionName: !Sub "${Prefix}-train"
                UserParameters: '{"commit": "#{SourceVariables.CommitId}"}'
              InputArtifacts: [{Name: BuildOutput}]
        - Name: Approve
          Actions:
            - Name: Approve
              ActionTypeId: {Category: Approval, Owner: AWS, Provider: Manual, Version: "1"}
              Configuration: {CustomData: "score #{TrainVariables.Score}"}
        - Name: Publish
          Actions:
            - Name: Publish
              ActionTypeId: {Category: Invoke, Owner: AWS, Provider: Lambda, Version: "1"}
              Configuration: {FunctionName: !Sub "${Prefix}-publish"}
"""

BUILDSPEC = """
version: 0.2
env:
  exported-variables: [COMMIT, TREE_HASH, FROM_ACTION]
phases:
  build:
    commands:
      - export COMMIT="$CODEBUILD_RESOLVED_SOURCE_VERSION"
      - export TREE_HASH=$(cat model.txt | sha256sum | cut -c1-16)
      - |
        mkdir -p out
        printf '{"commit": "%s", "target": "%s"}' "$COMMIT" "$TARGET" > out/build.json
      - test "$AWS_ENDPOINT_URL" != ""
artifacts:
  base-directory: out
  files: [build.json]
"""


@pytest.fixture
def project(repository: Path) -> Path:
    (repository / "ci").mkdir()
    (repository / "ci" / "buildspec.yml").write_text(BUILDSPEC)
    (repository / "model.txt").write_text("layers=2\n")
    git(repository, "add", "-A")
    git(repository, "commit", "-q", "-m", "add the build")
    return repository


class Functions:
    """Local stand-ins for deployed Lambda functions, reporting through the emulator's job API."""

    def __init__(self, emulator: EmbeddedEmulator) -> None:
        self.codepipeline = emulator.client("codepipeline")
        self.s3 = emulator.client("s3")
        self.events: list[dict[str, Any]] = []
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "unit-train": self.train,
            "unit-publish": self.publish,
        }

    def invoke(self, name: str, event: dict[str, Any]) -> None:
        self.events.append(event)
        if name not in self.handlers:
            raise FunctionError(f"ResourceNotFoundException: function {name}")
        self.handlers[name](event)

    def train(self, event: dict[str, Any]) -> None:
        job = PipelineJob.from_event(event)
        if job.continuation_token is None:
            self.codepipeline.put_job_success_result(jobId=job.id, continuationToken="step-1")
            return
        artifact = job.input_artifacts[0]
        body = self.s3.get_object(Bucket=artifact.bucket, Key=artifact.key)["Body"].read()
        build = json.loads(zipfile.ZipFile(io.BytesIO(body)).read("build.json"))
        assert build["commit"] == job.user_parameters["commit"]
        self.codepipeline.put_job_success_result(
            jobId=job.id,
            outputVariables={"Score": "0.93", "Target": build["target"]},
            executionDetails={"summary": f"trained {build['commit'][:8]}", "percentComplete": 100},
        )

    def publish(self, event: dict[str, Any]) -> None:
        job = PipelineJob.from_event(event)
        self.codepipeline.put_job_success_result(jobId=job.id, outputVariables={"Url": "http://api"})


def _setup(emulator: EmbeddedEmulator, stack: str) -> DeployedPipeline:
    cloudformation = emulator.client("cloudformation")
    cloudformation.create_stack(StackName=stack, TemplateBody=TEMPLATE)
    assert cloudformation.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    return deployed_pipeline(
        emulator.client("codepipeline"), emulator.client("codebuild"), f"{stack}-pipeline", ACCOUNT_ID
    )


def _runner(
    emulator: EmbeddedEmulator,
    stack: str,
    tmp_path: Path,
    policy: Callable[[ApprovalRequest], ApprovalDecision],
    functions: Functions,
    events: list[PipelineEvent],
) -> PipelineRunner:
    deployed = _setup(emulator, stack)
    pipeline = deployed.pipeline
    store = ArtifactStore(
        tmp_path / "artifacts", pipeline.artifact_bucket, pipeline.name, emulator.client("s3")
    )
    executors: dict[tuple[str, str], ActionExecutor] = {
        ("Source", "CodeCommit"): git_source_action,
        ("Build", "CodeBuild"): CodeBuildExecutor(
            deployed.projects,
            emulator.region,
            ACCOUNT_ID,
            emulator.endpoint_url,
        ),
        ("Invoke", "Lambda"): LambdaInvokeExecutor(
            EmulatorJobBoard(ACCOUNT_ID, emulator.region), functions.invoke, report_timeout_s=5
        ),
        ("Approval", "Manual"): ManualApprovalExecutor(policy, summary=lambda ctx: "endpoint: unit-endpoint"),
    }
    return PipelineRunner(pipeline, executors, store, tmp_path / "work", events.append)


def test_a_commit_runs_through_every_stage(emulator: EmbeddedEmulator, project: Path, tmp_path: Path) -> None:
    events: list[PipelineEvent] = []
    functions = Functions(emulator)
    seen: list[ApprovalRequest] = []

    def approve(request: ApprovalRequest) -> ApprovalDecision:
        seen.append(request)
        return auto_approve(request)

    runner = _runner(emulator, "ok", tmp_path, approve, functions, events)
    result = runner.run(SourceRequest(project))

    assert result.status == "Succeeded", result.reason
    commit = git(project, "rev-parse", "HEAD")
    assert [s.name for s in result.stages] == ["Source", "Build", "Train", "Approve", "Publish"]
    assert all(s.status == "Succeeded" and s.duration_s >= 0 for s in result.stages)
    assert result.variables["SourceVariables"]["CommitId"] == commit
    build = result.variables["BuildVariables"]
    assert build["COMMIT"] == commit and build["FROM_ACTION"] == "main"
    assert len(build["TREE_HASH"]) == 16
    assert result.variables["TrainVariables"] == {"Score": "0.93", "Target": "unit-target"}
    train = result.stage("Train").actions[0]
    assert train.summary == f"trained {commit[:8]}"
    # Train continued once: two jobs, the second carrying the token, both shaped as AWS shapes them.
    first, second = functions.events[0]["CodePipeline.job"], functions.events[1]["CodePipeline.job"]
    assert "continuationToken" not in first["data"] and second["data"]["continuationToken"] == "step-1"
    assert first["id"] != second["id"] and first["accountId"] == ACCOUNT_ID
    assert first["data"]["actionConfiguration"]["configuration"] == {
        "FunctionName": "unit-train",
        "UserParameters": json.dumps({"commit": commit}),
    }
    assert first["data"]["inputArtifacts"][0]["name"] == "BuildOutput"
    assert first["data"]["inputArtifacts"][0]["revision"] == commit
    assert set(first["data"]["artifactCredentials"]) == {"accessKeyId", "secretAccessKey", "sessionToken"}
    pipeline_context = functions.codepipeline.get_job_details(jobId=first["id"])["jobDetails"]["data"][
        "pipelineContext"
    ]
    assert pipeline_context["pipelineName"] == "ok-pipeline" and pipeline_context["stage"] == {
        "name": "Train"
    }
    assert pipeline_context["pipelineExecutionId"] == result.execution_id
    # The approver saw the resolved CustomData and the summary.
    assert seen[0].custom_data == "score 0.93" and seen[0].summary == "endpoint: unit-endpoint"
    # Artifacts are in the emulator's artifact bucket.
    s3 = emulator.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=runner.pipeline.artifact_bucket)["Contents"]}
    assert {a.key for s in result.stages for act in s.actions for a in act.artifacts} <= keys
    kinds = [(e.kind, e.stage) for e in events if e.kind.startswith(("stage", "pipeline"))]
    assert kinds[0] == ("pipeline-started", None) and kinds[-1] == ("pipeline-finished", None)
    assert [s for k, s in kinds if k == "stage-finished"] == [
        "Source",
        "Build",
        "Train",
        "Approve",
        "Publish",
    ]
    assert any(e.kind == "action-progress" and "Entering phase BUILD" in e.message for e in events)
    summary = result.to_json()
    assert summary["status"] == "Succeeded" and set(summary["stage_timings_s"]) == {
        "Source",
        "Build",
        "Train",
        "Approve",
        "Publish",
    }


def test_a_rejection_stops_the_pipeline(emulator: EmbeddedEmulator, project: Path, tmp_path: Path) -> None:
    functions = Functions(emulator)

    def reject(request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(False, "accuracy too low", "reviewer")

    result = _runner(emulator, "rejected", tmp_path, reject, functions, []).run(SourceRequest(project))

    assert result.status == "Failed"
    assert result.failed_stage == "Approve"
    assert result.reason == "Rejected by reviewer: accuracy too low"
    assert [s.name for s in result.stages] == ["Source", "Build", "Train", "Approve"]
    published = [e for e in functions.events if "unit-publish" in json.dumps(e)]
    assert published == []


def test_a_failed_build_stops_the_pipeline_with_the_reason(
    emulator: EmbeddedEmulator, project: Path, tmp_path: Path
) -> None:
    (project / "ci" / "buildspec.yml").write_text(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo compiling\n      - exit 3\n"
    )  # uncommitted: the working tree is what runs
    functions = Functions(emulator)
    result = _runner(emulator, "broken", tmp_path, auto_approve, functions, []).run(SourceRequest(project))

    assert result.status == "Failed" and result.failed_stage == "Build"
    assert result.reason is not None and "phase BUILD: exit status 3" in result.reason
    assert functions.events == []
    log = result.stage("Build").actions[0].log_path
    assert log is not None and "compiling" in log.read_text()


def test_missing_executor_and_unknown_variable(
    emulator: EmbeddedEmulator, project: Path, tmp_path: Path
) -> None:
    pipeline = _setup(emulator, "checks").pipeline
    store = ArtifactStore(tmp_path / "a", pipeline.artifact_bucket, pipeline.name)
    with pytest.raises(ValueError, match=r"no executor for action types \[\('Approval', 'Manual'\)"):
        PipelineRunner(pipeline, {("Source", "CodeCommit"): git_source_action}, store, tmp_path)
