"""The control channel's files: a running stack announces itself, takes triggers, answers them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.control import ControlChannel, ControlError, StackInfo, TriggerRequest

MLOPS = Path(sys.executable).parent / "mlops"


def announce(channel: ControlChannel, pid: int | None = None) -> None:
    channel.announce(StackInfo(pid or os.getpid(), "http://127.0.0.1:1", None, None, time.time()))


def test_no_stack_no_trigger(tmp_path: Path) -> None:
    channel = ControlChannel(tmp_path)
    with pytest.raises(ControlError, match="no local stack runs"):
        channel.request("commit", tmp_path)


def test_a_dead_stack_is_reported_as_gone(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    channel = ControlChannel(tmp_path)
    announce(channel, child.pid)
    with pytest.raises(ControlError, match="is gone"):
        channel.running()
    assert channel.running_elsewhere() is None


def test_requests_are_taken_oldest_first_and_answered(tmp_path: Path) -> None:
    channel = ControlChannel(tmp_path)
    announce(channel)
    first = channel.request("commit", tmp_path, ref="main")
    second = channel.request("data", tmp_path / "new.csv")
    assert channel.next_request() == first
    channel.answer(first, {"status": "succeeded"})
    assert channel.next_request() == second
    assert channel.wait_for_result(first, timeout_s=1) == {"status": "succeeded"}
    assert second.path == str((tmp_path / "new.csv").resolve())


def test_waiting_for_a_result_fails_when_the_stack_stops(tmp_path: Path) -> None:
    channel = ControlChannel(tmp_path)
    announce(channel)
    request = channel.request("commit", tmp_path)
    threading.Timer(0.3, channel.withdraw).start()
    with pytest.raises(ControlError, match="no local stack runs"):
        channel.wait_for_result(request, timeout_s=10)


def test_unknown_trigger_kind_is_refused() -> None:
    with pytest.raises(ControlError, match="commit, data"):
        TriggerRequest("x", "deploy", "/tmp")


def test_the_trigger_command_says_when_no_stack_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(MLOPS), "trigger", "commit", "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "no local stack runs" in done.stderr


def test_approve_without_a_running_stack_fails_clearly(tmp_path: Path) -> None:
    """`mlops approve` calls PutApprovalResult on the running stack's emulator: none runs here."""
    done = subprocess.run(
        [str(MLOPS), "approve", "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "no local stack runs" in done.stderr
