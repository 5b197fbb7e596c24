"""The pipeline runner: executes the deployed CodePipeline's stages locally, as CodePipeline does.

The definition is the deployed pipeline as CodePipeline holds it: the platform stack's CloudFormation
creates the pipeline and its CodeBuild project in the emulator (harness/seams/cfn_pipeline.py), and the
runner reads them with GetPipeline and BatchGetProjects. Each action runs through one executor from an
explicit table keyed by (category, provider):

- Source (CodeCommit, CodeStarSourceConnection): a commit of a local git repository (by default the
  working tree as a commit, made without touching branch or index) becomes the source artifact; its
  id travels on as `#{SourceVariables.CommitId}` and as the artifacts' revision.   `source.py`
- Build (CodeBuild): the project's buildspec runs for real, phases and all, with CodeBuild's
  environment; its exported variables and artifacts are the action's. The image is built by Docker
  and pushed to a local registry recorded in the emulator's ECR, or, with the process runtime, is the
  source tree addressed by its content hash.   `build.py`, `buildspec.py`, `images.py`, `image_registry.py`
- Invoke (Lambda): a CodePipeline job on the emulator's job API, the job event to the function,
  continuation tokens followed until PutJobSuccessResult / PutJobFailureResult.   `lambda_action.py`
- Approval (Manual): a policy per run: auto, prompt, wait (another process decides through an
  `ApprovalChannel` folder) or any callable.   `approval.py`

The definition: `definition.py` (typed stages, actions and projects from the API's answers); the
core: `runner.py`, `model.py`, `artifacts.py`; the view for GetPipelineState: `state.py`; terminal
lines: `progress.py`; the table and its inputs: `wiring.py`; what starts an execution (a commit's change
detection, StartPipelineExecution): `trigger.py`; the process runtime's `docker` for builds:
`docker_standin.py`.

Python API::

    from harness.pipeline import (
        ArtifactStore, PipelineRunner, SourceRequest, deployed_pipeline, default_executors,
    )
    deployed = deployed_pipeline(codepipeline_client, codebuild_client, "gptneo-intent-pipeline", account_id)
    store = ArtifactStore(run_dir / "artifacts", deployed.pipeline.artifact_bucket,
                          deployed.pipeline.name, s3_client)
    executors = default_executors(
        deployed=deployed, endpoint_url=emulator.endpoint_url,
        image_build=ProcessImageBuild(process_runtime.register, wheelhouse),  # or DockerImageBuild
        job_board=EmulatorJobBoard(account_id, region),
        invoke=boto3_invoker(invoke_client(emulator.session(), emulator.endpoint_url)),
        approval=policy_named("auto"), approval_summary=lambda ctx: "endpoint ...", store=store,
    )
    states = emulator.context.pipeline_states(account_id, region)   # GetPipelineState's view
    trigger = PipelineTrigger(deployed.pipeline, account_id, region, emulator.endpoint_url)
    runner = PipelineRunner(deployed.pipeline, executors, store, run_dir / "work",
                            events=ProgressPrinter(print),
                            state_listener=state_listener(states, account_id, region, trigger.trigger_of))
    result = trigger.register(runner).commit(Path("."), ref=None)   # as on AWS -> PipelineResult
    result = runner.run(SourceRequest(Path("."), ref=None))   # or directly, with no trigger
    result.status, result.failed_stage, result.reason, result.stage_timings_s(), result.to_json()

Events (`PipelineEvent`: pipeline-/stage-/action-started and -finished, action-progress lines) go to
the `events` callable as they happen; `ProgressPrinter(print)` turns them into terminal lines. The
`state_listener` keeps GetPipelineState's view of the run (`state.py`), which functions read (the
register-model Lambda finds its approver there) once a seam serves it.
`harness.report` turns a result into a report folder.
"""

from harness.context import PipelineStates
from harness.pipeline.approval import (
    ApprovalBoard,
    ApprovalChannel,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    ManualApprovalExecutor,
    PromptApproval,
    WaitApproval,
    auto_approve,
    policy_named,
)
from harness.pipeline.artifacts import ArtifactRef, ArtifactStore
from harness.pipeline.build import CodeBuildExecutor, ImageBuild, NoImageBuild
from harness.pipeline.definition import (
    Action,
    ActionType,
    CodeBuildProject,
    DefinitionError,
    Pipeline,
    Stage,
    codebuild_project_from_api,
    pipeline_from_api,
)
from harness.pipeline.image_registry import LocalRegistry, RegistryError, record_in_ecr
from harness.pipeline.images import DockerImageBuild, ProcessImageBuild
from harness.pipeline.lambda_action import (
    EmulatorJobBoard,
    FunctionError,
    JobBoard,
    JobOutcome,
    LambdaInvokeExecutor,
    boto3_invoker,
    invoke_client,
    invoke_config,
)
from harness.pipeline.model import (
    ActionContext,
    ActionExecutor,
    ActionFailed,
    ActionOutput,
    ActionResult,
    ExecutorTable,
    PipelineEvent,
    PipelineResult,
    SourceRequest,
    StageResult,
)
from harness.pipeline.progress import ProgressPrinter
from harness.pipeline.runner import PipelineRunner
from harness.pipeline.source import GitError, git_source_action, snapshot_commit
from harness.pipeline.state import pipeline_state, state_listener
from harness.pipeline.trigger import PipelineTrigger, TriggerError
from harness.pipeline.wiring import DeployedPipeline, default_executors, deployed_pipeline

__all__ = [
    "Action",
    "ActionContext",
    "ActionExecutor",
    "ActionFailed",
    "ActionOutput",
    "ActionResult",
    "ActionType",
    "ApprovalBoard",
    "ApprovalChannel",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ArtifactRef",
    "ArtifactStore",
    "CodeBuildExecutor",
    "CodeBuildProject",
    "DefinitionError",
    "DeployedPipeline",
    "DockerImageBuild",
    "EmulatorJobBoard",
    "ExecutorTable",
    "FunctionError",
    "GitError",
    "ImageBuild",
    "JobBoard",
    "JobOutcome",
    "LambdaInvokeExecutor",
    "LocalRegistry",
    "ManualApprovalExecutor",
    "NoImageBuild",
    "Pipeline",
    "PipelineEvent",
    "PipelineResult",
    "PipelineRunner",
    "PipelineStates",
    "PipelineTrigger",
    "ProcessImageBuild",
    "ProgressPrinter",
    "PromptApproval",
    "RegistryError",
    "SourceRequest",
    "Stage",
    "StageResult",
    "TriggerError",
    "WaitApproval",
    "auto_approve",
    "boto3_invoker",
    "codebuild_project_from_api",
    "default_executors",
    "deployed_pipeline",
    "git_source_action",
    "invoke_client",
    "invoke_config",
    "pipeline_from_api",
    "pipeline_state",
    "policy_named",
    "record_in_ecr",
    "snapshot_commit",
    "state_listener",
]
