"""The Build action (CodeBuild): the project's buildspec runs for real on an unpacked source artifact.

`CodeBuildExecutor` unpacks the primary input artifact into the action's work folder (secondary
inputs go to `CODEBUILD_SRC_DIR_<artifact>`, as CodeBuild does), reads the buildspec the project
names (a path in the source, or inline YAML), and runs it (`harness.pipeline.buildspec`) with
CodeBuild's environment: CODEBUILD_BUILD_ID/ARN/NUMBER, CODEBUILD_INITIATOR,
CODEBUILD_RESOLVED_SOURCE_VERSION (the commit), CODEBUILD_SOURCE_VERSION, CODEBUILD_SRC_DIR,
CODEBUILD_START_TIME, AWS_REGION/AWS_DEFAULT_REGION, the project's variables and the action's
`EnvironmentVariables`, plus the emulator's endpoint (AWS_ENDPOINT_URL) and credentials.

The principals, as on AWS (with `roles`, harness.service_roles): CodePipeline starts the build and reads
its status with the pipeline's role (`codebuild:StartBuild`, `codebuild:BatchGetBuilds` on the project:
CodePipeline user guide, "Manage the CodePipeline service role"), refused as CodePipeline reports it
("Error calling startBuild: ..."); the build runs as the project's `ServiceRole` (CodeBuild user guide,
"Allow CodeBuild to interact with other AWS services"): the build's AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN
are that role's temporary credentials, the source artifact is downloaded from the artifact bucket with
them (DOWNLOAD_SOURCE: a denial is CodeBuild's "CLIENT_ERROR: AccessDenied ... for primary source and
source version ..."), and the image push the buildspec makes is authorized for the role (Amazon ECR user
guide, "Pushing a Docker image": GetAuthorizationToken and the layer and PutImage actions on the
repository; a denial is docker's "denied: User: ... is not authorized to perform: ecr:..."): the local
registry that stands for ECR checks no IAM itself. The build's log goes to CloudWatch Logs as the role
(log group `/aws/codebuild/<project>`, stream `<build uuid>`: CodeBuild user guide, "View build details",
CloudWatch Logs); a role that may not create them fails the build before it runs, as CodeBuild's
"ACCESS_DENIED: Service role ... does not allow AWS CodeBuild to create Amazon CloudWatch Logs log
streams for build ...". Not modelled: the output artifact's upload by the build role (the runner uploads
it with the pipeline's role).

The `env.exported-variables` become the action's output variables; the `artifacts` section becomes its
output artifact. The log is kept in the work folder and streamed as progress.

What differs locally is named by an `ImageBuild` (the only place that knows the container runtime):
it adds environment variables (where the registry is, which runtime builds) and, once the buildspec
succeeded, finishes the image (records it in the emulator's ECR, or registers the source tree with
the process runtime) and may add output variables.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from harness.compute.container_logs import batches
from harness.iam.credentials import ADMIN_CREDENTIALS, Credentials
from harness.pipeline.artifacts import ArtifactRef, unzip, zip_tree
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
from harness.service_roles import (
    CODEBUILD,
    CODEPIPELINE,
    ServiceRoles,
    codebuild_session,
    codepipeline_session,
    is_access_denied,
)

# What `docker push` to ECR needs (Amazon ECR user guide, "Pushing a Docker image": required permissions).
ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)


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
        roles: ServiceRoles | None = None,
        pipeline_role_arn: str | None = None,
        provisioning_s: Callable[[], float] | None = None,
    ) -> None:
        self._projects = projects
        # The principals (module docstring); None: every call with the admin's rights.
        self._roles = roles
        self._pipeline_role = pipeline_role_arn or None
        self._pipeline_session = codepipeline_session()
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
        self._pipeline_may(project.name, "codebuild:StartBuild", "startBuild")
        self._pipeline_may(project.name, "codebuild:BatchGetBuilds", "batchGetBuilds")
        build_uuid = str(uuid.uuid4())
        build_id = f"{project.name}:{build_uuid}"
        role = project.service_role or None
        session_name = codebuild_session(build_uuid)
        credentials = self._build_credentials(role, session_name, build_id)
        archive = self._download_source(primary, role, session_name, context.work_dir, build_id)
        source_dir = unzip(archive, context.work_dir / "src")
        secondary = {
            f"CODEBUILD_SRC_DIR_{name}": str(unzip(ref.path, context.work_dir / f"src_{name}"))
            for name, ref in inputs.items()
            if name != primary_name
        }
        spec = self._buildspec(project, source_dir)
        self._builds += 1
        environment = {
            **self._base,
            **spec.variables,
            **{v.name: v.value for v in project.environment_variables},
            **self._action_variables(context),
            **self._codebuild_variables(context, build_id, str(source_dir), primary.revision),
            **secondary,
            **self._emulator_variables(credentials),
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
        logs = self._open_log_stream(project.name, build_uuid, role, session_name, build_id)
        context.progress(f"build {build_id} started")
        outcome = run_buildspec(
            spec,
            source_dir,
            environment,
            context.work_dir / "logs" / "build.log",
            on_line=context.progress,
            timeout_s=project.timeout_minutes * 60,
        )
        self._send_log(logs, project.name, build_uuid, outcome.log_path)
        if not outcome.succeeded:
            raise ActionFailed(f"Build {build_id} failed: {outcome.reason}", log_path=outcome.log_path)
        self._push_allowed(outcome.exported, role, session_name, build_id, outcome.log_path)
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

    # -- the principals ------------------------------------------------------------------------------
    def _pipeline_may(self, project_name: str, action: str, verb: str) -> None:
        """CodePipeline's call on the project as the pipeline's role (moto holds no CodeBuild project)."""
        if self._roles is None:
            return
        arn = f"arn:aws:codebuild:{self._region}:{self._account_id}:project/{project_name}"
        denied = self._roles.authorize(self._pipeline_role, self._pipeline_session, CODEPIPELINE, action, arn)
        if denied is not None:
            raise ActionFailed(
                f"Error calling {verb}: {denied} (Service: AWSCodeBuild; Status Code: 400; "
                f"Error Code: AccessDeniedException; Request ID: {uuid.uuid4()})"
            )

    def _build_credentials(self, role: str | None, session_name: str, build_id: str) -> Credentials:
        if self._roles is None:
            return ADMIN_CREDENTIALS
        try:
            return self._roles.credentials(role, session_name, CODEBUILD)
        except Exception as error:  # CodeBuild cannot assume the service role: the build never starts
            raise ActionFailed(f"Build {build_id} failed: PROVISIONING: CLIENT_ERROR: {error}") from error

    def _download_source(
        self, primary: ArtifactRef, role: str | None, session_name: str, work_dir: Path, build_id: str
    ) -> Path:
        """DOWNLOAD_SOURCE: the artifact from the bucket as the build's role (the local copy when the store
        keeps it on disk only)."""
        if self._roles is None:
            return primary.path
        s3 = self._roles.client("s3", role, session_name, CODEBUILD)
        try:
            body = s3.get_object(Bucket=primary.bucket, Key=primary.key)["Body"].read()
        except Exception as error:
            if not is_access_denied(error):
                return primary.path
            source = f"arn:aws:s3:::{primary.bucket}/{primary.key}"
            raise ActionFailed(
                f"Build {build_id} failed: DOWNLOAD_SOURCE: CLIENT_ERROR: {error} for primary source and "
                f"source version {source}"
            ) from error
        archive = work_dir / "source.zip"
        archive.write_bytes(body)
        return archive

    def _open_log_stream(
        self, project_name: str, build_uuid: str, role: str | None, session_name: str, build_id: str
    ) -> Any:
        """The build's CloudWatch Logs stream, made as the build's role; its client (None: no roles)."""
        if self._roles is None:
            return None
        logs = self._roles.client("logs", role, session_name, CODEBUILD)
        group = f"/aws/codebuild/{project_name}"
        try:
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=group)
            logs.create_log_stream(logGroupName=group, logStreamName=build_uuid)
        except Exception as error:
            if not is_access_denied(error):
                raise
            arn = f"arn:aws:codebuild:{self._region}:{self._account_id}:build/{build_id}"
            message = getattr(error, "response", {}).get("Error", {}).get("Message", str(error))
            raise ActionFailed(
                f"Build {build_id} failed: PROVISIONING: ACCESS_DENIED: Service role {role} does not allow "
                f"AWS CodeBuild to create Amazon CloudWatch Logs log streams for build {arn}. Error "
                f"message: {message}"
            ) from error
        return logs

    def _send_log(self, logs: Any, project_name: str, build_uuid: str, log_path: Path | None) -> None:
        """The build's log lines to its stream (a refused PutLogEvents loses the log, not the build)."""
        if logs is None or log_path is None or not log_path.is_file():
            return
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() or [" "]
        group = f"/aws/codebuild/{project_name}"
        try:
            for batch in batches(lines, int(time.time() * 1000)):
                logs.put_log_events(logGroupName=group, logStreamName=build_uuid, logEvents=batch)
        except Exception as error:
            if not is_access_denied(error):
                raise

    def _push_allowed(
        self,
        exported: Mapping[str, str],
        role: str | None,
        session_name: str,
        build_id: str,
        log_path: Path | None,
    ) -> None:
        """The buildspec's `docker push` of IMAGE_URI, authorized for the build's role."""
        uri = exported.get("IMAGE_URI", "")
        if self._roles is None or not uri or "/" not in uri:
            return
        repository = uri.partition("@")[0].split("/", 1)[1].rsplit(":", 1)[0]
        arn = f"arn:aws:ecr:{self._region}:{self._account_id}:repository/{repository}"
        for action, resource in [("ecr:GetAuthorizationToken", "*"), *((a, arn) for a in ECR_PUSH_ACTIONS)]:
            denied = self._roles.authorize(role, session_name, CODEBUILD, action, resource)
            if denied is not None:
                raise ActionFailed(
                    f"Build {build_id} failed: BUILD: COMMAND_EXECUTION_ERROR: Error while executing "
                    f"command: docker push {uri.partition('@')[0]}. Reason: exit status 1 (denied: {denied})",
                    log_path=log_path,
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

    def _emulator_variables(self, credentials: Credentials) -> dict[str, str]:
        """Where the emulator is, and the build's credentials (CodeBuild gives the service role's)."""
        if self._endpoint_url is None:
            return {}
        return {"AWS_ENDPOINT_URL": self._endpoint_url, **credentials.as_env()}
