"""GetPipelineState's view of runs, published by the runner as it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.context import PipelineStates
from harness.pipeline.approval import ApprovalDecision, ApprovalRequest, ManualApprovalExecutor
from harness.pipeline.artifacts import ArtifactStore
from harness.pipeline.definition import Action, ActionType, Pipeline, Stage
from harness.pipeline.model import ActionContext, ActionExecutor, ActionFailed, ActionOutput
from harness.pipeline.runner import PipelineRunner
from harness.pipeline.state import state_listener

WORK = ActionType("Build", "AWS", "Local")
APPROVAL = ActionType("Approval", "AWS", "Manual")
PIPELINE = Pipeline(
    "states",
    (
        Stage("Build", (Action("Make", WORK, {}),)),
        Stage("Approve", (Action("Approve", APPROVAL, {}),)),
        Stage("Ship", (Action("Ship", WORK, {}),)),
    ),
    "bucket",
)


def _run(tmp_path: Path, states: PipelineStates, approve: bool, seen: list[dict[str, Any] | None]) -> None:
    def work(context: ActionContext) -> ActionOutput:
        # Only recorded here: an assertion in an action (the runner's thread) would fail the action,
        # not the test. The test body checks what was seen.
        seen.append(states.get("111", "r", "states"))
        if context.action.name == "Ship" and not approve:
            raise ActionFailed("never")
        return ActionOutput(summary=f"{context.action.name} done", external_execution_id="ext")

    def policy(request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision(approve, "looks right" if approve else "no", "alice")

    executors: dict[tuple[str, str], ActionExecutor] = {
        WORK.key: work,
        APPROVAL.key: ManualApprovalExecutor(policy),
    }
    runner = PipelineRunner(
        PIPELINE,
        executors,
        ArtifactStore(tmp_path, "b", "states"),
        tmp_path,
        state_listener=state_listener(states, "111", "r"),
    )
    runner.run()


def test_the_state_follows_the_run_and_keeps_unreached_stages(tmp_path: Path) -> None:
    states = PipelineStates()
    seen: list[dict[str, Any] | None] = []
    _run(tmp_path, states, True, seen)

    # While an action runs, its state says InProgress: each action saw a published state.
    assert len(seen) == 2 and all(state is not None for state in seen)
    assert seen[0] is not None
    making = seen[0]["stageStates"][0]
    assert making["latestExecution"]["status"] == "InProgress"
    assert making["actionStates"][0]["latestExecution"]["status"] == "InProgress"
    assert "latestExecution" not in seen[0]["stageStates"][2]  # not reached yet
    state = states.get("111", "r", "states")
    assert state is not None
    approve = state["stageStates"][1]["actionStates"][0]["latestExecution"]
    assert approve["status"] == "Succeeded"
    assert approve["lastUpdatedBy"] == "alice" and approve["summary"] == "looks right"
    assert approve["token"]
    first_ship = state["stageStates"][2]["latestExecution"]

    # A second execution rejected at Approve: Ship keeps the first execution's state, as on AWS.
    _run(tmp_path, states, False, [])
    state = states.get("111", "r", "states")
    assert state is not None
    rejected = state["stageStates"][1]
    assert rejected["latestExecution"]["status"] == "Failed"
    assert rejected["actionStates"][0]["latestExecution"]["errorDetails"] == {
        "code": "Rejected",
        "message": "Rejected by alice: no",
    }
    assert state["stageStates"][2]["latestExecution"] == first_ship
    assert states.get("111", "r", "other") is None
