"""The runner core: executes a pipeline's stages in order, as CodePipeline does.

Stages run one after another; inside a stage, actions run by ascending run order (actions that share a
run order run one after another here, in definition order, where AWS runs them in parallel). Each
action gets its configuration with CodePipeline's variables resolved (`#{Namespace.Name}` from earlier
actions' output variables, `#{codepipeline.PipelineExecutionId}`), its input artifacts and a work
folder; its executor is looked up in the explicit table by (category, provider). A failed action
fails its stage once its run-order group is done, and the pipeline stops there with the reason:
nothing after it runs. Progress goes to an event sink as `PipelineEvent`s.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from harness.pipeline.artifacts import ArtifactAccessDenied, ArtifactRef, ArtifactStore
from harness.pipeline.definition import Action, Pipeline, Stage
from harness.pipeline.model import (
    FAILED,
    IN_PROGRESS,
    SUCCEEDED,
    ActionContext,
    ActionFailed,
    ActionResult,
    EventKind,
    EventSink,
    ExecutorTable,
    PipelineEvent,
    PipelineResult,
    SourceRequest,
    StageResult,
    Status,
)

_log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"#\{([A-Za-z0-9@\-_]+)\.([A-Za-z0-9@\-_.]+)\}")


class UnresolvedVariable(ActionFailed):
    pass


def substitute_variables(value: str, variables: Mapping[str, Mapping[str, str]]) -> str:
    """Replaces `#{Namespace.Name}` references; an unknown one fails the action, as on AWS."""

    def replace(match: re.Match[str]) -> str:
        namespace, name = match.groups()
        try:
            return variables[namespace][name]
        except KeyError:
            raise UnresolvedVariable(
                f"unable to resolve the variable #{{{namespace}.{name}}}: no such output variable "
                "from an earlier action",
                failure_type="ConfigurationError",
            ) from None

    return _VARIABLE.sub(replace, value)


def _null_sink(event: PipelineEvent) -> None:
    del event


class PipelineRunner:
    """Runs one pipeline definition with one executor table.

    `work_root` holds each execution's action folders (`<execution id>/actions/<stage>/<action>`); the
    artifacts go to the `store`.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        executors: ExecutorTable,
        store: ArtifactStore,
        work_root: Path,
        events: EventSink | None = None,
        state_listener: Callable[[Pipeline, PipelineResult], None] | None = None,
    ) -> None:
        keys = {action.action_type.key for stage in pipeline.stages for action in stage.actions}
        missing = sorted(key for key in keys if key not in executors)
        if missing:
            raise ValueError(f"no executor for action types {missing} (category, provider)")
        self.pipeline = pipeline
        self.executors = executors
        self.store = store
        self.work_root = work_root
        self._events = events or _null_sink
        # Told of every stage and action change (e.g. to serve GetPipelineState, see state.py).
        self._state_listener = state_listener

    def run(self, source: SourceRequest | None = None, execution_id: str | None = None) -> PipelineResult:
        """Executes the pipeline once, from its first stage, and returns how it went."""
        execution_id = execution_id or str(uuid.uuid4())
        started = time.time()
        result = PipelineResult(self.pipeline.name, execution_id, IN_PROGRESS, started)
        result.variables["codepipeline"] = {"PipelineExecutionId": execution_id}
        artifacts: dict[str, ArtifactRef] = {}
        self._emit("pipeline-started", result, message=self.pipeline.name)
        for stage in self.pipeline.stages:
            stage_result = self._run_stage(stage, result, artifacts, source)
            if stage_result.status == FAILED:
                failed = next(a for a in stage_result.actions if a.status == FAILED)
                result.status = FAILED
                result.failed_stage = stage.name
                result.failed_action = failed.name
                result.reason = failed.error
                break
        else:
            result.status = SUCCEEDED
        result.finished_at = time.time()
        self._emit(
            "pipeline-finished",
            result,
            status=result.status,
            message=result.reason or "",
            elapsed_s=result.finished_at - started,
        )
        return result

    def _run_stage(
        self,
        stage: Stage,
        result: PipelineResult,
        artifacts: dict[str, ArtifactRef],
        source: SourceRequest | None,
    ) -> StageResult:
        stage_result = StageResult(stage.name, IN_PROGRESS, time.time())
        result.stages.append(stage_result)  # visible while it runs (the pipeline's state)
        self._emit("stage-started", result, stage=stage.name)
        for group in stage.action_groups():
            outcomes = [self._run_action(stage_result, action, result, artifacts, source) for action in group]
            if any(outcome.status == FAILED for outcome in outcomes):
                stage_result.status = FAILED
                break
        else:
            stage_result.status = SUCCEEDED
        stage_result.finished_at = time.time()
        self._emit(
            "stage-finished",
            result,
            stage=stage.name,
            status=stage_result.status,
            elapsed_s=stage_result.finished_at - stage_result.started_at,
        )
        return stage_result

    def _run_action(
        self,
        stage: StageResult,
        action: Action,
        result: PipelineResult,
        artifacts: dict[str, ArtifactRef],
        source: SourceRequest | None,
    ) -> ActionResult:
        category, provider = action.action_type.key
        outcome = ActionResult(stage.name, action.name, category, provider, IN_PROGRESS, time.time())
        stage.actions.append(outcome)
        self._emit("action-started", result, stage=stage.name, action=action.name)
        work_dir = self.work_root / result.execution_id / "actions" / stage.name / action.name
        work_dir.mkdir(parents=True, exist_ok=True)

        def progress(line: str) -> None:
            self._emit("action-progress", result, stage=stage.name, action=action.name, message=line)

        try:
            configuration = {
                key: substitute_variables(str(value), result.variables)
                for key, value in action.configuration.items()
            }
            context = ActionContext(
                pipeline=self.pipeline,
                execution_id=result.execution_id,
                stage=stage.name,
                action=action,
                configuration=configuration,
                input_artifacts=tuple(artifacts[name] for name in action.input_artifacts),
                work_dir=work_dir,
                source=source,
                variables=result.variables,
                progress=progress,
                action_execution_id=outcome.action_execution_id,
            )
            output = self.executors[action.action_type.key](context)
            missing = [name for name in action.output_artifacts if name not in output.artifacts]
            if missing:
                raise ActionFailed(f"the action produced no output artifact {missing}")
            stored = []
            for name in action.output_artifacts:
                ref = self.store.put(result.execution_id, name, output.artifacts[name], output.revision)
                artifacts[name] = ref
                stored.append(ref)
            outcome.artifacts = tuple(stored)
            outcome.variables = dict(output.variables)
            outcome.summary = output.summary
            outcome.external_execution_id = output.external_execution_id
            outcome.updated_by = output.updated_by
            outcome.log_path = output.log_path
            if action.namespace:
                result.variables[action.namespace] = dict(output.variables)
            outcome.status = SUCCEEDED
        except ArtifactAccessDenied as denied:  # the pipeline's role may not store the action's output
            outcome.status = FAILED
            outcome.error = str(denied)
            outcome.error_code = "JobFailed"
        except ActionFailed as failure:
            outcome.status = FAILED
            outcome.error = failure.reason
            outcome.error_code = failure.failure_type
            outcome.updated_by = failure.updated_by
            outcome.log_path = failure.log_path
        except Exception as error:  # an executor's bug still fails only its action, with the reason kept
            _log.debug("action %s/%s raised\n%s", stage.name, action.name, traceback.format_exc())
            outcome.status = FAILED
            outcome.error = (
                f"internal error in the {category}/{provider} executor: {type(error).__name__}: {error}"
            )
        outcome.finished_at = time.time()
        self._emit(
            "action-finished",
            result,
            stage=stage.name,
            action=action.name,
            status=outcome.status,
            message=outcome.error or outcome.summary,
            elapsed_s=outcome.finished_at - outcome.started_at,
        )
        return outcome

    def _emit(
        self,
        kind: EventKind,
        result: PipelineResult,
        *,
        stage: str | None = None,
        action: str | None = None,
        status: Status | None = None,
        message: str = "",
        elapsed_s: float | None = None,
    ) -> None:
        if self._state_listener is not None and kind != "action-progress":
            self._state_listener(self.pipeline, result)
        event = PipelineEvent(
            kind, result.execution_id, time.time(), stage, action, status, message, elapsed_s
        )
        try:
            self._events(event)
        except Exception:  # a broken progress display must not break the run
            _log.warning("the pipeline event sink raised on %s", kind, exc_info=True)
