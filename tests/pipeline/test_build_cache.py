"""CodeBuild's local cache between builds (harness/pipeline/build_cache.py, the Build executor).

AWS CodeBuild user guide, "Build caching in AWS CodeBuild" (Local caching) and the CloudFormation
`AWS::CodeBuild::Project ProjectCache` property: a project with `Cache.Type: LOCAL` and the mode
`LOCAL_CUSTOM_CACHE` keeps the directories its buildspec lists in `cache.paths` on the build host,
for later builds on that host; `NO_CACHE` (the default) keeps nothing.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from harness.pipeline.artifacts import ArtifactStore
from harness.pipeline.build import CodeBuildExecutor
from harness.pipeline.build_cache import LocalBuildCache, cached_directory
from harness.pipeline.definition import (
    Action,
    ActionType,
    CodeBuildProject,
    Pipeline,
    Stage,
)
from harness.pipeline.model import ActionContext
from tests.pipeline.platform import platform_build_project

# Makes `deps/` only when it is missing, counting how often it had to (the count lives outside the
# source, which is unpacked anew for every build).
BUILDSPEC = """\
version: 0.2
phases:
  build:
    commands:
      - >-
        if [ ! -f deps/lib.txt ]; then mkdir -p deps/sub && echo built > deps/lib.txt
        && echo x > deps/sub/more.txt && echo made >> "$COUNTER"; fi
      - cat deps/lib.txt
cache:
  paths:
    - "deps/**/*"
    - "/root/.cache/pip/**/*"
"""


def _project(cache_type: str, modes: tuple[str, ...] = ()) -> CodeBuildProject:
    return CodeBuildProject(name="proj", buildspec=BUILDSPEC, cache_type=cache_type, cache_modes=modes)


def _source_zip(tmp_path: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.md", "a source\n")
    path = tmp_path / "source.zip"
    path.write_bytes(buffer.getvalue())
    return path


def _build(executor: CodeBuildExecutor, tmp_path: Path, run: int) -> list[str]:
    build = Action(
        "Build", ActionType("Build", "AWS", "CodeBuild"), {"ProjectName": "proj"}, ("SourceOutput",), ()
    )
    pipeline = Pipeline("p", (Stage("Build", (build,)),), "bucket")
    store = ArtifactStore(tmp_path / f"store-{run}", "bucket", "p")
    source = store.put(f"exec-{run}", "SourceOutput", _source_zip(tmp_path), "commit")
    lines: list[str] = []
    work = tmp_path / f"build-{run}"
    work.mkdir()
    context = ActionContext(
        pipeline,
        f"exec-{run}",
        "Build",
        build,
        dict(build.configuration),
        (source,),
        work,
        None,
        {},
        lines.append,
    )
    executor(context)
    return lines


def _executor(project: CodeBuildProject, cache: LocalBuildCache, counter: Path) -> CodeBuildExecutor:
    environment = {"PATH": "/usr/bin:/bin", "COUNTER": str(counter)}
    return CodeBuildExecutor(
        {"proj": project}, "us-east-1", "123456789012", None, base_environment=environment, cache=cache
    )


def test_a_local_custom_cache_keeps_the_paths_for_the_next_build(tmp_path: Path) -> None:
    counter = tmp_path / "made"
    cache = LocalBuildCache(tmp_path / "host-cache")
    executor = _executor(_project("LOCAL", ("LOCAL_CUSTOM_CACHE",)), cache, counter)
    first = _build(executor, tmp_path, 1)
    second = _build(executor, tmp_path, 2)
    assert counter.read_text().splitlines() == ["made"]  # the second build found deps/ in its source
    assert "cache: 0 files restored from the local cache (LOCAL_CUSTOM_CACHE)" in first
    assert "cache: 2 files restored from the local cache (LOCAL_CUSTOM_CACHE)" in second
    assert (tmp_path / "host-cache" / "proj" / "deps" / "sub" / "more.txt").read_text() == "x\n"
    # The absolute path names the build container's own folder: not the harness's to keep.
    assert not (tmp_path / "host-cache" / "proj" / "root").exists()


@pytest.mark.parametrize(
    ("cache_type", "modes"),
    [("NO_CACHE", ()), ("LOCAL", ("LOCAL_DOCKER_LAYER_CACHE",)), ("S3", ())],
)
def test_without_the_custom_mode_every_build_starts_empty(
    tmp_path: Path, cache_type: str, modes: tuple[str, ...]
) -> None:
    counter = tmp_path / "made"
    executor = _executor(_project(cache_type, modes), LocalBuildCache(tmp_path / "host-cache"), counter)
    _build(executor, tmp_path, 1)
    _build(executor, tmp_path, 2)
    assert counter.read_text().splitlines() == ["made", "made"]


def test_the_platform_project_keeps_the_wheelhouse_in_a_local_custom_cache() -> None:
    """The deployer's CodeBuild project and buildspec ask for what the harness keeps."""
    project = platform_build_project()
    assert project.cache_type == "LOCAL" and "LOCAL_CUSTOM_CACHE" in project.cache_modes
    buildspec = (Path(__file__).resolve().parents[2] / "deployer" / "buildspec.yml").read_text()
    assert '"container/wheels/**/*"' in buildspec


@pytest.mark.parametrize(
    ("pattern", "directory"),
    [
        ("container/wheels/**/*", "container/wheels"),
        ("deps/*.whl", "deps"),
        ("a/b", "a/b"),
        ("/root/.cache/pip/**/*", None),
        ("**/*", None),
        ("../outside/**/*", None),
    ],
)
def test_cached_directory_of_a_pattern(pattern: str, directory: str | None) -> None:
    found = cached_directory(pattern)
    assert (str(found) if found is not None else None) == directory
