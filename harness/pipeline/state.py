"""The pipeline's state as CodePipeline's GetPipelineState answers it, kept while the runner runs.

moto 5.2.5 answers GetPipelineState with a 500 (../shared/FACTS.md), yet functions read it: the
register-model Lambda finds who approved in the Approve stage's `latestExecution` (`lastUpdatedBy`,
`summary`, `lastStatusChange`). `pipeline_state()` renders a run's progress in that response's shape;
`PipelineStates` keeps the latest one per (account, region, pipeline) the way CodePipeline does (a
stage keeps its last execution's state until a new execution reaches it). Pass
`PipelineStates.listener(account, region)` as the runner's `state_listener`; a seam answering
GetPipelineState reads `PIPELINE_STATES.get(account, region, name)`; ListPipelineExecutions reads
`PIPELINE_STATES.executions(account, region, name)` (`execution_summary()`'s shape, newest first).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

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


def execution_summary(result: PipelineResult) -> dict[str, Any]:
    """One of ListPipelineExecutions' `pipelineExecutionSummaries` (timestamps: epoch seconds)."""
    summary: dict[str, Any] = {
        "pipelineExecutionId": result.execution_id,
        "status": result.status,
        "startTime": result.started_at,
        "lastUpdateTime": result.finished_at or time.time(),
        "trigger": {"triggerType": "StartPipelineExecution"},
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


class PipelineStates:
    """The latest state of each pipeline, shared by the runner (writer) and a seam (reader)."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._executions: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def publish(self, account_id: str, region: str, state: dict[str, Any]) -> None:
        key = (account_id, region, str(state["pipelineName"]))
        with self._lock:
            previous = self._states.get(key)
            merged = copy.deepcopy(state)
            if previous is not None:
                # A stage this execution has not reached keeps its last execution's state, as on AWS.
                before = {stage["stageName"]: stage for stage in previous["stageStates"]}
                merged["stageStates"] = [
                    stage if "latestExecution" in stage else before.get(stage["stageName"], stage)
                    for stage in merged["stageStates"]
                ]
                merged["created"] = previous["created"]
            self._states[key] = merged

    def get(self, account_id: str, region: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            state = self._states.get((account_id, region, name))
            return copy.deepcopy(state) if state is not None else None

    def record_execution(self, account_id: str, region: str, pipeline: str, summary: dict[str, Any]) -> None:
        with self._lock:
            runs = self._executions.setdefault((account_id, region, pipeline), {})
            runs[str(summary["pipelineExecutionId"])] = copy.deepcopy(summary)

    def executions(self, account_id: str, region: str, name: str) -> list[dict[str, Any]] | None:
        """The pipeline's executions, newest first; None for a pipeline never published."""
        with self._lock:
            if (account_id, region, name) not in self._states:
                return None
            runs = self._executions.get((account_id, region, name), {})
            return sorted(copy.deepcopy(list(runs.values())), key=lambda run: -float(run["startTime"]))

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._executions.clear()

    def listener(self, account_id: str, region: str) -> Callable[[Pipeline, PipelineResult], None]:
        def publish(pipeline: Pipeline, result: PipelineResult) -> None:
            self.publish(account_id, region, pipeline_state(pipeline, result))
            self.record_execution(account_id, region, pipeline.name, execution_summary(result))

        return publish


# The process-wide store (moto's state is process-wide too: one embedded emulator per process).
PIPELINE_STATES = PipelineStates()
