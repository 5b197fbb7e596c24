"""The control channel of a running local stack: files under `<work dir>/control/`.

A long-lived `mlops up` (or `mlops run --approval wait`) owns a work dir; short commands in other
terminals talk to it through these files, each written atomically (a temporary file, then a rename):

- `stack.json`: the running stack's facts (pid, emulator URL, API URL and key), written when it is
  up, removed when it stops. `mlops trigger` reads it to know a stack runs; `mlops approve` / `reject`
  to find its emulator, where they call CodePipeline's PutApprovalResult.
- `approvals/`: `harness.pipeline.ApprovalChannel` (`pending/<token>.json` from the waiting run,
  `decisions/<token>.json` from PutApprovalResult's decision or another process such as a scenario).
- `requests/<id>.json`: a trigger from `mlops trigger`: `{"id", "kind": "commit"|"data", ...}`. The
  running stack takes requests oldest first, runs each to its end, and writes
  `results/<id>.json` (the run's summary), which `mlops trigger` waits for and prints.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.pipeline import ApprovalChannel

TRIGGER_KINDS = ("commit", "data")


class ControlError(RuntimeError):
    """No stack runs in the work dir, or a request cannot be made or answered."""


@dataclass(frozen=True)
class StackInfo:
    pid: int
    emulator_url: str
    api_url: str | None
    api_key: str | None
    started_at: float


@dataclass(frozen=True)
class TriggerRequest:
    id: str
    kind: str  # "commit": run the pipeline on a commit; "data": put a CSV under the data prefix
    path: str  # the repository (commit) or the CSV file (data), absolute
    ref: str | None = None  # commit only: a ref; None: the working tree as a commit
    requested_at: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in TRIGGER_KINDS:
            raise ControlError(f"a trigger is one of {', '.join(TRIGGER_KINDS)}, not {self.kind!r}")


def _write_atomically(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(document, handle, indent=2, default=str)
    os.replace(handle.name, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ControlChannel:
    """The files of one work dir's control channel (see the module docstring)."""

    def __init__(self, work_dir: Path) -> None:
        self.root = work_dir / "control"
        self._stack = self.root / "stack.json"
        self._requests = self.root / "requests"
        self._results = self.root / "results"
        self.approvals = ApprovalChannel(self.root / "approvals")

    # -- the running stack's side ---------------------------------------------------------------------
    def announce(self, info: StackInfo) -> None:
        _write_atomically(self._stack, asdict(info))

    def withdraw(self) -> None:
        self._stack.unlink(missing_ok=True)

    def next_request(self) -> TriggerRequest | None:
        """The oldest request without a result, or None."""
        if not self._requests.is_dir():
            return None
        waiting = []
        for path in self._requests.glob("*.json"):
            if not (self._results / path.name).exists():
                waiting.append(TriggerRequest(**json.loads(path.read_text(encoding="utf-8"))))
        return min(waiting, key=lambda request: request.requested_at) if waiting else None

    def answer(self, request: TriggerRequest, result: dict[str, Any]) -> None:
        _write_atomically(self._results / f"{request.id}.json", result)

    # -- the commands' side ---------------------------------------------------------------------------
    def running(self) -> StackInfo:
        """The stack running in this work dir; ControlError when none runs."""
        if not self._stack.is_file():
            raise ControlError(f"no local stack runs with the work dir {self.root.parent} (start `mlops up`)")
        info = StackInfo(**json.loads(self._stack.read_text(encoding="utf-8")))
        if not _alive(info.pid):
            raise ControlError(f"the stack of {self.root.parent} (pid {info.pid}) is gone; start `mlops up`")
        return info

    def running_elsewhere(self) -> StackInfo | None:
        """A live stack in this work dir owned by another process (None when none runs)."""
        try:
            info = self.running()
        except ControlError:
            return None
        return info if info.pid != os.getpid() else None

    def request(self, kind: str, path: Path, ref: str | None = None) -> TriggerRequest:
        self.running()
        request = TriggerRequest(uuid.uuid4().hex, kind, str(path.resolve()), ref, time.time())
        _write_atomically(self._requests / f"{request.id}.json", asdict(request))
        return request

    def wait_for_result(self, request: TriggerRequest, timeout_s: float | None = None) -> dict[str, Any]:
        """The result of `request`; ControlError when the stack stops or `timeout_s` passes first."""
        path = self._results / f"{request.id}.json"
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not path.exists():
            self.running()
            if deadline is not None and time.monotonic() > deadline:
                raise ControlError(f"no result for trigger {request.id} within {timeout_s:.0f} s")
            time.sleep(0.5)
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return result
