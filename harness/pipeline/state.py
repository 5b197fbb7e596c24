"""The pipeline's state as CodePipeline's GetPipelineState answers it, kept while the runner runs.

moto 5.2.5 answers GetPipelineState with a 500 (docs/FACTS.md), yet functions read it: the
register-model Lambda finds who approved in the Approve stage's `latestExecution` (`lastUpdatedBy`,
`summary`, `lastStatusChange`). `pipeline_state()` renders a run's progress in that response's shape;
`PipelineStates` keeps the latest one per (account, region, pipeline) the way CodePipeline does (a
stage keeps its last execution's state until a new execution reaches it). The store lives with
moto's CodePipeline backend (harness/context.py, `HarnessContext.pipeline_states`), so moto's reset
drops it with the rest of its state. Pass `state_listener(states, account, region)` as the runner's
`state_listener`; the seam answering GetPipelineState reads `states.get(account, region, name)`;
ListPipelineExecutions reads `states.executions(account, region, name)` (`execution_summary()`'s shape,
newest first).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from harness.context import PipelineStates
from harness.pipeline.definition import Pipeline
from harness.pipeline.model import ActionResult, PipelineResult


def pipeline_state(pipeline: Pipeline, result: PipelineResult) -> dict[str, Any]:
    """GetPipelineState's response: every stage and action of `pipeline`, with `latestExecution` for
    those `result` has reached (timestamps: epoch seconds)."""
    reached = {stage.name: stage for stage in result.stages}
    stages = []
    for stage in pipeline.stages:
        stage_result = reached.get(stage.name)
        ran = {action.name: action for action in stage_result.actions} if stage_result else {}
        entry: dict[str, Any] = {
            "stageName": stage.name,
            "inboundTransitionState": {"enabled": True},
            "actionStates": [_action_state(action.name, ran.get(action.name)) for action in stage.actions],
        }
        if stage_result is not None:
            entry["latestExecution"] = {
                "pipelineExecutionId": result.execution_id,
                "status": stage_result.status,
            }
        stages.append(entry)
    return {
        "pipelineName": pipeline.name,
        "pipelineVersion": 1,
        "stageStates": stages,
        "created": result.started_at,
        "updated": result.finished_at or max([result.started_at, *(s.started_at for s in result.stages)]),
    }


def execution_summary(result: PipelineResult, trigger: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One of ListPipelineExecutions' `pipelineExecutionSummaries` (timestamps: epoch seconds).
    `trigger` is the ExecutionTrigger that started it (default: a StartPipelineExecution call)."""
    summary: dict[str, Any] = {
        "pipelineExecutionId": result.execution_id,
        "status": result.status,
        "startTime": result.started_at,
        "lastUpdateTime": result.finished_at or time.time(),
        "trigger": dict(trigger) if trigger else {"triggerType": "StartPipelineExecution"},
        "executionMode": "SUPERSEDED",
    }
    if result.reason:
        summary["statusSummary"] = result.reason[:2048]
    revisions = []
    for stage in result.stages[:1]:  # the source stage's revisions, as the API lists them
        for action in stage.actions:
            commit = action.variables.get("CommitId")
            if commit:
                revisions.append(
                    {
                        "actionName": action.name,
                        "revisionId": commit,
                        "revisionSummary": action.variables.get("CommitMessage", "")[:2048],
                    }
                )
    summary["sourceRevisions"] = revisions
    return summary


def _action_state(name: str, action: ActionResult | None) -> dict[str, Any]:
    if action is None:
        return {"actionName": name}
    latest: dict[str, Any] = {
        "actionExecutionId": action.action_execution_id,
        "status": action.status,
        "summary": action.error or action.summary,
        "lastStatusChange": action.finished_at or action.started_at,
    }
    if action.updated_by:
        latest["lastUpdatedBy"] = action.updated_by
    if action.external_execution_id:
        latest["externalExecutionId"] = action.external_execution_id
        if action.category == "Approval":
            latest["token"] = action.external_execution_id
    if action.error:
        latest["errorDetails"] = {"code": action.error_code or "JobFailed", "message": action.error}
    return {"actionName": name, "latestExecution": latest}


def state_listener(
    states: PipelineStates,
    account_id: str,
    region: str,
    trigger_of: Callable[[str], Mapping[str, str] | None] | None = None,
) -> Callable[[Pipeline, PipelineResult], None]:
    """A runner's `state_listener` that keeps GetPipelineState's view of its runs in `states`.
    `trigger_of(execution id)` names what started each execution (harness/pipeline/trigger.py)."""

    def publish(pipeline: Pipeline, result: PipelineResult) -> None:
        trigger = trigger_of(result.execution_id) if trigger_of is not None else None
        states.publish(account_id, region, pipeline_state(pipeline, result))
        states.record_execution(account_id, region, pipeline.name, execution_summary(result, trigger))

    return publish
