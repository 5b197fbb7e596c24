"""A scripted stand-in for the real harness, for testing the scenario runner on its own.

Why a stand-in: the real harness (emulator, runtimes, pipeline runner) is built and wired to the runner
elsewhere; these tests cover the runner's own logic (step order, waits, background requests, checks,
reports). The stand-in keeps pipeline runs, executions, registry and endpoint in memory and moves each
run on by one stage per `observe()` call, so waits really poll. Its API is a real HTTP server on a
loopback port that answers like the project's API (403 without the key, 415, 413, 400, predictions).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import JsonValue

from harness.scenarios.interface import (
    ALL_PARTS,
    ApiEndpoint,
    EndpointView,
    ExecutionView,
    HarnessSettings,
    Observation,
    ObservedPart,
    PipelineExecutionView,
    StageView,
)
from harness.scenarios.schema import (
    ApiError,
    BadData,
    ClearFaults,
    EndpointUnhealthy,
    Fault,
    LambdaRaises,
    TrainingFails,
)

STAGES = ("Source", "Build", "Train", "Approve", "Register", "PublishApi")
# The Train state's attempts at CreateTrainingJob (deployer/statemachine: 1 + 3 retries): an injected
# quota error that outlasts them fails the execution, fewer are retried away.
TRAIN_ATTEMPTS = 4
API_KEY = "fake-api-key"
INTENT = "weather"
ACCURACY = 0.9
MAX_BODY = 6 * 1024 * 1024


@dataclass
class _PipelineRun:
    execution_id: str
    commit: str
    hyperparameters: dict[str, str | int | float]
    stages: dict[str, StageView] = field(default_factory=dict)
    status: str = "InProgress"
    next_stage: int = 0
    comment: str = ""
    execution: str = ""  # the training execution this run deployed to the candidate endpoint


class FakeHarness:
    def __init__(self, settings: HarnessSettings) -> None:
        self.settings = settings
        self.runs: list[_PipelineRun] = []
        self.executions: list[ExecutionView] = []
        self.registry: list[dict[str, JsonValue]] = []
        self.endpoint: EndpointView | None = None
        self.faults: list[Fault] = []
        self.decision: tuple[bool, str] | None = None
        self.published = False
        self.log_lines: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def log(self, text: str) -> None:
        self.log_lines.append((time.time(), text))

    # --- the ScenarioHarness protocol
    def commit(
        self, message: str, files: Mapping[str, str], hyperparameters: Mapping[str, str | int | float]
    ) -> str:
        commit = hashlib.sha1(f"{len(self.runs)}{message}{sorted(files.items())}".encode()).hexdigest()
        merged = {**self.settings.hyperparameters, **hyperparameters}
        self._start_run(commit, merged)
        return commit

    def rerun(self) -> None:
        last = self.runs[-1]
        self._start_run(last.commit, last.hyperparameters)

    def s3_put(self, key: str, body: bytes) -> None:
        base = f"s3-{hashlib.sha1(body).hexdigest()[:8]}"
        # The same upload again after a failed run is retried under a new name, as start-training does.
        tries = sum(1 for execution in self.executions if execution.name.startswith(base))
        name = base if tries == 0 else f"{base}-r{tries + 1}"
        self.log(f"s3 put {key}: execution {name}")
        self.executions.append(ExecutionView(name, "RUNNING"))

    def decide_approval(self, approve: bool, comment: str) -> None:
        self.decision = (approve, comment)

    def inject_fault(self, fault: Fault) -> None:
        self.log(f"fault injected: {fault.kind}")
        if isinstance(fault, ClearFaults):
            self.faults.clear()
        else:
            self.faults.append(fault)

    def api(self) -> ApiEndpoint:
        if not self.published:
            raise RuntimeError("no API has been published")
        return ApiEndpoint(f"http://127.0.0.1:{self.server.server_address[1]}/prod", API_KEY)

    def observe(self, parts: frozenset[ObservedPart] = ALL_PARTS) -> Observation:
        with self.lock:
            self._advance()
            return _only(parts, self._observation())

    def _observation(self) -> Observation:
        return Observation(
            pipeline_executions=tuple(
                PipelineExecutionView(run.execution_id, run.status, tuple(run.stages.values()), run.commit)
                for run in self.runs
            ),
            executions=tuple(self.executions),
            registry=tuple(dict(item) for item in self.registry),
            endpoint=self.endpoint,
            approval_pending=any(
                run.status == "InProgress"
                and STAGES[run.next_stage - 1] == "Approve"
                and run.stages["Approve"].status == "InProgress"
                for run in self.runs
                if run.next_stage
            ),
        )

    def logs_since(self, since: float) -> str:
        return "\n".join(text for at, text in self.log_lines if at >= since)

    # --- the scripted world
    def _start_run(self, commit: str, hyperparameters: dict[str, str | int | float]) -> None:
        run = _PipelineRun(f"pipeline-{len(self.runs) + 1}", commit, dict(hyperparameters))
        run.stages = {name: StageView(name, "NotRun") for name in STAGES}
        self.runs.append(run)
        self.log(f"pipeline {run.execution_id} started for {commit[:8]}")

    def _advance(self) -> None:
        for index, execution in enumerate(self.executions):
            if execution.status == "RUNNING" and execution.name.startswith("s3-"):
                if self.endpoint is not None and any(isinstance(f, EndpointUnhealthy) for f in self.faults):
                    # The update never gets healthy: SageMaker rolls it back, the old config keeps serving.
                    serving = self.endpoint.config_name
                    cause = f"EndpointUpdateFailed: endpoint went back to InService on {serving}"
                    failed = replace(execution, status="FAILED", error="TrainingPipelineFailed", cause=cause)
                    self.executions[index] = failed
                    continue
                self.executions[index] = replace(execution, status="SUCCEEDED")
                self._deploy(execution.name)
        for run in self.runs:
            if run.status == "InProgress":
                self._advance_run(run)

    def _advance_run(self, run: _PipelineRun) -> None:
        current = STAGES[run.next_stage - 1] if run.next_stage else None
        waiting = current == "Approve" and run.stages["Approve"].status == "InProgress"
        if waiting and not self._approval(run):
            return
        if run.next_stage == len(STAGES):
            run.status = "Succeeded"
            return
        stage = STAGES[run.next_stage]
        run.next_stage += 1
        outcome, reason = getattr(self, f"_stage_{stage.lower()}", lambda _: ("Succeeded", None))(run)
        run.stages[stage] = StageView(stage, outcome, reason)
        if outcome == "Failed":
            run.status = "Failed"
            self.log(f"{run.execution_id}: stage {stage} failed: {reason}")

    def _approval(self, run: _PipelineRun) -> bool:
        policy = self.settings.approval
        if policy == "scenario":
            if self.decision is None:
                return False
            approve, comment = self.decision
            self.decision = None
        else:
            approve, comment = policy == "auto", policy
        run.stages["Approve"] = StageView(
            "Approve", "Succeeded" if approve else "Failed", None if approve else f"rejected: {comment}"
        )
        run.comment = comment
        if not approve:
            run.status = "Failed"
        return approve

    def _stage_train(self, run: _PipelineRun) -> tuple[str, str | None]:
        inputs = f"{run.commit}{sorted(run.hyperparameters.items())}"
        name = f"train-{hashlib.sha1(inputs.encode()).hexdigest()[:8]}"
        earlier = [execution for execution in self.executions if execution.name.startswith(name)]
        if earlier and earlier[-1].status != "FAILED":
            run.execution = earlier[-1].name
            return "Succeeded", None  # the same inputs: the existing execution is followed
        if earlier:  # a failed one is retried under a new name (start-training's -r2, -r3, ...)
            name = f"{name}-r{len(earlier) + 1}"
        failure = self._training_failure()
        if failure is not None:
            state, cause = failure
            self.executions.append(ExecutionView(name, "FAILED", state, "TrainingPipelineFailed", cause))
            return "Failed", cause
        self.executions.append(ExecutionView(name, "SUCCEEDED"))
        run.execution = name  # on the candidate endpoint; PublishApi promotes it to the serving one
        return "Succeeded", None

    def _training_failure(self) -> tuple[str, str] | None:
        """The state where the run fails and its cause, as the state machine would report them."""
        for fault in self.faults:
            if isinstance(fault, TrainingFails):
                return "Train", fault.reason
            if isinstance(fault, BadData):
                return "Train", "the header must have Query,Intent"
            if isinstance(fault, EndpointUnhealthy):
                return "EndpointFailed", "the endpoint did not answer /ping within its startup limit"
            if (
                isinstance(fault, ApiError)
                and (fault.error, fault.operation) == ("resource_limit_exceeded", "CreateTrainingJob")
                and fault.times >= TRAIN_ATTEMPTS
            ):
                return "Train", "SageMaker.ResourceLimitExceededException: the account-level quota"
        threshold = self.settings.quality_threshold
        if threshold is not None and threshold > ACCURACY:
            return (
                "BelowThreshold",
                f"held-out accuracy {ACCURACY} is below the quality threshold {threshold}",
            )
        return None

    def _stage_approve(self, run: _PipelineRun) -> tuple[str, str | None]:
        return "InProgress", None

    def _stage_register(self, run: _PipelineRun) -> tuple[str, str | None]:
        fault = next(
            (f for f in self.faults if isinstance(f, LambdaRaises) and f.function == "register-model"), None
        )
        if fault is not None:
            return "Failed", f"Exception: {fault.message}"
        version = self.executions[-1].name
        if all(item["Version"] != version for item in self.registry):
            self.registry.append(
                {
                    "Version": version,
                    "CommitId": run.commit,
                    "Accuracy": ACCURACY,
                    "ImageDigest": "sha256:" + hashlib.sha256(run.commit.encode()).hexdigest(),
                    "Approver": "scenario",
                    "ApprovalComment": run.comment,
                    "Hyperparameters": {k: str(v) for k, v in run.hyperparameters.items()},
                }
            )
        return "Succeeded", None

    def _stage_publishapi(self, run: _PipelineRun) -> tuple[str, str | None]:
        if run.execution:
            self._deploy(run.execution)
        self.published = True
        return "Succeeded", None

    def _deploy(self, execution: str) -> None:
        self.endpoint = EndpointView("intent-endpoint", "InService", f"{execution}-config")


def _handler(harness: FakeHarness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: the test output stays clean
            harness.log(format % args)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.headers.get("x-api-key") != API_KEY:
                return self._answer(403, {"message": "Forbidden"})
            if self.headers.get("Content-Type", "application/json") != "application/json":
                return self._answer(415, {"error": "Content-Type must be application/json"})
            if length > MAX_BODY:
                return self._answer(413, {"error": "too large"})
            try:
                request = json.loads(body)
            except ValueError:
                return self._answer(400, {"error": "the body is not JSON"})
            inputs = request["inputs"]
            queries = [inputs] if isinstance(inputs, str) else inputs
            time.sleep(0.01)
            return self._answer(200, {"predictions": [{"query": q, "intent": INTENT} for q in queries]})

        def _answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def open_fake(settings: HarnessSettings) -> Iterator[FakeHarness]:
    """A `HarnessFactory`: a fresh stand-in per scenario, its HTTP server stopped on exit."""
    harness = FakeHarness(settings)
    try:
        yield harness
    finally:
        harness.close()


@contextmanager
def open_broken(settings: HarnessSettings) -> Iterator[FakeHarness]:
    """A `HarnessFactory` whose harness cannot start (as when the emulator's port is taken)."""
    raise RuntimeError("the emulator did not start")
    yield  # pragma: no cover - makes this a generator


def _only(parts: frozenset[ObservedPart], seen: Observation) -> Observation:
    """What the adapter returns for `parts`: the parts not asked for keep their empty defaults."""
    return Observation(
        pipeline_executions=seen.pipeline_executions if "pipeline" in parts else (),
        executions=seen.executions if "executions" in parts else (),
        registry=seen.registry if "registry" in parts else (),
        endpoint=seen.endpoint if "endpoint" in parts else None,
        approval_pending=seen.approval_pending if "approval" in parts else False,
        training_cache_hits=seen.training_cache_hits if "cache" in parts else 0,
    )
