"""The scenario runner's harness: `ScenarioHarness` over the main job's `LocalFlow`, one per scenario.

`open_harness(settings)` (the project's `HarnessFactory`, named in binding.py) gives each scenario a
fresh stack in its own work folder: a `LocalFlow` (embedded emulator, compute plane, Lambda runtime and
gateway on free ports, the deployer's definitions deployed), a source repository of its own, the
scenario's data under the data prefix, and the faults board cleared. Leaving the context decides any
waiting approval (reject), lets the running pipeline finish its action, and stops everything, so
that the next scenario in the same process starts clean (moto's state is process-wide: one stack per
process at a time; the runner's `--parallel` uses separate processes).

What each part of the interface does, on the real system:
- Source repository: a scratch clone of this repository under the work folder (source_repository.py:
  its first commit is this repository's working tree with `settings.hyperparameters` written in); the
  user's working tree, index and branches are never touched.
- `commit`: writes the files and hyperparameter changes in that clone, commits, and queues a pipeline
  run on the commit id. Runs are taken one at a time, in order (CodePipeline's queued execution mode).
- `rerun`: queues a run on the last commit again ("Release change").
- `s3_put`: PutObject under the data prefix; the S3 -> EventBridge -> start-training path does the rest.
- approvals: `settings.approval` `auto` approves at once; `scenario` and `reject` run the pipeline with
  the approval channel (`harness.pipeline.ApprovalChannel`, as `mlops approve` uses): `decide_approval`
  answers the waiting request; with `reject` a watcher rejects every request as it appears.
- faults: the stack's own fault board (`LocalAws.faults`, see harness/faults.py), which goes with the
  stack when it stops; `api_error` fails calls at the emulator's boundary (harness/aws_errors.py
  names the error each service gives); `clear` switches all of them off and restores the endpoint
  startup limit; `endpoint_unhealthy`'s `startup_limit_s` sets the compute plane's endpoint
  startup limit.
- `observe`: pipeline runs (finished: the runner's result; running: GetPipelineState's shape kept in
  the stack's pipeline states), Step Functions executions (with the state where a failure began:
  failure_origin.py), the registry table's items, the endpoint.
- `logs_since`: the flow's progress lines, Lambda invocation logs and the tails of container logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError
from pydantic import JsonValue

from deployer.lambdas.contracts import TERMINAL_STATUSES
from harness import datasets
from harness.aws_errors import aws_error
from harness.datasets import LabelledQuery
from harness.emulator import ACCOUNT_ID, REGION
from harness.flow import LocalFlow
from harness.flow_model import FlowOptions
from harness.model_registry import plain_item
from harness.pipeline import Pipeline, PipelineResult
from harness.scenarios.failure_origin import doomed_states, failure_origin
from harness.scenarios.interface import (
    ALL_PARTS,
    ApiEndpoint,
    EndpointView,
    ExecutionView,
    HarnessError,
    HarnessSettings,
    Observation,
    ObservedPart,
    PipelineExecutionView,
    StageView,
)
from harness.scenarios.schema import (
    ApiError,
    BadData,
    CapacityShortage,
    ClearFaults,
    EndpointUnhealthy,
    Fault,
    LambdaFunction,
    LambdaRaises,
    ServerDies,
    TrainingFails,
)
from harness.scenarios.source_repository import commit_changes, scratch_repository

LOG = logging.getLogger(__name__)

DEFAULT_TIME_SCALE: Final = 0.01
# How long leaving the harness waits for a running pipeline action to end before stopping the stack
# under it (only a scenario that ends while a run is still going, i.e. a failed one, waits at all).
STOP_WAIT_S: Final = 10.0
LOG_TAIL_BYTES: Final = 4000
# Expected noise kept out of a scenario run's output (as `mlops run` does): moto's notes on resource types
# it skips (the harness covers them), the first data upload's S3 event finding no build yet, and the
# Step Functions interpreter's error line for each failing state (scenarios fail executions on purpose;
# the failure is in the execution's status and history, which the expectations check).
_NOISY_LOGGERS: Final = {
    "moto": logging.ERROR,
    "harness.seams.awslambda": logging.ERROR,
    "moto.stepfunctions.parser.asl.component.eval_component": logging.CRITICAL,
}


def training_examples(data: str | Path) -> list[LabelledQuery]:
    """The scenario's training rows: CLINC150's train split (all intents or the clinc10 subset), or a CSV."""
    if data == "clinc10":
        return datasets.clinc150_split("train", datasets.clinc10_intents())
    if data == "clinc150":
        return datasets.clinc150_split("train")
    return datasets.read_csv(Path(data))


@dataclass
class PipelineRun:
    """One queued or finished pipeline run of the harness."""

    commit_id: str
    result: PipelineResult | None = None
    error: str | None = None  # the run could not be carried out at all
    started: bool = False


@dataclass
class _Line:
    at: float
    text: str


@dataclass
class _ExecutionCache:
    """Finished executions do not change: their views are computed once."""

    views: dict[str, ExecutionView] = field(default_factory=dict)
    doomed: frozenset[str] | None = None


# ---------------------------------------------------------------------------------------------- harness


class LocalScenarioHarness:
    """`ScenarioHarness` on a `LocalFlow`; use through `open_harness`."""

    def __init__(self, settings: HarnessSettings) -> None:
        self.settings = settings
        self._lines: list[_Line] = []
        self._lines_lock = threading.Lock()
        self._runs: list[PipelineRun] = []
        self._runs_lock = threading.Lock()
        self._queue: queue.Queue[PipelineRun | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._executions = _ExecutionCache()
        self._last_commit: str | None = None
        self._startup_limit_s: float | None = None  # the plane's own, restored by a `clear` fault
        self._restore: list[tuple[logging.Logger, int]] = []
        self.flow: LocalFlow | None = None
        self.pipeline: Pipeline | None = None  # the deployed definition (stage names, pipeline name)
        self.source = settings.work_dir / "source"

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> LocalScenarioHarness:
        settings = self.settings
        self._quiet()
        scratch_repository(self.source, settings.hyperparameters)
        options = FlowOptions(
            work_dir=settings.work_dir / "stack",
            runtime=settings.runtime,
            approval="auto" if settings.approval == "auto" else "wait",
            time_scale=settings.time_scale or DEFAULT_TIME_SCALE,
            source=self.source,
            report_dir=settings.work_dir / "report",
            parameters=(
                {"QualityThreshold": f"{settings.quality_threshold:g}"}
                if settings.quality_threshold is not None
                else {}
            ),
            training_cache=settings.training_cache,
            iam=settings.iam,
            timing=settings.timing,
        )
        flow = LocalFlow(options, self._note)
        self.flow = flow
        flow.start()
        self.pipeline = flow.stack.deployed_pipeline().pipeline
        self._startup_limit_s = flow.stack.plane.endpoints.startup_limit_s
        flow.put_data(training_examples(settings.data))
        self._worker = threading.Thread(target=self._run_pipelines, name="scenario-pipeline", daemon=True)
        self._worker.start()
        if settings.approval == "reject":
            threading.Thread(target=self._reject_all, name="scenario-reject", daemon=True).start()
        self._note(f"harness ready: runtime {flow.runtime}, work dir {settings.work_dir}")
        return self

    def stop(self) -> None:
        """Rejects waiting approvals, lets the running action end, then stops the stack."""
        self._stopping.set()
        self._queue.put(None)
        with contextlib.suppress(HarnessError):  # nothing waits when the stack never started
            self._reject_pending("the scenario ended")
        if self._worker is not None:
            self._worker.join(STOP_WAIT_S)
            if self._worker.is_alive():
                LOG.warning("a pipeline run still runs after %.0f s; stopping the stack", STOP_WAIT_S)
        try:
            if self.flow is not None:
                self.flow.stop()
        finally:
            for logger, level in reversed(self._restore):
                logger.setLevel(level)
            self._restore.clear()

    def _quiet(self) -> None:
        warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)
        for name, level in _NOISY_LOGGERS.items():
            logger = logging.getLogger(name)
            self._restore.append((logger, logger.level))
            logger.setLevel(max(logger.level, level))

    @property
    def _flow(self) -> LocalFlow:
        if self.flow is None or self.flow.aws is None:
            raise HarnessError("the harness is not started")
        return self.flow

    @property
    def _pipeline(self) -> Pipeline:
        if self.pipeline is None:
            raise HarnessError("the harness is not started")
        return self.pipeline

    def _note(self, text: str) -> None:
        with self._lines_lock:
            self._lines.append(_Line(time.time(), text))

    # -- pipeline runs -------------------------------------------------------------------------------
    def _run_pipelines(self) -> None:
        while True:
            run = self._queue.get()
            if run is None or self._stopping.is_set():
                return
            with self._runs_lock:
                run.started = True
            self._note(f"pipeline run on commit {run.commit_id[:12]}")
            try:
                result = self._flow.run_pipeline(self.source, run.commit_id)
            except Exception as error:  # reported as the run's failure, never lost in a thread
                if not self._stopping.is_set():  # else: the stack was stopped under it, on purpose
                    LOG.exception("the pipeline run on %s failed to run", run.commit_id)
                with self._runs_lock:
                    run.error = f"{type(error).__name__}: {error}"
                continue
            with self._runs_lock:
                run.result = result
            self._note(f"pipeline run {result.execution_id} {result.status} {result.reason or ''}".rstrip())

    def _queue_run(self, commit_id: str) -> None:
        run = PipelineRun(commit_id)
        with self._runs_lock:
            self._runs.append(run)
        self._queue.put(run)

    def commit(
        self, message: str, files: Mapping[str, str], hyperparameters: Mapping[str, str | int | float]
    ) -> str:
        commit_id = commit_changes(self.source, message, files, hyperparameters)
        self._note(f"commit {commit_id[:12]} {message}")
        self._last_commit = commit_id
        self._queue_run(commit_id)
        return commit_id

    def rerun(self) -> None:
        if self._last_commit is None:
            raise HarnessError("rerun needs an earlier commit step")
        self._note(f"rerun of commit {self._last_commit[:12]}")
        self._queue_run(self._last_commit)

    def s3_put(self, key: str, body: bytes) -> None:
        stack = self._flow.stack
        deployment = stack.deployment
        full_key = f"{deployment.data_prefix}{key.lstrip('/')}"
        stack.client("s3").put_object(Bucket=deployment.data_bucket, Key=full_key, Body=body)
        self._note(f"put s3://{deployment.data_bucket}/{full_key} ({len(body)} bytes)")

    # -- approvals -----------------------------------------------------------------------------------
    def decide_approval(self, approve: bool, comment: str) -> None:
        if self.settings.approval != "scenario":
            raise HarnessError(f"approvals are decided by the settings ({self.settings.approval})")
        token = self._flow.control.approvals.decide(approve, comment, approver="scenario")
        self._note(f"approval {token}: {'approved' if approve else 'rejected'} {comment}")

    def _reject_pending(self, comment: str) -> None:
        channel = self._flow.control.approvals
        for request in channel.pending():
            with contextlib.suppress(ValueError):  # decided meanwhile
                channel.decide(False, comment, approver="scenario", token=request.token)

    def _reject_all(self) -> None:
        """`approval: reject`: every approval request is rejected as soon as it appears."""
        while not self._stopping.wait(0.2):
            try:
                self._reject_pending("rejected by the scenario's settings (approval: reject)")
            except HarnessError:
                return  # the stack stopped

    # -- faults --------------------------------------------------------------------------------------
    def inject_fault(self, fault: Fault) -> None:
        board = self._flow.stack.faults
        if isinstance(fault, TrainingFails):
            board.fail_training(fault.reason, fault.exit_code)
        elif isinstance(fault, BadData):
            board.corrupt_data(fault.problem)
        elif isinstance(fault, EndpointUnhealthy):
            board.unhealthy_server()
            if fault.startup_limit_s is not None:
                self._flow.stack.plane.endpoints.startup_limit_s = fault.startup_limit_s
        elif isinstance(fault, LambdaRaises):
            board.raise_in_lambda(self._function_name(fault.function), fault.message)
        elif isinstance(fault, ServerDies):
            serving = self._flow.stack.plane.endpoints.serving_processes()
            board.kill_server_after(fault.after_s, fault.times, serving_now=serving)
        elif isinstance(fault, CapacityShortage):
            board.capacity_shortage(fault.jobs)
        elif isinstance(fault, ApiError):
            error = aws_error(fault.service, fault.operation, fault.error)
            board.fail_api_calls(fault.service, fault.operation, error, fault.times)
        elif isinstance(fault, ClearFaults):
            board.clear()
            if self._startup_limit_s is not None:
                self._flow.stack.plane.endpoints.startup_limit_s = self._startup_limit_s
        self._note(f"fault injected: {fault.model_dump_json()}")

    def _function_name(self, function: LambdaFunction) -> str:
        deployment = self._flow.stack.deployment
        names = {
            "start-training": deployment.start_training_function,
            "register-model": deployment.register_model_function,
            "publish-api": deployment.publish_api_function,
            # api.yaml names it `${ProjectName}-api-proxy`, beside platform.yaml's
            # `${ProjectName}-start-training`; the API stack may not exist yet.
            "api-proxy": deployment.start_training_function.removesuffix("-start-training") + "-api-proxy",
        }
        return names[function]

    # -- the API -------------------------------------------------------------------------------------
    def api(self) -> ApiEndpoint:
        access = self._flow.stack.api()
        if access.local_url is None or access.api_key is None:
            raise HarnessError("the published API has no local URL or no API key")
        # ApiUrl names the resource (`.../<stage>/predict`); a scenario's paths are relative to the stage.
        marker = f"/{access.stage}/"
        if marker not in access.local_url:
            raise HarnessError(f"the API URL {access.local_url} does not name the stage {access.stage}")
        base = access.local_url[: access.local_url.index(marker) + len(marker) - 1]
        return ApiEndpoint(base, access.api_key)

    # -- observing -----------------------------------------------------------------------------------
    def observe(self, parts: frozenset[ObservedPart] = ALL_PARTS) -> Observation:
        flow = self._flow
        return Observation(
            pipeline_executions=self._pipeline_views() if "pipeline" in parts else (),
            executions=self._execution_views() if "executions" in parts else (),
            registry=self._registry() if "registry" in parts else (),
            endpoint=self._endpoint() if "endpoint" in parts else None,
            approval_pending=bool(flow.control.approvals.pending()) if "approval" in parts else False,
            training_cache_hits=self._training_cache_hits() if "cache" in parts else 0,
        )

    def _training_cache_hits(self) -> int:
        return self._flow.stack.training_cache_hits()

    def _pipeline_views(self) -> tuple[PipelineExecutionView, ...]:
        stage_names = [stage.name for stage in self._pipeline.stages]
        with self._runs_lock:
            runs = list(self._runs)
        finished_ids = {run.result.execution_id for run in runs if run.result is not None}
        return tuple(self._pipeline_view(run, stage_names, finished_ids) for run in runs)

    def _pipeline_view(
        self, run: PipelineRun, stage_names: Sequence[str], finished_ids: set[str]
    ) -> PipelineExecutionView:
        if run.result is not None:
            result = run.result
            ran = {stage.name: stage for stage in result.stages}
            finished: list[StageView] = []
            for name in stage_names:
                stage = ran.get(name)
                if stage is None:
                    finished.append(StageView(name, "NotRun"))
                    continue
                action = next((action for action in stage.actions if action.status == "Failed"), None)
                finished.append(StageView(name, stage.status, action.error if action else None))
            return PipelineExecutionView(result.execution_id, result.status, tuple(finished), run.commit_id)
        not_run = tuple(StageView(name, "NotRun") for name in stage_names)
        if run.error is not None:
            failed = (StageView(stage_names[0], "Failed", run.error), *not_run[1:]) if not_run else ()
            return PipelineExecutionView(f"not-run-{run.commit_id[:12]}", "Failed", failed, run.commit_id)
        if not run.started:
            return PipelineExecutionView(f"queued-{run.commit_id[:12]}", "InProgress", not_run, run.commit_id)
        return self._running_view(run, stage_names, finished_ids)

    def _running_view(
        self, run: PipelineRun, stage_names: Sequence[str], finished_ids: set[str]
    ) -> PipelineExecutionView:
        """The running execution, from GetPipelineState's shape: stages whose latest execution is
        not one of the finished runs belong to it."""
        states = self._flow.stack.context.pipeline_states(ACCOUNT_ID, REGION)
        state = states.get(ACCOUNT_ID, REGION, self._pipeline.name)
        by_name = {stage["stageName"]: stage for stage in (state or {}).get("stageStates", [])}
        execution_id = f"starting-{run.commit_id[:12]}"
        stages = []
        for name in stage_names:
            latest = by_name.get(name, {}).get("latestExecution")
            if latest is None or latest.get("pipelineExecutionId") in finished_ids:
                stages.append(StageView(name, "NotRun"))
                continue
            execution_id = str(latest["pipelineExecutionId"])
            errors = [
                action["latestExecution"]["errorDetails"]["message"]
                for action in by_name[name].get("actionStates", [])
                if "errorDetails" in action.get("latestExecution", {})
            ]
            stages.append(StageView(name, str(latest["status"]), errors[0] if errors else None))
        return PipelineExecutionView(execution_id, "InProgress", tuple(stages), run.commit_id)

    def _execution_views(self) -> tuple[ExecutionView, ...]:
        stack = self._flow.stack
        sfn = stack.client("stepfunctions")
        listed = sorted(stack.executions(), key=lambda item: (item["startDate"], item["name"]))
        views = []
        for item in listed:
            arn = str(item["executionArn"])
            cached = self._executions.views.get(arn)
            if cached is not None:
                views.append(cached)
                continue
            described = sfn.describe_execution(executionArn=arn)
            status = str(described["status"])
            view = ExecutionView(
                name=str(described["name"]),
                status=status,
                failed_state=self._failed_state(sfn, arn) if status == "FAILED" else None,
                error=described.get("error"),
                cause=described.get("cause"),
            )
            if status in TERMINAL_STATUSES:
                self._executions.views[arn] = view
                where = f" in {view.failed_state}" if view.failed_state else ""
                why = f": {view.error}: {view.cause}" if view.error or view.cause else ""
                self._note(f"execution {view.name} {status}{where}{why}")
            views.append(view)
        return tuple(views)

    def _failed_state(self, sfn: Any, arn: str) -> str | None:
        if self._executions.doomed is None:
            definition = sfn.describe_state_machine(
                stateMachineArn=self._flow.stack.deployment.state_machine_arn
            )["definition"]
            self._executions.doomed = doomed_states(json.loads(definition))
        events: list[Mapping[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events.extend(page["events"])
        return failure_origin(events, self._executions.doomed)

    def _registry(self) -> tuple[Mapping[str, JsonValue], ...]:
        stack = self._flow.stack
        dynamodb = stack.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(
            TableName=stack.deployment.registry_table, ConsistentRead=True
        ):
            items.extend(plain_item(item) for item in page.get("Items", []))
        items.sort(key=lambda item: (str(item.get("RegisteredAt", "")), str(item.get("Version", ""))))
        return tuple(items)

    def _endpoint(self) -> EndpointView | None:
        stack = self._flow.stack
        try:
            described = stack.describe_endpoint()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ValidationException":
                return None  # SageMaker's answer for an endpoint that does not exist
            raise
        return EndpointView(
            name=str(described["EndpointName"]),
            status=str(described["EndpointStatus"]),
            config_name=str(described["EndpointConfigName"]),
            failure_reason=described.get("FailureReason"),
        )

    # -- logs ----------------------------------------------------------------------------------------
    def logs_since(self, since: float) -> str:
        """Container logs, then Lambda invocations, then the harness's own lines (the pipeline's progress
        and outcome) last, closest to the failure that a reader looks at."""
        sections: list[str] = []
        compute = self.settings.work_dir / "stack" / "compute"
        for path in sorted(compute.rglob("*.log")) if compute.is_dir() else []:
            if path.stat().st_mtime >= since:
                sections.append(f"== {path.relative_to(self.settings.work_dir)}")
                sections.append(_tail(path.read_text(encoding="utf-8", errors="replace")))
        running = self.flow.aws if self.flow is not None else None
        for invocation in running.lambdas.invocations() if running is not None else []:
            if invocation.started_at >= since:
                sections.append(
                    f"== lambda {invocation.function_name} {invocation.request_id} "
                    f"at {_stamp(invocation.started_at)}"
                )
                sections.append(_tail(invocation.log))
        with self._lines_lock:
            lines = [f"{_stamp(line.at)} {line.text}" for line in self._lines if line.at >= since]
        sections.extend(["== harness and pipeline", *lines])
        return "\n".join(sections)


def _stamp(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def _tail(text: str) -> str:
    return text if len(text) <= LOG_TAIL_BYTES else "...\n" + text[-LOG_TAIL_BYTES:]


@contextlib.contextmanager
def open_harness(settings: HarnessSettings) -> Iterator[LocalScenarioHarness]:
    """The project's `HarnessFactory`: a fresh, started harness for one scenario, stopped on exit."""
    harness = LocalScenarioHarness(settings)
    try:
        yield harness.start()
    finally:
        harness.stop()


__all__ = ["LocalScenarioHarness", "open_harness", "scratch_repository"]
