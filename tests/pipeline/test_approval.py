"""Approval policies, the `wait` one decided by a second process."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.pipeline.approval import (
    ApprovalChannel,
    ApprovalRequest,
    PromptApproval,
    WaitApproval,
    auto_approve,
    policy_named,
)


def _request(token: str = "tok-1", requested_at: float = 1.0) -> ApprovalRequest:
    return ApprovalRequest(
        "pipe", "exec-1", "Approve", "Approve", token, "accuracy 0.93", "", "endpoint: ep-1", requested_at
    )


def test_auto_approves() -> None:
    assert auto_approve(_request()).approved


def test_prompt_shows_the_summary_and_reads_the_answer() -> None:
    out = io.StringIO()
    decision = PromptApproval(io.StringIO("y\nlooks good\n"), out, approver="ana")(_request())
    assert decision.approved and decision.comment == "looks good" and decision.approver == "ana"
    assert "endpoint: ep-1" in out.getvalue() and "accuracy 0.93" in out.getvalue()

    assert not PromptApproval(io.StringIO("n\nno\n"), io.StringIO())(_request()).approved
    closed = PromptApproval(io.StringIO(""), io.StringIO())(_request())
    assert not closed.approved and "closed" in closed.comment


def test_wait_is_decided_by_another_process(tmp_path: Path) -> None:
    channel = ApprovalChannel(tmp_path / "approvals")
    decisions = []
    waiter = threading.Thread(
        target=lambda: decisions.append(WaitApproval(channel, timeout_s=30)(_request()))
    )
    waiter.start()
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from harness.pipeline.approval import ApprovalChannel\n"
        "channel = ApprovalChannel(Path(sys.argv[1]))\n"
        "while not channel.pending():\n"
        "    time.sleep(0.05)\n"
        "print(channel.decide(False, 'metrics regressed', 'bob'))\n"
    )
    decided = subprocess.run(
        [sys.executable, "-c", code, str(channel.root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    waiter.join(timeout=30)

    assert decided.stdout.strip() == "tok-1"
    assert decisions and not decisions[0].approved
    assert decisions[0].comment == "metrics regressed" and decisions[0].approver == "bob"
    assert channel.pending() == []


def test_wait_times_out_as_a_rejection(tmp_path: Path) -> None:
    decision = WaitApproval(ApprovalChannel(tmp_path), timeout_s=0.2)(_request())
    assert not decision.approved and decision.approver == "timeout"


def test_decide_needs_a_token_when_several_wait(tmp_path: Path) -> None:
    channel = ApprovalChannel(tmp_path)
    with pytest.raises(ValueError, match="0 approvals are waiting"):
        channel.decide(True)
    channel.publish(_request("a", 1.0))
    channel.publish(_request("b", 2.0))
    assert [r.token for r in channel.pending()] == ["a", "b"]
    with pytest.raises(ValueError, match="name one with its token"):
        channel.decide(True)
    with pytest.raises(ValueError, match="no approval with token 'c'"):
        channel.decide(True, token="c")
    assert channel.decide(True, "ok", token="b") == "b"
    assert [r.token for r in channel.pending()] == ["a"]


def test_policy_names() -> None:
    assert policy_named("auto") is auto_approve
    assert isinstance(policy_named("prompt"), PromptApproval)
    with pytest.raises(ValueError, match="needs an approval channel"):
        policy_named("wait")
    with pytest.raises(ValueError, match="unknown approval policy"):
        policy_named("maybe")
