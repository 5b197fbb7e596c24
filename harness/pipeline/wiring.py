"""Putting a runner together: the deployed pipeline, and the one table of executors.

`deployed_pipeline()` reads the platform template (the deployer's rendering) and resolves its pipeline
and CodeBuild projects against the stack the emulator's CloudFormation holds. `default_executors()`
is the explicit table keyed by (category, provider) that the runner dispatches on.
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
    Pipeline,
    codebuild_projects_from_template,
    load_platform_template,
    pipeline_from_template,
)
from harness.pipeline.lambda_action import Invoker, JobBoard, LambdaInvokeExecutor
from harness.pipeline.model import ActionContext, ActionExecutor
from harness.pipeline.resolve import StackContext
from harness.pipeline.source import git_source_action


@dataclass(frozen=True)
class DeployedPipeline:
    pipeline: Pipeline
    projects: Mapping[str, CodeBuildProject]
    context: StackContext


def deployed_pipeline(
    cloudformation: Any, stack_name: str, account_id: str, template: Mapping[str, Any] | None = None
) -> DeployedPipeline:
    """The pipeline of the deployed platform stack (template: the deployer's rendering by default)."""
    template = template if template is not None else load_platform_template()
    context = StackContext.from_cloudformation(cloudformation, stack_name, template, account_id)
    return DeployedPipeline(
        pipeline_from_template(template, context),
        codebuild_projects_from_template(template, context),
        context,
    )


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
    build_provisioning_s: Callable[[], float] | None = None,
) -> dict[tuple[str, str], ActionExecutor]:
    """The executor table: (category, provider) -> executor."""
    context = deployed.context
    build = CodeBuildExecutor(
        deployed.projects,
        context.region,
        context.account_id,
        endpoint_url,
        image_build,
        cache=build_cache,
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
            region=context.region,
            account_id=context.account_id,
        ),
        ("Approval", "Manual"): ManualApprovalExecutor(approval, approval_summary),
    }
