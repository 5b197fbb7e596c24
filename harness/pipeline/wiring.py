"""Putting a runner together: the deployed pipeline, and the one table of executors.

`deployed_pipeline()` reads the deployed pipeline as CodePipeline holds it (GetPipeline) and the CodeBuild
projects its Build and Test actions name (BatchGetProjects), as a console or an SDK user would: the
platform stack's CloudFormation created both (harness/seams/cfn_pipeline.py). `default_executors()` is
the explicit table keyed by (category, provider) that the runner dispatches on.
With `roles` (harness.service_roles), the executors act as the pipeline's and the build project's roles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.pipeline.approval import ApprovalPolicy, ManualApprovalExecutor
from harness.pipeline.artifacts import ArtifactStore
from harness.pipeline.build import CodeBuildExecutor, ImageBuild
from harness.pipeline.build_cache import LocalBuildCache
from harness.pipeline.definition import (
    CodeBuildProject,
    DefinitionError,
    Pipeline,
    codebuild_project_from_api,
    pipeline_from_api,
)
from harness.pipeline.lambda_action import Invoker, JobBoard, LambdaInvokeExecutor
from harness.pipeline.model import ActionContext, ActionExecutor
from harness.pipeline.source import git_source_action
from harness.service_roles import ServiceRoles

# The action types whose configuration's ProjectName names a CodeBuild project.
_CODEBUILD_ACTIONS = frozenset({("Build", "CodeBuild"), ("Test", "CodeBuild")})


@dataclass(frozen=True)
class DeployedPipeline:
    pipeline: Pipeline
    projects: Mapping[str, CodeBuildProject]
    region: str
    account_id: str


def deployed_pipeline(
    codepipeline: Any, codebuild: Any, pipeline_name: str, account_id: str
) -> DeployedPipeline:
    """The pipeline `pipeline_name` (GetPipeline) and the CodeBuild projects it names (BatchGetProjects),
    through boto3 clients of the two services."""
    pipeline = pipeline_from_api(codepipeline.get_pipeline(name=pipeline_name)["pipeline"])
    names = sorted(
        {
            action.configuration["ProjectName"]
            for stage in pipeline.stages
            for action in stage.actions
            if action.action_type.key in _CODEBUILD_ACTIONS and "ProjectName" in action.configuration
        }
    )
    projects: dict[str, CodeBuildProject] = {}
    if names:
        answer = codebuild.batch_get_projects(names=names)
        projects = {p.name: p for p in (codebuild_project_from_api(raw) for raw in answer["projects"])}
        missing = [name for name in names if name not in projects]
        if missing:
            raise DefinitionError(f"{pipeline.name}: no CodeBuild project {', '.join(missing)}")
    return DeployedPipeline(pipeline, projects, str(codepipeline.meta.region_name), account_id)


def default_executors(
    *,
    deployed: DeployedPipeline,
    endpoint_url: str | None,
    image_build: ImageBuild,
    job_board: JobBoard,
    invoke: Invoker,
    approval: ApprovalPolicy,
    approval_summary: Callable[[ActionContext], str] | None = None,
    store: ArtifactStore | None = None,
    lambda_report_timeout_s: float = 60.0,
    build_cache: LocalBuildCache | None = None,
    lambda_async_retry_delays_s: tuple[float, float] = (0.0, 0.0),
    lambda_after_raise_timeout_s: float | None = None,
    roles: ServiceRoles | None = None,
    artifact_credentials: Mapping[str, str] | None = None,
    build_provisioning_s: Callable[[], float] | None = None,
) -> dict[tuple[str, str], ActionExecutor]:
    """The executor table: (category, provider) -> executor. `artifact_credentials`: the Lambda jobs'
    `artifactCredentials` (the pipeline role's temporary credentials)."""
    build = CodeBuildExecutor(
        deployed.projects,
        deployed.region,
        deployed.account_id,
        endpoint_url,
        image_build,
        cache=build_cache,
        roles=roles,
        pipeline_role_arn=deployed.pipeline.role_arn or None,
        provisioning_s=build_provisioning_s,
    )
    return {
        ("Source", "CodeCommit"): git_source_action,
        ("Source", "CodeStarSourceConnection"): git_source_action,
        ("Build", "CodeBuild"): build,
        ("Test", "CodeBuild"): build,
        ("Invoke", "Lambda"): LambdaInvokeExecutor(
            job_board,
            invoke,
            report_timeout_s=lambda_report_timeout_s,
            async_retry_delays_s=lambda_async_retry_delays_s,
            after_raise_timeout_s=lambda_after_raise_timeout_s,
            store=store,
            credentials=artifact_credentials,
            region=deployed.region,
            account_id=deployed.account_id,
        ),
        ("Approval", "Manual"): ManualApprovalExecutor(approval, approval_summary),
    }
