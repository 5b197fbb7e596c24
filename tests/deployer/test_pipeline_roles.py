"""The pipeline's role (PipelineRole) and the build project's role (BuildRole) without a permission they need.

CodePipeline acts with its service role: it stores and reads the artifacts in the artifact bucket,
starts the build and reads its status (codebuild:StartBuild, codebuild:BatchGetBuilds) and invokes the
Lambda actions (lambda:InvokeFunction) (CodePipeline user guide, "Manage the CodePipeline service
role": the minimum service role policy per action provider). CodeBuild runs a build as the project's
service role: it downloads the source artifact (s3:GetObject) and the buildspec pushes the image to ECR
(CodeBuild user guide, "Allow CodeBuild to interact with other AWS services"; Amazon ECR user guide,
"Pushing a Docker image"). Each test deploys the platform's roles as the template has them, takes one
permission out of the deployed role, runs the action that needs it with the harness's executors and
sees the action fail with the denial naming the assumed role and the action.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from harness.emulator import EmbeddedEmulator
from harness.pipeline import (
    ActionContext,
    ActionFailed,
    ArtifactStore,
    CodeBuildExecutor,
    DeployedPipeline,
    EmulatorJobBoard,
    LambdaInvokeExecutor,
    NoImageBuild,
    boto3_invoker,
    deployed_pipeline,
    invoke_client,
)
from harness.pipeline.artifacts import ArtifactAccessDenied, ArtifactRef
from harness.service_roles import CODEPIPELINE, ServiceRoles, codepipeline_session
from tests.deployer.conftest import PREFIX
from tests.deployer.roles import ACCOUNT, denied, deployed_role, role_without

REGION = "us-east-1"


@pytest.fixture
def deployed(emulator: EmbeddedEmulator, platform: dict[str, str]) -> DeployedPipeline:
    return deployed_pipeline(
        emulator.client("codepipeline"), emulator.client("codebuild"), platform["PipelineName"], ACCOUNT
    )


@pytest.fixture
def roles(emulator: EmbeddedEmulator) -> ServiceRoles:
    return ServiceRoles(emulator.endpoint_url, emulator.context.iam)


def _context(
    deployed: DeployedPipeline, stage: str, action: str, inputs: tuple[ArtifactRef, ...], work: Path
) -> Any:
    work.mkdir(parents=True, exist_ok=True)
    return ActionContext(
        pipeline=deployed.pipeline,
        execution_id="role-test",
        stage=stage,
        action=deployed.pipeline.action(stage, action),
        configuration=dict(deployed.pipeline.action(stage, action).configuration),
        input_artifacts=inputs,
        work_dir=work,
        source=None,
        variables={},
        progress=lambda line: None,
    )


def _source_zip(path: Path, buildspec: str) -> Path:
    """A source artifact whose deployer/buildspec.yml (the project's buildspec path) is `buildspec`."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("deployer/buildspec.yml", buildspec)
    return path


# A buildspec that "pushes" at once: what the image push's authorization needs is its IMAGE_URI.
QUICK_BUILDSPEC = """version: 0.2
env:
  exported-variables: [IMAGE_URI]
phases:
  build:
    commands:
      - export IMAGE_URI="$REGISTRY_HOST/$IMAGE_REPO_NAME@sha256:$(printf '0%.0s' $(seq 64))"
"""


def _store(roles: ServiceRoles, deployed: DeployedPipeline, tmp_path: Path, session: str) -> ArtifactStore:
    pipeline = deployed.pipeline
    s3 = roles.client("s3", pipeline.role_arn, session, CODEPIPELINE)
    return ArtifactStore(tmp_path / "artifacts", pipeline.artifact_bucket, pipeline.name, s3)


def _build(
    roles: ServiceRoles, deployed: DeployedPipeline, emulator: EmbeddedEmulator, tmp_path: Path, session: str
) -> tuple[CodeBuildExecutor, ActionContext]:
    store = _store(roles, deployed, tmp_path, session)
    source = store.put("role-test", "SourceOutput", _source_zip(tmp_path / "source.zip", QUICK_BUILDSPEC))
    executor = CodeBuildExecutor(
        deployed.projects,
        REGION,
        ACCOUNT,
        emulator.endpoint_url,
        NoImageBuild(),
        roles=roles,
        pipeline_role_arn=deployed.pipeline.role_arn,
    )
    return executor, _context(deployed, "Build", "BuildImage", (source,), tmp_path / "build")


def test_the_template_roles_run_the_build(
    emulator: EmbeddedEmulator, deployed: DeployedPipeline, roles: ServiceRoles, tmp_path: Path
) -> None:
    executor, context = _build(roles, deployed, emulator, tmp_path, codepipeline_session())
    output = executor(context)
    assert output.variables["IMAGE_URI"].endswith("@sha256:" + "0" * 64)
    # The build's log is in CloudWatch Logs, where CodeBuild writes it (written as the build's role).
    build_uuid = str(output.external_execution_id).split(":", 1)[1]
    group = f"/aws/codebuild/{PREFIX}-image"
    events = emulator.client("logs").get_log_events(logGroupName=group, logStreamName=build_uuid)["events"]
    assert any("IMAGE_URI" in event["message"] or "build" in event["message"] for event in events)


def test_without_create_log_stream_the_build_does_not_start(
    emulator: EmbeddedEmulator, deployed: DeployedPipeline, roles: ServiceRoles, tmp_path: Path
) -> None:
    executor, context = _build(roles, deployed, emulator, tmp_path, codepipeline_session())
    build_role = deployed_role(emulator, "BuildRole")
    with (
        role_without(emulator, build_role, "logs:CreateLogStream") as name,
        pytest.raises(ActionFailed) as raised,
    ):
        executor(context)
    reason = raised.value.reason
    assert (
        f"failed: PROVISIONING: ACCESS_DENIED: Service role {build_role} does not allow AWS CodeBuild to "
        in reason
    )
    assert "create Amazon CloudWatch Logs log streams for build arn:aws:codebuild:" in reason
    assert f"assumed-role/{name}/AWSCodeBuild-" in reason
    assert "is not authorized to perform: logs:CreateLogStream on resource: " in reason


def test_without_start_build_the_pipeline_cannot_start_the_build(
    emulator: EmbeddedEmulator, deployed: DeployedPipeline, roles: ServiceRoles, tmp_path: Path
) -> None:
    executor, context = _build(roles, deployed, emulator, tmp_path, codepipeline_session())
    with (
        role_without(emulator, deployed.pipeline.role_arn, "codebuild:StartBuild") as name,
        pytest.raises(ActionFailed) as raised,
    ):
        executor(context)
    project = f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{PREFIX}-image"
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/"
    assert raised.value.reason.startswith("Error calling startBuild: User: " + principal)
    assert "is not authorized to perform: codebuild:StartBuild on resource: " + project in raised.value.reason


def test_without_get_object_the_build_cannot_download_its_source(
    emulator: EmbeddedEmulator, deployed: DeployedPipeline, roles: ServiceRoles, tmp_path: Path
) -> None:
    executor, context = _build(roles, deployed, emulator, tmp_path, codepipeline_session())
    build_role = deployed_role(emulator, "BuildRole")
    [source] = context.input_artifacts
    with role_without(emulator, build_role, "s3:GetObject") as name, pytest.raises(ActionFailed) as raised:
        executor(context)
    reason = raised.value.reason
    assert "failed: DOWNLOAD_SOURCE: CLIENT_ERROR: " in reason
    assert f"assumed-role/{name}/AWSCodeBuild-" in reason
    assert (
        f"is not authorized to perform: s3:GetObject on resource: arn:aws:s3:::{source.bucket}/{source.key}"
        in reason
    )


def test_without_put_image_the_build_cannot_push_the_image(
    emulator: EmbeddedEmulator, deployed: DeployedPipeline, roles: ServiceRoles, tmp_path: Path
) -> None:
    executor, context = _build(roles, deployed, emulator, tmp_path, codepipeline_session())
    build_role = deployed_role(emulator, "BuildRole")
    with role_without(emulator, build_role, "ecr:PutImage") as name, pytest.raises(ActionFailed) as raised:
        executor(context)
    reason = raised.value.reason
    assert "failed: BUILD: COMMAND_EXECUTION_ERROR: Error while executing command: docker push " in reason
    assert f"(denied: User: arn:aws:sts::{ACCOUNT}:assumed-role/{name}/AWSCodeBuild-" in reason
    assert "is not authorized to perform: ecr:PutImage on resource: arn:aws:ecr:" in reason


def test_without_put_object_the_pipeline_cannot_store_an_artifact(
    emulator: EmbeddedEmulator, deployed: DeployedPipeline, roles: ServiceRoles, tmp_path: Path
) -> None:
    session = codepipeline_session()
    store = _store(roles, deployed, tmp_path, session)
    zipped = _source_zip(tmp_path / "source.zip", QUICK_BUILDSPEC)
    with (
        role_without(emulator, deployed.pipeline.role_arn, "s3:PutObject") as name,
        pytest.raises(ArtifactAccessDenied) as raised,
    ):
        store.put("role-test", "SourceOutput", zipped)
    message = str(raised.value)
    bucket = deployed.pipeline.artifact_bucket
    assert message.startswith("Insufficient permissions: The service role or action role doesn't have the")
    assert f"Amazon S3 bucket named {bucket}." in message
    key = store.key_for("role-test", "SourceOutput")
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{session}"
    assert denied(principal, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}") in message


def test_without_invoke_function_the_pipeline_cannot_run_a_lambda_action(
    emulator: EmbeddedEmulator, deployed: DeployedPipeline, roles: ServiceRoles, tmp_path: Path
) -> None:
    pipeline = deployed.pipeline
    session = codepipeline_session()
    invoke = boto3_invoker(
        invoke_client(roles.session(pipeline.role_arn, session, CODEPIPELINE), emulator.endpoint_url)
    )
    executor = LambdaInvokeExecutor(
        EmulatorJobBoard(ACCOUNT, REGION), invoke, store=_store(roles, deployed, tmp_path, session)
    )
    context = _context(deployed, "Register", "RegisterModel", (), tmp_path / "register")
    function = context.configuration["FunctionName"]
    with (
        role_without(emulator, pipeline.role_arn, "lambda:InvokeFunction") as name,
        pytest.raises(ActionFailed) as raised,
    ):
        executor(context)
    principal = f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{session}"
    resource = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"
    assert raised.value.reason.startswith(denied(principal, "lambda:InvokeFunction", resource))
    assert "(Service: AWSLambda; Status Code: 403; Error Code: AccessDeniedException;" in raised.value.reason
