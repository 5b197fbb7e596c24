"""Later commits on a running stack: a hyperparameter change makes a second model version and moves
the API to the new endpoint config with no failed request; a rejected approval registers nothing and
leaves the serving endpoint as it was (Train deploys to the candidate endpoint; PublishApi promotes).

One stack (process runtime, approval policy `wait`) runs three pipeline executions in order; each
approval is decided by the real `mlops approve` / `mlops reject` commands in another process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.api_client import call_api
from harness.control import StackInfo
from harness.flow import LocalFlow
from harness.flow_model import FlowOptions, FlowSummary, Query
from harness.inputs import training_and_queries
from harness.pipeline import PipelineResult
from tests.flow.source_repo import commit_hyperparameters, make_source_repository

pytestmark = pytest.mark.slow

MLOPS = Path(sys.executable).parent / "mlops"


@dataclass
class Stack:
    flow: LocalFlow
    source: Path
    queries: list[Query]
    lines: list[str] = field(default_factory=list)
    runs: dict[str, tuple[PipelineResult, FlowSummary]] = field(default_factory=dict)


def decide_when_asked(work_dir: Path, verdict: str, comment: str) -> threading.Thread:
    """In the background: wait for the pipeline's approval request, then run `mlops <verdict>`."""

    def decide() -> None:
        pending = work_dir / "control" / "approvals" / "pending"
        deadline = time.monotonic() + 600
        while not (pending.is_dir() and any(pending.glob("*.json"))):
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        subprocess.run(
            [str(MLOPS), verdict, "--comment", comment, "--work-dir", str(work_dir)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    thread = threading.Thread(target=decide, daemon=True)
    thread.start()
    return thread


def run_decided(stack: Stack, name: str, verdict: str, comment: str) -> tuple[PipelineResult, FlowSummary]:
    decider = decide_when_asked(stack.flow.options.work_dir, verdict, comment)
    result = stack.flow.run_pipeline(stack.source)
    decider.join(timeout=60)
    summary = stack.flow.complete_run(result, stack.queries, FlowSummary(runtime="process"))
    stack.runs[name] = (result, summary)
    return result, summary


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("versions")
    source = make_source_repository(root / "source")
    lines: list[str] = []
    options = FlowOptions(
        work_dir=root / "work", runtime="process", approval="wait", source=source, report_dir=root / "report"
    )
    with LocalFlow(options, lines.append) as flow:
        # `mlops approve` finds the stack's emulator (PutApprovalResult) through the control channel.
        flow.control.announce(StackInfo(os.getpid(), flow.stack.endpoint_url, None, None, time.time()))
        training, queries = training_and_queries(None, None, 5)
        flow.put_data(training)
        yield Stack(flow, source, queries, lines)


@pytest.fixture(scope="module")
def first(stack: Stack) -> FlowSummary:
    result, summary = run_decided(stack, "first", "approve", "first model looks right")
    assert result.succeeded, f"{result.failed_stage}: {result.reason}"
    assert summary.succeeded, f"{summary.failed_stage}: {summary.reason}"
    return summary


@dataclass
class Caller:
    """Calls the API in a loop until stopped, recording every HTTP status (0: no answer)."""

    url: str
    key: str
    query: Query
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            answer = call_api(self.url, self.key, self.query)
            self.statuses.append(answer.http_status)
            if answer.http_status != 200:
                self.errors.append(f"{answer.http_status}: {answer.error}")
            # About 4 calls a second: under the usage plan's throttle (10/s), which would answer 429.
            time.sleep(0.25)


@pytest.fixture(scope="module")
def second(stack: Stack, first: FlowSummary) -> tuple[FlowSummary, Caller]:
    commit_hyperparameters(stack.source, "train one more epoch", epochs="9")
    assert first.api_url is not None and first.api_key is not None
    caller = Caller(first.api_url, first.api_key, stack.queries[0])
    caller.start()
    try:
        result, summary = run_decided(stack, "second", "approve", "more epochs, same quality")
    finally:
        caller.stop()
    assert result.succeeded, f"{result.failed_stage}: {result.reason}"
    assert summary.succeeded, f"{summary.failed_stage}: {summary.reason}"
    return summary, caller


@pytest.fixture(scope="module")
def rejected(stack: Stack, second: tuple[FlowSummary, Caller]) -> tuple[PipelineResult, list[str]]:
    versions_before = stack.flow.registry_versions()
    commit_hyperparameters(stack.source, "train two more epochs", epochs="10")
    result, _ = run_decided(stack, "rejected", "reject", "not better than what serves")
    return result, versions_before


def test_first_run_registers_the_approver_from_the_pipeline_state(first: FlowSummary) -> None:
    assert first.registry_item is not None
    assert first.registry_item["ApprovalComment"] == "first model looks right"
    assert first.registry_item["Approver"] not in ("", "unknown", "auto")


def test_new_hyperparameters_make_a_second_version_and_move_the_api_without_errors(
    stack: Stack, first: FlowSummary, second: tuple[FlowSummary, Caller]
) -> None:
    summary, caller = second
    assert summary.model_version != first.model_version
    assert stack.flow.registry_versions() == sorted([str(first.model_version), str(summary.model_version)])
    assert summary.registry_item is not None and summary.registry_item["Hyperparameters"]["epochs"] == "9"
    endpoint = stack.flow.stack.describe_endpoint()
    assert endpoint["EndpointConfigName"] == f"{summary.model_version}-config"
    assert summary.registry_item["EndpointName"] == summary.endpoint_name == endpoint["EndpointName"]
    # PublishApi promoted the config, then deleted the candidate endpoint Train had deployed it to.
    endpoints = stack.flow.stack.client("sagemaker").list_endpoints()["Endpoints"]
    assert [e["EndpointName"] for e in endpoints] == [endpoint["EndpointName"]]
    assert summary.api_url == first.api_url
    # A client called the API throughout the second run, endpoint update included: zero errors.
    assert len(caller.statuses) >= 20, caller.statuses
    assert caller.errors == []
    assert {answer.http_status for answer in summary.sample_answers} == {200}


def test_a_rejected_approval_registers_nothing_and_publishes_nothing(
    stack: Stack, rejected: tuple[PipelineResult, list[str]]
) -> None:
    result, versions_before = rejected
    assert result.status == "Failed" and result.failed_stage == "Approve"
    assert result.reason is not None and "not better than what serves" in result.reason
    assert [stage.name for stage in result.stages] == ["Source", "Build", "Train", "Approve"]
    assert stack.flow.registry_versions() == versions_before
    # The API still answers (on the same URL and key).
    second_summary = stack.runs["second"][1]
    assert second_summary.api_url is not None and second_summary.api_key is not None
    answer = call_api(second_summary.api_url, second_summary.api_key, stack.queries[1])
    assert answer.http_status == 200


def test_a_rejected_approval_leaves_the_serving_endpoint_config_as_it_was(
    stack: Stack, rejected: tuple[PipelineResult, list[str]]
) -> None:
    """Train deployed the rejected model to the candidate endpoint only (the approver could call it);
    the serving endpoint, which the API calls, still runs the second version's config."""
    result, _ = rejected
    second_summary = stack.runs["second"][1]
    endpoint = stack.flow.stack.describe_endpoint()
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        f"{second_summary.model_version}-config",
    )
    train = result.variables["TrainVariables"]
    candidate = stack.flow.stack.describe_endpoint(train["EndpointName"])
    assert train["EndpointName"] == f"{stack.flow.stack.deployment.endpoint_name}-candidate"
    assert candidate["EndpointConfigName"] == train["EndpointConfigName"] != endpoint["EndpointConfigName"]
