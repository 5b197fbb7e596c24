"""The scenario runner: each scenario in a fresh harness, its steps in order, expectations after each step.

A step's action runs first (a trigger, an approval, a fault, requests, or a wait), then the harness is
observed and the step's expectations are checked against that observation. The first step with a
failed expectation or an error ends the scenario (later steps are reported as skipped), and carries the
harness's logs from its start. Requests with `during: STEP` are sent in the background until that later
step has finished; their expectations are checked then.

Waits are triggered-aware: a wait for the pipeline after the second commit waits for the second
pipeline execution, not the first, and a wait stops as soon as the execution ends in a status other
than the one awaited (the wait fails with expected and actual).

Independent scenarios run in parallel, each in its own process (`parallel=N`); the factory must then
be picklable (a module-level function or class).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import requests

from harness import datasets
from harness.api_client import SERVICE_UNAVAILABLE, TOO_MANY_REQUESTS, RetryPolicy, send_retrying_throttles
from harness.scenarios.checks import CheckContext, CheckResult, check
from harness.scenarios.interface import (
    HarnessFactory,
    HarnessSettings,
    HttpExchange,
    Observation,
    ObservedPart,
    ScenarioHarness,
)
from harness.scenarios.loader import LoadedScenario
from harness.scenarios.schedule import DurationRecord, schedule
from harness.scenarios.schema import (
    DATASETS,
    EXECUTION_TERMINAL,
    FINISHED,
    PIPELINE_TERMINAL,
    ApiRequests,
    ApprovalStep,
    CommitStep,
    FaultStep,
    RequestsStep,
    RerunStep,
    S3PutStep,
    Scenario,
    Step,
    WaitExecution,
    WaitForApproval,
    WaitPipeline,
    WaitStep,
    step_kind,
    step_label,
)

Runtime = Literal["docker", "process", "auto"]
StepStatus = Literal["passed", "failed", "error", "skipped"]
API_KEY_HEADER = "x-api-key"
REQUEST_TIMEOUT_S = 70.0  # above the 60 s invocation limit, so the API's own timeout answers first
_PIPELINE: frozenset[ObservedPart] = frozenset({"pipeline"})
_EXECUTIONS: frozenset[ObservedPart] = frozenset({"executions"})
# What a wait polls (every poll_interval_s): only what its verdict reads; the step's expectations are
# checked on a full observation once it ends.
_WAITED_ON: dict[type[WaitPipeline | WaitExecution | WaitForApproval], frozenset[ObservedPart]] = {
    WaitPipeline: _PIPELINE,
    WaitExecution: _EXECUTIONS,
    WaitForApproval: frozenset({"approval"}),
}


@dataclass
class StepResult:
    label: str
    kind: str
    status: StepStatus = "skipped"
    duration_s: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    error: str | None = None
    logs: str = ""


@dataclass
class ScenarioResult:
    name: str
    path: Path
    description: str
    steps: list[StepResult]
    duration_s: float = 0.0
    error: str | None = None  # the harness could not be set up
    training_cache_hits: int = 0  # training jobs of this scenario that reused an earlier model

    @property
    def passed(self) -> bool:
        return self.error is None and all(step.status == "passed" for step in self.steps)

    @property
    def status(self) -> Literal["passed", "failed", "error"]:
        if self.error is not None or any(step.status == "error" for step in self.steps):
            return "error"
        return "passed" if self.passed else "failed"

    def failed_checks(self) -> list[tuple[StepResult, CheckResult]]:
        return [(step, result) for step in self.steps for result in step.checks if not result.passed]


@dataclass(frozen=True)
class RunOptions:
    runtime: Runtime | None = None  # overrides every scenario's settings.runtime
    training_cache: bool = True  # False turns step caching off for every scenario (else each file decides)
    timing: Literal["fast", "aws"] | None = None  # overrides every scenario's settings.timing
    work_root: Path | None = None  # where each scenario's work folder is made (a temporary folder if None)
    poll_interval_s: float = 0.2


class StepError(Exception):
    """A step that could not be carried out (as opposed to an expectation that did not hold)."""


class ScenarioRunner:
    """Runs loaded scenarios against harnesses opened by `factory`."""

    def __init__(self, factory: HarnessFactory, options: RunOptions | None = None) -> None:
        self.factory = factory
        self.options = options or RunOptions()

    def run(self, loaded: LoadedScenario) -> ScenarioResult:
        scenario = loaded.scenario
        result = ScenarioResult(
            scenario.name,
            loaded.path,
            scenario.description,
            [
                StepResult(step_label(index, step), step_kind(step))
                for index, step in enumerate(scenario.steps)
            ],
        )
        started = time.monotonic()
        with self._work_dir(scenario.name) as work_dir:
            settings = harness_settings(
                scenario, work_dir, self.options.runtime, self.options.training_cache, self.options.timing
            )
            try:
                with self.factory(settings) as harness:
                    _Run(loaded, harness, result, self.options.poll_interval_s).run()
                    result.training_cache_hits = harness.observe(frozenset({"cache"})).training_cache_hits
            except Exception as error:  # the harness's own failure to start or stop: report, never raise
                result.error = f"{type(error).__name__}: {error}"
        result.duration_s = time.monotonic() - started
        return result

    def run_all(
        self,
        scenarios: Sequence[LoadedScenario],
        parallel: int = 1,
        on_result: Callable[[ScenarioResult], None] | None = None,
        durations: DurationRecord | None = None,
    ) -> list[ScenarioResult]:
        """Runs scenarios one after another, or `parallel` at a time, each in its own process, started in
        the order `schedule` gives (read from `durations`, which then records the passed ones' times).

        Results come back in the order of `scenarios`; `on_result` sees each as soon as it is known.
        """
        results = self._run_all(scenarios, parallel, on_result or (lambda _: None), durations)
        if durations is not None:
            durations.update({result.name: result.duration_s for result in results if result.passed})
        return results

    def _run_all(
        self,
        scenarios: Sequence[LoadedScenario],
        parallel: int,
        report: Callable[[ScenarioResult], None],
        durations: DurationRecord | None,
    ) -> list[ScenarioResult]:
        if parallel <= 1 or len(scenarios) <= 1:
            results = []
            for loaded in scenarios:
                results.append(self.run(loaded))
                report(results[-1])
            return results
        # spawn, not fork: the parent may hold threads (an HTTP pool, a logger) that fork would copy broken
        context = multiprocessing.get_context("spawn")
        order = schedule(scenarios, durations.read() if durations is not None else {})
        with ProcessPoolExecutor(max_workers=parallel, mp_context=context) as pool:
            started = {
                id(loaded): pool.submit(_run_one, self.factory, self.options, loaded) for loaded in order
            }
            for future in as_completed(started.values()):
                report(future.result())
            return [started[id(loaded)].result() for loaded in scenarios]

    @contextlib.contextmanager
    def _work_dir(self, name: str) -> Iterator[Path]:
        if self.options.work_root is not None:
            self.options.work_root.mkdir(parents=True, exist_ok=True)
            yield Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.options.work_root))
            return
        with tempfile.TemporaryDirectory(prefix=f"scenario-{name}-") as folder:
            yield Path(folder)


def _run_one(factory: HarnessFactory, options: RunOptions, loaded: LoadedScenario) -> ScenarioResult:
    return ScenarioRunner(factory, options).run(loaded)


def harness_settings(
    scenario: Scenario,
    work_dir: Path,
    runtime: Runtime | None = None,
    training_cache: bool = True,
    timing: Literal["fast", "aws"] | None = None,
) -> HarnessSettings:
    """The factory's settings for a scenario; `runtime` and `timing` (from the command line) beat the
    file's."""
    given = scenario.settings
    data: str | Path = given.data if given.data in DATASETS else Path(given.data)
    return HarnessSettings(
        scenario=scenario.name,
        work_dir=work_dir,
        runtime=runtime or given.runtime,
        data=data,
        hyperparameters=given.hyperparameters.given(),
        quality_threshold=given.quality_threshold,
        approval=given.approval,
        time_scale=given.time_scale,
        training_cache=training_cache and given.training_cache,
        iam=given.iam,
        timing=timing or given.timing,
    )


def dataset_csv(name: str) -> bytes:
    """The named data set's training split as `Query,Intent` CSV bytes."""
    intents = datasets.clinc10_intents() if name == "clinc10" else None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Query", "Intent"])
    for example in datasets.clinc150_split("train", intents):
        writer.writerow([example.query, example.intent])
    return buffer.getvalue().encode("utf-8")


def intents_in(csv_bytes: bytes) -> frozenset[str]:
    """The `Intent` column's values, or nothing when the bytes are not a `Query,Intent` CSV."""
    reader = csv.DictReader(io.StringIO(csv_bytes.decode("utf-8", "replace")))
    if reader.fieldnames is None or "Intent" not in reader.fieldnames:
        return frozenset()
    return frozenset(row["Intent"] for row in reader if row.get("Intent"))


def request_body(spec: ApiRequests) -> tuple[bytes, str | None]:
    """The body bytes and the Content-Type header of a requests step."""
    kinds = spec.body_kinds()
    if "json" in kinds:
        return json.dumps(spec.json_body).encode("utf-8"), spec.content_type or "application/json"
    if "text" in kinds:
        return (spec.text or "").encode("utf-8"), spec.content_type
    if "filler_bytes" in kinds:
        return b"x" * (spec.filler_bytes or 0), spec.content_type
    return b"", spec.content_type


# Throttled requests are retried as the API client does (harness/api_client.py), unless a step asks to
# see the 429 itself (`retry_throttled: false`).
THROTTLE_RETRY = RetryPolicy()
_JITTER = random.Random()


def send(url: str, api_key: str, spec: ApiRequests, session: requests.Session) -> HttpExchange:
    """Sends one request of a requests step; a connection failure is an answer-less exchange, not an error.
    A 429 is retried with backoff (unless the step says `retry_throttled: false`)."""
    body, content_type = request_body(spec)
    headers = dict(spec.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    if spec.key == "default":
        headers[API_KEY_HEADER] = api_key
    elif spec.key != "none":
        headers[API_KEY_HEADER] = spec.key
    started = time.monotonic()
    target = url.rstrip("/") + spec.path
    retrying = spec.retry_throttled or spec.retry_unavailable
    policy = THROTTLE_RETRY if retrying else RetryPolicy(max_attempts=1)
    retried = frozenset(
        status
        for status, wanted in (
            (TOO_MANY_REQUESTS, spec.retry_throttled),
            (SERVICE_UNAVAILABLE, spec.retry_unavailable),
        )
        if wanted
    )

    def request() -> requests.Response:
        return session.request(spec.method, target, data=body, headers=headers, timeout=REQUEST_TIMEOUT_S)

    try:
        answer, _ = send_retrying_throttles(request, policy, rng=_JITTER, retried=retried)
    except requests.RequestException as error:
        return HttpExchange(
            spec.method, spec.path, body, None, error=str(error), elapsed_s=time.monotonic() - started
        )
    return HttpExchange(
        spec.method, spec.path, body, answer.status_code, answer.content, elapsed_s=time.monotonic() - started
    )


def send_batch(url: str, api_key: str, spec: ApiRequests) -> list[HttpExchange]:
    """`repeat` requests, `concurrency` at a time, in the order they were issued."""

    def paced(_: int) -> HttpExchange:
        exchange = send(url, api_key, spec, session)
        time.sleep(spec.interval_s)
        return exchange

    with requests.Session() as session, ThreadPoolExecutor(max_workers=spec.concurrency) as pool:
        return list(pool.map(paced, range(spec.repeat)))


class BackgroundRequests:
    """Requests sent continuously by `concurrency` threads until stopped (and at least `repeat` of them)."""

    def __init__(self, url: str, api_key: str, spec: ApiRequests) -> None:
        self._url, self._key, self._spec = url, api_key, spec
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._exchanges: list[HttpExchange] = []
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(spec.concurrency)]
        for thread in self._threads:
            thread.start()

    def _loop(self) -> None:
        with requests.Session() as session:
            while True:
                with self._lock:
                    if self._stop.is_set() and len(self._exchanges) >= self._spec.repeat:
                        return
                exchange = send(self._url, self._key, self._spec, session)
                with self._lock:
                    self._exchanges.append(exchange)
                time.sleep(self._spec.interval_s)

    def stop(self) -> list[HttpExchange]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return list(self._exchanges)


class _Run:
    """The state of one scenario run in one harness."""

    def __init__(
        self, loaded: LoadedScenario, harness: ScenarioHarness, result: ScenarioResult, poll_interval_s: float
    ) -> None:
        self.scenario = loaded.scenario
        self.harness = harness
        self.result = result
        self.poll_interval_s = poll_interval_s
        self.started = time.monotonic()
        self.snapshots: dict[str, Observation] = {}
        self.commits: dict[str, str] = {}
        self.known_intents = self._intents_of_data(self.scenario.settings.data)
        self.background: dict[str, list[tuple[int, BackgroundRequests, float]]] = {}
        self.min_pipeline_runs = 0  # runs the triggers so far must have started
        self.min_executions = 0

    def run(self) -> None:
        try:
            for index, step in enumerate(self.scenario.steps):
                if not self._step(index, step):
                    return
        finally:
            for pending in self.background.values():
                for _, sender, _ in pending:
                    sender.stop()

    def _step(self, index: int, step: Step) -> bool:
        outcome = self.result.steps[index]
        started, wall = time.monotonic(), time.time()
        exchanges: list[HttpExchange] = []
        try:
            exchanges, wait_checks = self._act(index, step)
            outcome.checks.extend(wait_checks)
            now = self.harness.observe()
        except Exception as error:
            outcome.status, outcome.error = "error", f"{type(error).__name__}: {error}"
            outcome.duration_s = time.monotonic() - started
            outcome.logs = self._logs(wall)
            return False
        if step.name is not None:
            self.snapshots[step.name] = now
        outcome.duration_s = time.monotonic() - started
        deferred = isinstance(step, RequestsStep) and step.requests.during is not None
        if not deferred:
            outcome.checks.extend(self._check(step, now, exchanges, outcome.duration_s))
            outcome.status = "passed" if all(result.passed for result in outcome.checks) else "failed"
        ok = outcome.status != "failed"
        if step.name is not None:
            ok = self._finish_background(step.name, now) and ok
        if not ok:
            outcome.logs = self._logs(wall)
        return ok

    def _check(
        self, step: Step, now: Observation, exchanges: Sequence[HttpExchange], step_elapsed_s: float
    ) -> list[CheckResult]:
        context = CheckContext(
            now=now,
            snapshots=self.snapshots,
            commits=self.commits,
            exchanges=exchanges,
            known_intents=self.known_intents,
            step_elapsed_s=step_elapsed_s,
            scenario_elapsed_s=time.monotonic() - self.started,
        )
        return [result for expectation in step.expect for result in check(expectation, context)]

    def _finish_background(self, name: str, now: Observation) -> bool:
        ok = True
        for index, sender, started in self.background.pop(name, []):
            exchanges = sender.stop()
            outcome = self.result.steps[index]
            outcome.duration_s = time.monotonic() - started
            outcome.checks.extend(self._check(self.scenario.steps[index], now, exchanges, outcome.duration_s))
            outcome.status = "passed" if all(result.passed for result in outcome.checks) else "failed"
            ok = ok and outcome.status == "passed"
        return ok

    def _act(self, index: int, step: Step) -> tuple[list[HttpExchange], list[CheckResult]]:
        if isinstance(step, CommitStep):
            change = step.commit
            self.min_pipeline_runs = len(self.harness.observe(_PIPELINE).pipeline_executions) + 1
            commit_id = self.harness.commit(change.message, change.files, change.hyperparameters.given())
            self.commits[step.name or f"#{index + 1}"] = commit_id
        elif isinstance(step, S3PutStep):
            put = step.s3_put
            body = (
                Path(put.file).read_bytes()
                if put.file is not None
                else dataset_csv(put.dataset)
                if put.dataset is not None
                else (put.text or "").encode("utf-8")
            )
            self.known_intents |= intents_in(body)
            self.min_executions = len(self.harness.observe(_EXECUTIONS).executions) + 1
            self.harness.s3_put(put.key, body)
        elif isinstance(step, RerunStep):
            self.min_pipeline_runs = len(self.harness.observe(_PIPELINE).pipeline_executions) + 1
            self.harness.rerun()
        elif isinstance(step, ApprovalStep):
            self.harness.decide_approval(step.approval.decision == "approve", step.approval.comment)
        elif isinstance(step, FaultStep):
            self.harness.inject_fault(step.fault)
        elif isinstance(step, RequestsStep):
            api = self.harness.api()
            if step.requests.during is None:
                return send_batch(api.url, api.key, step.requests), []
            sender = BackgroundRequests(api.url, api.key, step.requests)
            self.background.setdefault(step.requests.during, []).append((index, sender, time.monotonic()))
        elif isinstance(step, WaitStep):
            return [], self._wait(step)
        return [], []

    def _wait(self, step: WaitStep) -> list[CheckResult]:
        wait = step.wait
        deadline = time.monotonic() + wait.timeout_s
        parts = _WAITED_ON[type(wait)]
        while True:
            now = self.harness.observe(parts)
            verdict = self._wait_verdict(wait, now)
            if verdict is not None:
                return [verdict]
            if time.monotonic() >= deadline:
                raise StepError(
                    f"timed out after {wait.timeout_s:g} s waiting: {self._wait_state(wait, now)}"
                )
            time.sleep(self.poll_interval_s)

    def _wait_verdict(
        self, wait: WaitPipeline | WaitExecution | WaitForApproval, now: Observation
    ) -> CheckResult | None:
        """None while waiting; a result once the awaited status is reached or can no longer be."""
        if isinstance(wait, WaitForApproval):
            return CheckResult("wait.approval", True, "pending", "pending") if now.approval_pending else None
        wanted: str
        if isinstance(wait, WaitPipeline):
            statuses = [run.status for run in now.pipeline_executions]
            wanted, terminal, minimum, subject = (
                wait.pipeline,
                PIPELINE_TERMINAL,
                self.min_pipeline_runs,
                "pipeline",
            )
        else:
            statuses = [run.status for run in now.executions]
            wanted, terminal, minimum, subject = (
                wait.execution,
                EXECUTION_TERMINAL,
                self.min_executions,
                "execution",
            )
        if len(statuses) < max(minimum, 1):
            return None
        watched = statuses if wait.which == "all" else statuses[-1:]
        if all(status == wanted or (wanted == FINISHED and status in terminal) for status in watched):
            return CheckResult(f"wait.{subject}", True, wanted, ", ".join(watched))
        if all(status in terminal for status in watched):
            return CheckResult(f"wait.{subject}", False, wanted, ", ".join(watched))
        return None

    def _wait_state(self, wait: WaitPipeline | WaitExecution | WaitForApproval, now: Observation) -> str:
        if isinstance(wait, WaitForApproval):
            return "no approval is pending"
        if isinstance(wait, WaitPipeline):
            runs = [f"{run.execution_id} {run.status}" for run in now.pipeline_executions]
            return f"pipeline {wait.pipeline}; executions: {', '.join(runs) or 'none'}"
        names = [f"{run.name} {run.status}" for run in now.executions]
        return f"execution {wait.execution}; executions: {', '.join(names) or 'none'}"

    def _logs(self, since: float) -> str:
        try:
            return self.harness.logs_since(since)
        except Exception as error:  # the logs are a diagnostic: their absence must not hide the failure
            return f"(the harness's logs could not be read: {error})"

    def _intents_of_data(self, data: str) -> frozenset[str]:
        if data == "clinc10":
            return frozenset(datasets.clinc10_intents())
        if data == "clinc150":
            return frozenset(example.intent for example in datasets.clinc150_split("train"))
        return intents_in(Path(data).read_bytes())


__all__ = [
    "BackgroundRequests",
    "RunOptions",
    "ScenarioResult",
    "ScenarioRunner",
    "StepResult",
    "harness_settings",
    "send",
    "send_batch",
]
