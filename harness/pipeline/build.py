"""The Build action (CodeBuild): the project's buildspec runs for real on an unpacked source artifact.

`CodeBuildExecutor` unpacks the primary input artifact into the action's work folder (secondary
inputs go to `CODEBUILD_SRC_DIR_<artifact>`, as CodeBuild does), reads the buildspec the project
names (a path in the source, or inline YAML), and runs it (`harness.pipeline.buildspec`) with
CodeBuild's environment: CODEBUILD_BUILD_ID/ARN/NUMBER, CODEBUILD_INITIATOR,
CODEBUILD_RESOLVED_SOURCE_VERSION (the commit), CODEBUILD_SOURCE_VERSION, CODEBUILD_SRC_DIR,
CODEBUILD_START_TIME, AWS_REGION/AWS_DEFAULT_REGION, the project's variables and the action's
`EnvironmentVariables`, plus the emulator's endpoint (AWS_ENDPOINT_URL and credentials the emulator
accepts). The `env.exported-variables` become the action's output variables; the `artifacts` section
becomes its output artifact. The log is kept in the work folder and streamed as progress.

What differs locally is named by an `ImageBuild` (the only place that knows the container runtime):
it adds environment variables (where the registry is, which runtime builds) and, once the buildspec
succeeded, finishes the image (records it in the emulator's ECR, or registers the source tree with
the process runtime) and may add output variables.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from harness.pipeline.artifacts import unzip, zip_tree
from harness.pipeline.build_cache import CUSTOM_MODE, LOCAL, LocalBuildCache
from harness.pipeline.buildspec import (
    Buildspec,
    BuildspecError,
    collect_artifacts,
    parse_buildspec,
    run_buildspec,
)
from harness.pipeline.definition import CodeBuildProject
from harness.pipeline.model import ActionContext, ActionFailed, ActionOutput


class ImageBuild(Protocol):
    """How the image is built and recorded where this run happens (Docker + local registry, or process)."""

    def environment(self, work_dir: Path) -> Mapping[str, str]:
        """Variables set last, over the project's (e.g. REGISTRY_HOST of the local registry)."""
        ...

    def prepare(self, source_dir: Path) -> None:
        """Called on the unpacked source before the buildspec runs."""
        ...

    def finish(self, source_dir: Path, exported: Mapping[str, str]) -> Mapping[str, str]:
        """Called after a successful buildspec run; returns output variables to add (or override)."""
        ...


class NoImageBuild:
    """For buildspecs that build no image: nothing added, nothing recorded."""

    def environment(self, work_dir: Path) -> Mapping[str, str]:
        del work_dir
        return {}

    def prepare(self, source_dir: Path) -> None:
        del source_dir

    def finish(self, source_dir: Path, exported: Mapping[str, str]) -> Mapping[str, str]:
        del source_dir, exported
        return {}


class CodeBuildExecutor:
    """Executor for Build/CodeBuild actions (and Test/CodeBuild: same contract)."""

    def __init__(
        self,
        projects: Mapping[str, CodeBuildProject],
        region: str,
        account_id: str,
        endpoint_url: str | None,
        image_build: ImageBuild | None = None,
        base_environment: Mapping[str, str] | None = None,
        cache: LocalBuildCache | None = None,
        provisioning_s: Callable[[], float] | None = None,
    ) -> None:
        self._projects = projects
        # How long a build waits QUEUED and PROVISIONING before its phases run (harness/timing.py).
        self._provisioning_s = provisioning_s
        self._region = region
        self._account_id = account_id
        self._endpoint_url = endpoint_url
        self._image_build = image_build or NoImageBuild()
        # This machine as the build host of projects with a LOCAL cache (None: builds keep nothing).
        self._cache = cache
        # What the build container starts with: PATH, HOME, locale; not the harness's own variables.
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "DOCKER_HOST", "DOCKER_BUILDKIT")
        self._base = (
            dict(base_environment)
            if base_environment is not None
            else {name: os.environ[name] for name in keep if name in os.environ}
        )
        self._builds = 0

    def __call__(self, context: ActionContext) -> ActionOutput:
        project_name = context.configuration.get("ProjectName", "")
        project = self._projects.get(project_name)
        if project is None:
            raise ActionFailed(f"CodeBuild project {project_name!r} not found in the template")
        if not context.input_artifacts:
            raise ActionFailed("a CodeBuild action needs an input artifact")
        primary_name = context.configuration.get("PrimarySource", context.input_artifacts[0].name)
        inputs = {artifact.name: artifact for artifact in context.input_artifacts}
        if primary_name not in inputs:
            raise ActionFailed(f"PrimarySource {primary_name!r} is not an input artifact of the action")
        primary = inputs[primary_name]
        source_dir = unzip(primary.path, context.work_dir / "src")
        secondary = {
            f"CODEBUILD_SRC_DIR_{name}": str(unzip(ref.path, context.work_dir / f"src_{name}"))
            for name, ref in inputs.items()
            if name != primary_name
        }
        spec = self._buildspec(project, source_dir)
        self._builds += 1
        build_uuid = str(uuid.uuid4())
        build_id = f"{project.name}:{build_uuid}"
        environment = {
            **self._base,
            **spec.variables,
            **{v.name: v.value for v in project.environment_variables},
            **self._action_variables(context),
            **self._codebuild_variables(context, build_id, str(source_dir), primary.revision),
            **secondary,
            **self._emulator_variables(),
            **self._image_build.environment(context.work_dir),
        }
        cached = self._custom_cache(project, spec)
        if cached:
            restored = cached.restore(project.name, spec.cache_paths, source_dir)
            context.progress(f"cache: {restored} files restored from the local cache ({CUSTOM_MODE})")
        self._image_build.prepare(source_dir)
        wait_s = self._provisioning_s() if self._provisioning_s is not None else 0.0
        if wait_s > 0:
            context.progress(f"build {build_id}: QUEUED and PROVISIONING for {wait_s:.1f} s")
            time.sleep(wait_s)
        context.progress(f"build {build_id} started")
        outcome = run_buildspec(
            spec,
            source_dir,
            environment,
            context.work_dir / "logs" / "build.log",
            on_line=context.progress,
            timeout_s=project.timeout_minutes * 60,
        )
        if not outcome.succeeded:
            raise ActionFailed(f"Build {build_id} failed: {outcome.reason}", log_path=outcome.log_path)
        if cached:
            kept = cached.save(project.name, spec.cache_paths, source_dir)
            context.progress(f"cache: {kept} files kept in the local cache ({CUSTOM_MODE})")
        variables = dict(outcome.exported)
        variables.update(self._image_build.finish(source_dir, outcome.exported))
        artifacts = {}
        if context.action.output_artifacts:
            name = context.action.output_artifacts[0]
            try:
                artifacts[name] = self._output_artifact(spec, source_dir, context.output_path(name))
            except BuildspecError as error:
                raise ActionFailed(f"Build {build_id}: {error}") from error
        return ActionOutput(
            variables=variables,
            artifacts=artifacts,
            summary=f"build {build_id} succeeded",
            revision=primary.revision,
            external_execution_id=build_id,
            log_path=outcome.log_path,
        )

    def _custom_cache(self, project: CodeBuildProject, spec: Buildspec) -> LocalBuildCache | None:
        """The local cache when the project keeps one of the buildspec's `cache.paths`."""
        wanted = project.cache_type == LOCAL and CUSTOM_MODE in project.cache_modes and spec.cache_paths
        return self._cache if wanted else None

    def _buildspec(self, project: CodeBuildProject, source_dir: Path) -> Buildspec:
        text = project.buildspec
        if "\n" not in text:  # a path in the source (CodeBuild's rule: inline buildspecs are YAML text)
            path = source_dir / text
            if not path.is_file():
                raise ActionFailed(f"YAML_FILE_ERROR: buildspec {text!r} not found in the source")
            text = path.read_text(encoding="utf-8")
        try:
            return parse_buildspec(text)
        except BuildspecError as error:
            raise ActionFailed(f"YAML_FILE_ERROR: {error}") from error

    def _output_artifact(self, spec: Buildspec, source_dir: Path, destination: Path) -> Path:
        if spec.artifacts is None:
            # CodePipeline still needs an artifact: an empty zip stands for "no files".
            empty = destination.parent / "empty"
            empty.mkdir(parents=True, exist_ok=True)
            return zip_tree(empty, destination)
        return collect_artifacts(spec.artifacts, source_dir, destination)

    @staticmethod
    def _action_variables(context: ActionContext) -> dict[str, str]:
        raw = context.configuration.get("EnvironmentVariables")
        if not raw:
            return {}
        try:
            items = json.loads(raw)
            return {str(item["name"]): str(item["value"]) for item in items}
        except (ValueError, TypeError, KeyError) as error:
            raise ActionFailed(
                f"EnvironmentVariables must be a JSON list of {{name, value}}: {error}"
            ) from error

    def _codebuild_variables(
        self, context: ActionContext, build_id: str, src: str, revision: str | None
    ) -> dict[str, str]:
        primary = context.input_artifacts[0]
        return {
            "CODEBUILD_BUILD_ID": build_id,
            "CODEBUILD_BUILD_ARN": f"arn:aws:codebuild:{self._region}:{self._account_id}:build/{build_id}",
            "CODEBUILD_BUILD_NUMBER": str(self._builds),
            "CODEBUILD_INITIATOR": f"codepipeline/{context.pipeline.name}",
            "CODEBUILD_RESOLVED_SOURCE_VERSION": revision or "",
            "CODEBUILD_SOURCE_VERSION": f"arn:aws:s3:::{primary.bucket}/{primary.key}",
            "CODEBUILD_SRC_DIR": src,
            "CODEBUILD_START_TIME": str(int(time.time() * 1000)),
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
        }

    def _emulator_variables(self) -> dict[str, str]:
        if self._endpoint_url is None:
            return {}
        return {
            "AWS_ENDPOINT_URL": self._endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
