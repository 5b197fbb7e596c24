"""The Build action running the deployer's own buildspec (deployer/buildspec.yml), unchanged.

Process runtime: real Source and Build actions on a git repository holding copies of the project's
container/, deployer/buildspec.yml and deployer/training.json; the docker stand-in tags the source
tree by its content hash and the process runtime (harness.compute.process) registers it. The Docker
variant (marked `docker`) pushes to a real local registry and records the image in the emulator's ECR.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from harness.compute.process import ProcessRuntime, tree_digest
from harness.compute.training_cache import cache_home
from harness.emulator import ACCOUNT_ID
from harness.pipeline.artifacts import ArtifactStore
from harness.pipeline.build import CodeBuildExecutor
from harness.pipeline.build_cache import LocalBuildCache
from harness.pipeline.definition import (
    Action,
    ActionType,
    CodeBuildProject,
    Pipeline,
    Stage,
)
from harness.pipeline.images import ProcessImageBuild
from harness.pipeline.model import ActionContext, ActionFailed, SourceRequest
from harness.pipeline.source import git_source_action
from tests.pipeline.conftest import git
from tests.pipeline.platform import platform_build_project

# This machine as the project's build host: the buildspec's wheelhouse is kept between builds, as
# CodeBuild's LOCAL_CUSTOM_CACHE keeps it (the first build on a new machine makes it with pip wheel).
MACHINE_BUILD_CACHE = LocalBuildCache(cache_home() / "codebuild")


def _project() -> CodeBuildProject:
    """The platform's CodeBuild project, as the emulator's CloudFormation creates it (BatchGetProjects)."""
    return platform_build_project()


def _actions() -> tuple[Pipeline, Action, Action]:
    source = Action(
        "Source", ActionType("Source", "AWS", "CodeCommit"), {}, output_artifacts=("SourceOutput",)
    )
    build = Action(
        "BuildImage",
        ActionType("Build", "AWS", "CodeBuild"),
        {"ProjectName": "gptneo-intent-image"},
        input_artifacts=("SourceOutput",),
        output_artifacts=("BuildOutput",),
    )
    pipeline = Pipeline("p", (Stage("Source", (source,)), Stage("Build", (build,))), "bucket")
    return pipeline, source, build


def _context(
    pipeline: Pipeline, stage: str, action: Action, inputs: tuple, work: Path, source: SourceRequest | None
) -> ActionContext:  # type: ignore[type-arg]
    work.mkdir(parents=True, exist_ok=True)
    return ActionContext(
        pipeline,
        "exec-1",
        stage,
        action,
        dict(action.configuration),
        inputs,
        work,
        source,
        {},
        lambda _: None,
    )


def test_the_deployers_buildspec_with_the_process_runtime(image_source: Path, tmp_path: Path) -> None:
    pipeline, source_action, build_action = _actions()
    store = ArtifactStore(tmp_path / "store", "bucket", "p")
    source_out = git_source_action(
        _context(pipeline, "Source", source_action, (), tmp_path / "s", SourceRequest(image_source))
    )
    source_ref = store.put(
        "exec-1", "SourceOutput", source_out.artifacts["SourceOutput"], source_out.revision
    )

    runtime = ProcessRuntime()
    executor = CodeBuildExecutor(
        {"gptneo-intent-image": _project()},
        "us-east-1",
        ACCOUNT_ID,
        endpoint_url=None,
        image_build=ProcessImageBuild(runtime.register),
        cache=MACHINE_BUILD_CACHE,
    )
    output = executor(_context(pipeline, "Build", build_action, (source_ref,), tmp_path / "b", None))

    commit = git(image_source, "rev-parse", "HEAD")
    digest = tree_digest(image_source)  # the committed tree hashes as the working copy does
    assert output.variables["IMAGE_DIGEST"] == digest
    assert output.variables["COMMIT_ID"] == commit
    expected_uri = f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/gptneo-intent@{digest}"
    assert output.variables["IMAGE_URI"] == expected_uri
    with zipfile.ZipFile(output.artifacts["BuildOutput"]) as archive:
        record = json.loads(archive.read("build.json"))
    training = json.loads((image_source / "deployer" / "training.json").read_text())
    assert record == {
        "CommitId": commit,
        "Hyperparameters": training["Hyperparameters"],
        "ImageDigest": digest,
        "ImageUri": expected_uri,
    }
    # The process runtime now runs exactly the tree this build saw.
    resolved = runtime.resolve(expected_uri)
    assert resolved.digest == digest and Path(resolved.reference) == tmp_path / "b" / "src"


def test_a_buildspec_missing_from_the_source_fails_the_action(tmp_path: Path, repository: Path) -> None:
    pipeline, source_action, build_action = _actions()
    store = ArtifactStore(tmp_path / "store", "bucket", "p")
    out = git_source_action(
        _context(pipeline, "Source", source_action, (), tmp_path / "s", SourceRequest(repository))
    )
    ref = store.put("exec-1", "SourceOutput", out.artifacts["SourceOutput"], out.revision)
    executor = CodeBuildExecutor({"gptneo-intent-image": _project()}, "us-east-1", ACCOUNT_ID, None)
    with pytest.raises(ActionFailed, match=r"YAML_FILE_ERROR: buildspec 'deployer/buildspec\.yml' not found"):
        executor(_context(pipeline, "Build", build_action, (ref,), tmp_path / "b", None))


@pytest.mark.docker
@pytest.mark.slow
def test_the_deployers_buildspec_with_docker_and_a_local_registry(image_source: Path, tmp_path: Path) -> None:
    """Real docker build and push to a real local registry; the image recorded in the emulator's ECR."""
    from harness.emulator import EmbeddedEmulator
    from harness.pipeline.image_registry import LocalRegistry
    from harness.pipeline.images import DockerImageBuild

    pipeline, source_action, build_action = _actions()
    store = ArtifactStore(tmp_path / "store", "bucket", "p")
    out = git_source_action(
        _context(pipeline, "Source", source_action, (), tmp_path / "s", SourceRequest(image_source))
    )
    ref = store.put("exec-1", "SourceOutput", out.artifacts["SourceOutput"], out.revision)
    project = _project()  # deployed in an emulator of its own, before this test's starts
    repository = next(v.value for v in project.environment_variables if v.name == "IMAGE_REPO_NAME")
    with EmbeddedEmulator() as emulator, LocalRegistry(tmp_path / "registry") as registry:
        ecr = emulator.client("ecr")
        ecr.create_repository(repositoryName=repository)
        executor = CodeBuildExecutor(
            {"gptneo-intent-image": project},
            emulator.region,
            ACCOUNT_ID,
            emulator.endpoint_url,
            image_build=DockerImageBuild(registry, ecr),
            cache=MACHINE_BUILD_CACHE,
        )
        output = executor(_context(pipeline, "Build", build_action, (ref,), tmp_path / "b", None))
        digest = output.variables["IMAGE_DIGEST"]
        assert output.variables["IMAGE_URI"] == f"{registry.host}/{repository}@{digest}"
        assert registry.manifest(repository, digest)[2] == digest
        images = ecr.describe_images(repositoryName=repository)["imageDetails"]
        tags = {tag for image in images for tag in image.get("imageTags", [])}
        assert tags == {output.variables["COMMIT_ID"][:12], "latest"}
