"""The Approval/Manual action and its policies: who says yes or no, chosen per run.

A policy is any callable `(ApprovalRequest) -> ApprovalDecision`. Provided:

- `auto_approve`: approves at once (comment "approved automatically").
- `PromptApproval`: asks in the terminal, showing the request's summary (endpoint, metrics: the
  runner's caller supplies it as a callable to `ManualApprovalExecutor`), then reads y/n and a comment.
  A closed input rejects.
- `WaitApproval`: blocks until another process decides through an `ApprovalChannel`: a folder in which
  the waiting run writes `pending/<token>.json` (the request) and another `mlops` process writes
  `decisions/<token>.json` (`decide()`, an atomic rename), which the waiting run picks up. Given an
  `ApprovalBoard` too (the CodePipeline seam's `EmulatorApprovalBoard`), the waiting request is also
  open to CodePipeline's PutApprovalResult (with the token GetPipelineState shows), which is how
  `mlops approve` / `reject` and the console decide; its decision lands in the same channel.
- a scenario's callable: any function with the policy's signature.

Rejection fails the action (and so the stage and the pipeline) with "Rejected by <who>: <comment>";
nothing after it runs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, TextIO

from harness.pipeline.model import ActionContext, ActionFailed, ActionOutput


@dataclass(frozen=True)
class ApprovalRequest:
    pipeline: str
    execution_id: str
    stage: str
    action: str
    token: str
    custom_data: str = ""
    external_link: str = ""
    summary: str = ""  # what the approver should look at (endpoint, metrics), one or more lines
    requested_at: float = 0.0


@dataclass(frozen=True)
class ApprovalDecision:
    approved: bool
    comment: str = ""
    approver: str = "local"


ApprovalPolicy = Callable[[ApprovalRequest], ApprovalDecision]


def auto_approve(request: ApprovalRequest) -> ApprovalDecision:
    del request
    return ApprovalDecision(True, "approved automatically", "auto")


def describe(request: ApprovalRequest) -> str:
    """The request as a person reads it."""
    lines = [
        f"Approval needed: {request.pipeline} / {request.stage} / {request.action}",
        f"  execution {request.execution_id}, token {request.token}",
    ]
    if request.custom_data:
        lines.append(f"  {request.custom_data}")
    if request.external_link:
        lines.append(f"  review: {request.external_link}")
    lines.extend(f"  {line}" for line in request.summary.splitlines())
    return "\n".join(lines)


class PromptApproval:
    """Asks in the terminal."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None, approver: str = "") -> None:
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self._approver = approver or os.environ.get("USER", "local")

    def __call__(self, request: ApprovalRequest) -> ApprovalDecision:
        print(describe(request), file=self._stdout)
        answer = self._ask("Approve? [y/N] ")
        if answer is None:
            return ApprovalDecision(False, "no answer: the terminal's input is closed", self._approver)
        approved = answer.strip().lower() in ("y", "yes")
        comment = self._ask("Comment: ") or ""
        return ApprovalDecision(approved, comment.strip(), self._approver)

    def _ask(self, question: str) -> str | None:
        self._stdout.write(question)
        self._stdout.flush()
        line = self._stdin.readline()
        return line if line else None


class ApprovalChannel:
    """A folder through which one process waits for approvals and another gives them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending = root / "pending"
        self._decisions = root / "decisions"

    def publish(self, request: ApprovalRequest) -> None:
        _write_atomically(self._pending / f"{request.token}.json", asdict(request))

    def pending(self) -> list[ApprovalRequest]:
        """Requests without a decision yet, oldest first."""
        requests = []
        for path in sorted(self._pending.glob("*.json")) if self._pending.is_dir() else []:
            if not (self._decisions / path.name).exists():
                requests.append(ApprovalRequest(**json.loads(path.read_text(encoding="utf-8"))))
        return sorted(requests, key=lambda r: r.requested_at)

    def decide(self, approved: bool, comment: str = "", approver: str = "", token: str | None = None) -> str:
        """Decides one pending request (the only one, when no token is given); returns its token."""
        waiting = self.pending()
        if token is None:
            if len(waiting) != 1:
                tokens = [r.token for r in waiting]
                raise ValueError(f"{len(waiting)} approvals are waiting {tokens}: name one with its token")
            token = waiting[0].token
        elif token not in {r.token for r in waiting}:
            raise ValueError(f"no approval with token {token!r} is waiting in {self.root}")
        decision = ApprovalDecision(approved, comment, approver or os.environ.get("USER", "local"))
        _write_atomically(self._decisions / f"{token}.json", asdict(decision))
        return token

    def wait(self, token: str, timeout_s: float | None, poll_s: float = 0.2) -> ApprovalDecision | None:
        """The decision for `token`, or None when none came within `timeout_s` (None: wait forever)."""
        path = self._decisions / f"{token}.json"
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not path.exists():
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)
        return ApprovalDecision(**json.loads(path.read_text(encoding="utf-8")))

    def close(self, token: str) -> None:
        """Removes a finished request (its decision stays, as a record)."""
        (self._pending / f"{token}.json").unlink(missing_ok=True)


def _write_atomically(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(document, handle, indent=2)
    os.replace(handle.name, path)


class ApprovalBoard(Protocol):
    """Where a waiting request is open to an API (PutApprovalResult) until `close`."""

    def open(
        self, pipeline: str, stage: str, action: str, token: str, decide: Callable[[bool, str, str], None]
    ) -> None: ...

    def close(self, token: str) -> None: ...


class WaitApproval:
    """Blocks until another process decides: through the channel's files, or through the board's API."""

    def __init__(
        self, channel: ApprovalChannel, timeout_s: float | None = None, board: ApprovalBoard | None = None
    ) -> None:
        self._channel = channel
        self._timeout_s = timeout_s
        self._board = board

    def __call__(self, request: ApprovalRequest) -> ApprovalDecision:
        self._channel.publish(request)
        token = request.token

        def decide(approved: bool, comment: str, approver: str) -> None:
            self._channel.decide(approved, comment, approver, token=token)

        if self._board is not None:
            self._board.open(request.pipeline, request.stage, request.action, token, decide)
        try:
            decision = self._channel.wait(request.token, self._timeout_s)
        finally:
            if self._board is not None:
                self._board.close(token)
            self._channel.close(request.token)
        if decision is None:
            return ApprovalDecision(False, f"no decision within {self._timeout_s:.0f} s", "timeout")
        return decision


class ManualApprovalExecutor:
    """Executor for Approval/Manual actions."""

    def __init__(self, policy: ApprovalPolicy, summary: Callable[[ActionContext], str] | None = None) -> None:
        self._policy = policy
        self._summary = summary

    def __call__(self, context: ActionContext) -> ActionOutput:
        request = ApprovalRequest(
            pipeline=context.pipeline.name,
            execution_id=context.execution_id,
            stage=context.stage,
            action=context.action.name,
            token=str(uuid.uuid4()),
            custom_data=context.configuration.get("CustomData", ""),
            external_link=context.configuration.get("ExternalEntityLink", ""),
            summary=self._summary(context) if self._summary is not None else "",
            requested_at=time.time(),
        )
        context.progress(f"approval requested (token {request.token})")
        decision = self._policy(request)
        if not isinstance(decision, ApprovalDecision):
            raise ActionFailed(f"the approval policy returned {decision!r}, not an ApprovalDecision")
        if not decision.approved:
            comment = f": {decision.comment}" if decision.comment else ""
            raise ActionFailed(
                f"Rejected by {decision.approver}{comment}",
                failure_type="Rejected",
                updated_by=decision.approver,
            )
        # As GetPipelineState shows an approval: the comment as summary, the approver as lastUpdatedBy.
        return ActionOutput(
            summary=decision.comment, external_execution_id=request.token, updated_by=decision.approver
        )


def policy_named(
    name: str,
    channel: ApprovalChannel | None = None,
    timeout_s: float | None = None,
    board: ApprovalBoard | None = None,
) -> ApprovalPolicy:
    """The policy of `mlops run --approval auto|prompt|wait`."""
    if name == "auto":
        return auto_approve
    if name == "prompt":
        return PromptApproval()
    if name == "wait":
        if channel is None:
            raise ValueError("the wait policy needs an approval channel (a folder)")
        return WaitApproval(channel, timeout_s, board)
    raise ValueError(f"unknown approval policy {name!r}: auto, prompt or wait")
