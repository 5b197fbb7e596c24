"""PutApprovalResult through the CodePipeline seam: a waiting approval's token in GetPipelineState, the
decision reaching the waiting action, and the API reference's errors.

AWS CodePipeline API Reference, PutApprovalResult: "token: The system-generated token used to identify
a unique approval request. The token for each open approval request can be obtained using the
GetPipelineState action"; Errors: ActionNotFoundException, ApprovalAlreadyCompletedException ("The
approval action has already been approved or rejected"), InvalidApprovalTokenException ("The approval
request already received a response or has expired"), PipelineNotFoundException,
StageNotFoundException, ValidationException. ApprovalResult: status Approved | Rejected, summary of
0-512 characters.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from harness.context import PipelineStates, states_in_backend
from harness.emulator import ACCOUNT_ID, REGION, EmbeddedEmulator
from harness.pipeline import ApprovalChannel, ApprovalDecision, ApprovalRequest, WaitApproval
from harness.seams.codepipeline import EmulatorApprovalBoard

PIPELINE = "approval-pipeline"


def _states() -> PipelineStates:
    """The pipeline states the CodePipeline seam reads: those held by moto's backend."""
    return states_in_backend(ACCOUNT_ID, REGION)


def _publish_waiting(execution_id: str) -> None:
    _states().publish(
        ACCOUNT_ID,
        REGION,
        {
            "pipelineName": PIPELINE,
            "pipelineVersion": 1,
            "created": time.time(),
            "updated": time.time(),
            "stageStates": [
                {
                    "stageName": "Approve",
                    "inboundTransitionState": {"enabled": True},
                    "latestExecution": {"pipelineExecutionId": execution_id, "status": "InProgress"},
                    "actionStates": [
                        {
                            "actionName": "ManualApproval",
                            "latestExecution": {"status": "InProgress", "lastStatusChange": time.time()},
                        }
                    ],
                }
            ],
        },
    )


def _wait_in_background(tmp_path: Path, execution_id: str) -> tuple[threading.Thread, list[ApprovalDecision]]:
    _publish_waiting(execution_id)
    policy = WaitApproval(
        ApprovalChannel(tmp_path), timeout_s=30, board=EmulatorApprovalBoard(ACCOUNT_ID, REGION)
    )
    request = ApprovalRequest(PIPELINE, execution_id, "Approve", "ManualApproval", f"{execution_id}-token")
    decisions: list[ApprovalDecision] = []
    thread = threading.Thread(target=lambda: decisions.append(policy(request)), daemon=True)
    thread.start()
    return thread, decisions


def _token(client: Any) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = client.get_pipeline_state(name=PIPELINE)
        latest = state["stageStates"][0]["actionStates"][0]["latestExecution"]
        if latest.get("token"):
            return str(latest["token"])
        time.sleep(0.05)
    raise AssertionError("GetPipelineState never showed the waiting approval's token")


def _code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return str(raised.value.response["Error"]["Code"])


def _put(client: Any, token: str, status: str = "Approved", summary: str = "ok", **names: str) -> Any:
    where = {"pipelineName": PIPELINE, "stageName": "Approve", "actionName": "ManualApproval", **names}
    return client.put_approval_result(**where, token=token, result={"status": status, "summary": summary})


def test_the_token_from_get_pipeline_state_approves_the_waiting_action(
    emulator: EmbeddedEmulator, tmp_path: Path
) -> None:
    client = emulator.client("codepipeline")
    thread, decisions = _wait_in_background(tmp_path, "e-approve")
    token = _token(client)
    assert token == "e-approve-token"
    answer = _put(client, token, summary="metrics look right")
    assert "approvedAt" in answer
    thread.join(timeout=10)
    assert decisions and decisions[0].approved and decisions[0].comment == "metrics look right"
    # answered: a second answer is refused as the reference says
    with pytest.raises(ClientError) as raised:
        _put(client, token)
    assert _code(raised) == "ApprovalAlreadyCompletedException"


def test_a_rejection_reaches_the_waiting_action(emulator: EmbeddedEmulator, tmp_path: Path) -> None:
    client = emulator.client("codepipeline")
    thread, decisions = _wait_in_background(tmp_path, "e-reject")
    _put(client, _token(client), status="Rejected", summary="accuracy too low")
    thread.join(timeout=10)
    assert decisions and not decisions[0].approved and decisions[0].comment == "accuracy too low"


def test_the_errors_of_the_api_reference(emulator: EmbeddedEmulator, tmp_path: Path) -> None:
    client = emulator.client("codepipeline")
    thread, decisions = _wait_in_background(tmp_path, "e-errors")
    token = _token(client)
    cases = [
        ({"pipelineName": "no-such-pipeline"}, token, "Approved", "PipelineNotFoundException"),
        ({"stageName": "NoStage"}, token, "Approved", "StageNotFoundException"),
        ({"actionName": "NoAction"}, token, "Approved", "ActionNotFoundException"),
        ({}, "00000000-0000-0000-0000-000000000000", "Approved", "InvalidApprovalTokenException"),
    ]
    for names, given, status, code in cases:
        with pytest.raises(ClientError) as raised:
            _put(client, given, status, **names)
        assert _code(raised) == code, names
    with pytest.raises(ClientError) as raised:
        _put(client, token, summary="x" * 513)
    assert _code(raised) == "ValidationException"
    assert not decisions  # nothing was decided by the refused calls
    _put(client, token)
    thread.join(timeout=10)
    assert decisions and decisions[0].approved


def test_list_pipeline_executions_lists_the_runners_runs(emulator: EmbeddedEmulator) -> None:
    """ListPipelineExecutions: summaries newest first (API reference, ListPipelineExecutions)."""
    from harness.pipeline.model import PipelineResult
    from harness.pipeline.state import execution_summary

    for index, execution_id in enumerate(["run-old", "run-new"]):
        result = PipelineResult(
            PIPELINE, execution_id, "Succeeded", 1_700_000_000.0 + index, 1_700_000_100.0 + index
        )
        _states().record_execution(ACCOUNT_ID, REGION, PIPELINE, execution_summary(result))
    _publish_waiting("e-list")
    answer = emulator.client("codepipeline").list_pipeline_executions(pipelineName=PIPELINE)
    ids = [run["pipelineExecutionId"] for run in answer["pipelineExecutionSummaries"]]
    assert ids[:2] == ["run-new", "run-old"]
    with pytest.raises(ClientError) as raised:
        emulator.client("codepipeline").list_pipeline_executions(pipelineName="never-made")
    assert _code(raised) == "PipelineNotFoundException"  # moto's own answer for a pipeline it lacks
