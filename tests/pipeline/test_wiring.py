"""The runner on the platform the deployer really deploys into the embedded emulator.

The platform stack is created by the deployer's own `deploy` (the same code as `mlops deploy`); the
pipeline and its CodeBuild project are then read back with GetPipeline and BatchGetProjects, and its Source
and Build stages run for real (process runtime: the deployer's buildspec, unchanged, with the docker
stand-in). The later stages need the compute plane (training, endpoints) and are the main job's.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from deployer import deploy as deployment
from deployer.client import AwsClient
from harness.compute.process import ProcessRuntime, tree_digest
from harness.compute.training_cache import cache_home
from harness.emulator import ACCOUNT_ID, EmbeddedEmulator
from harness.pipeline import (
    ArtifactStore,
    EmulatorJobBoard,
    PipelineRunner,
    ProcessImageBuild,
    SourceRequest,
    auto_approve,
    boto3_invoker,
    default_executors,
    deployed_pipeline,
    invoke_client,
)
from harness.pipeline.build_cache import LocalBuildCache
from tests.pipeline.conftest import git

PREFIX = "wire"


@pytest.fixture(scope="module")
def deployed(emulator: EmbeddedEmulator) -> tuple[EmbeddedEmulator, dict[str, str]]:
    client = AwsClient(emulator.session(), endpoint_url=emulator.endpoint_url, poll_seconds=0.05)
    overrides = {
        "ProjectName": PREFIX,
        "TrainingInstanceType": "ml.m5.xlarge",
        "HostingInstanceType": "ml.m5.large",
    }
    report = deployment.deploy(client, PREFIX, overrides)
    return emulator, {**report.stacks[0].outputs, **report.stacks[1].outputs}


def test_the_deployed_pipeline_reads_back_through_the_api(
    deployed: tuple[EmbeddedEmulator, dict[str, str]],
) -> None:
    emulator, outputs = deployed
    found = deployed_pipeline(
        emulator.client("codepipeline"), emulator.client("codebuild"), outputs["PipelineName"], ACCOUNT_ID
    )
    pipeline = found.pipeline
    assert pipeline.name == outputs["PipelineName"] == f"{PREFIX}-pipeline"
    assert pipeline.artifact_bucket == outputs["ArtifactBucketName"]
    functions = [a.configuration.get("FunctionName") for s in pipeline.stages for a in s.actions]
    assert [f for f in functions if f] == [
        outputs["StartTrainingFunctionName"],
        outputs["RegisterModelFunctionName"],
        outputs["PublishApiFunctionName"],
    ]
    assert pipeline.stages[0].actions[0].configuration["PollForSourceChanges"] == "false"
    project = found.projects[outputs["BuildProjectName"]]
    variables = {v.name: v.value for v in project.environment_variables}
    assert variables["IMAGE_REPO_NAME"] == outputs["ImageRepositoryUri"].rpartition("/")[2]
    assert variables["ARTIFACT_BUCKET"] == outputs["ArtifactBucketName"]


def test_source_and_build_stages_of_the_deployed_pipeline(
    deployed: tuple[EmbeddedEmulator, dict[str, str]], image_source: Path, tmp_path: Path
) -> None:
    emulator, outputs = deployed
    found = deployed_pipeline(
        emulator.client("codepipeline"), emulator.client("codebuild"), outputs["PipelineName"], ACCOUNT_ID
    )
    first_two = replace(found, pipeline=replace(found.pipeline, stages=found.pipeline.stages[:2]))
    store = ArtifactStore(
        tmp_path / "artifacts",
        first_two.pipeline.artifact_bucket,
        first_two.pipeline.name,
        emulator.client("s3"),
    )
    runtime = ProcessRuntime()
    executors = default_executors(
        deployed=first_two,
        endpoint_url=emulator.endpoint_url,
        image_build=ProcessImageBuild(runtime.register),
        job_board=EmulatorJobBoard(ACCOUNT_ID, emulator.region),
        invoke=boto3_invoker(invoke_client(emulator.session(), emulator.endpoint_url)),
        approval=auto_approve,
        store=store,
        # This machine as the project's build host (CodeBuild's LOCAL_CUSTOM_CACHE keeps the wheelhouse).
        build_cache=LocalBuildCache(cache_home() / "codebuild"),
    )
    result = PipelineRunner(first_two.pipeline, executors, store, tmp_path / "work").run(
        SourceRequest(image_source)
    )

    assert result.status == "Succeeded", result.reason
    commit = git(image_source, "rev-parse", "HEAD")
    assert result.variables["SourceVariables"]["CommitId"] == commit
    build = result.variables["BuildVariables"]
    assert build["IMAGE_DIGEST"] == tree_digest(image_source)
    assert build["COMMIT_ID"] == commit
    # The Train stage's Lambda reads build.json from the Build output in the artifact bucket.
    artifact = result.stage("Build").actions[0].artifacts[0]
    body = emulator.client("s3").get_object(Bucket=artifact.bucket, Key=artifact.key)["Body"].read()
    record = json.loads(zipfile.ZipFile(io.BytesIO(body)).read("build.json"))
    assert record["ImageUri"] == build["IMAGE_URI"] and record["CommitId"] == commit
    assert runtime.resolve(record["ImageUri"]).digest == record["ImageDigest"]
