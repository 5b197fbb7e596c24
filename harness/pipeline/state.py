"""The pipeline's state as CodePipeline's GetPipelineState answers it, kept while the runner runs.

moto 5.2.5 answers GetPipelineState with a 500 (docs/FACTS.md), yet functions read it: the
register-model Lambda finds who approved in the Approve stage's `latestExecution` (`lastUpdatedBy`,
`summary`, `lastStatusChange`). `pipeline_state()` renders a run's progress in that response's shape;
`PipelineStates` keeps the latest one per (account, region, pipeline) the way CodePipeline does (a
stage keeps its last execution's state until a new execution reaches it). One `PipelineStates` lives
on each of moto's CodePipeline backends (`states_in_backend`), so moto's reset drops it with the
rest of its state; the harness context hands it out (`HarnessContext.pipeline_states`). Pass its
`listener(account, region)` as the runner's `state_listener`; the seam answering GetPipelineState
reads `get(account, region, name)`.
"""

from __future__ import annotations

import copy
import threading
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

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def listener(self, account_id: str, region: str) -> Callable[[Pipeline, PipelineResult], None]:
        def publish(pipeline: Pipeline, result: PipelineResult) -> None:
            self.publish(account_id, region, pipeline_state(pipeline, result))

        return publish


_BACKEND_ATTRIBUTE = "harness_pipeline_states"
_backend_lock = threading.Lock()


def states_in_backend(account_id: str, region: str) -> PipelineStates:
    """The pipeline states held by moto's CodePipeline backend for this account and region."""
    from moto.codepipeline.models import codepipeline_backends

    backend = codepipeline_backends[account_id][region]
    with _backend_lock:
        states = getattr(backend, _BACKEND_ATTRIBUTE, None)
        if not isinstance(states, PipelineStates):
            states = PipelineStates()
            setattr(backend, _BACKEND_ATTRIBUTE, states)
        return states
