"""The harness context: everything the seams read at run time, owned by the running embedded emulator.

moto's server runs the seams in its own request threads, where nothing can be handed in, so they
read the context of the emulator that runs now (`current()`). One `HarnessContext` holds:

- the compute plane (`attach`/`detach`): while none is attached, the SageMaker seams keep moto's own
  behaviour (metadata only);
- the Lambda runtime (`lambdas`) that runs every function's handler in worker processes;
- the fault board (`faults`), which reaches the runtimes only through the wrappers and hooks it
  gives them (harness/faults.py);
- the Step Functions timing (`step_functions`): the time scale of Wait states, Retry intervals and
  `.sync` polls, and the SageMaker operations' parameters the integration accepts;
- IAM enforcement (`iam`, harness/iam): the switch, and the denials made for the run report;
- the timing profile (`timing`, harness/timing.py): how long AWS's side of training, endpoints, builds
  and Lambda cold starts takes (`fast`: nothing added; `aws`), at the same time scale;
- the pipeline states GetPipelineState answers (`pipeline_states`), which live with moto's
  CodePipeline backend so that moto's reset clears them with the rest of its state.

`EmbeddedEmulator` creates the context on start and closes it on stop: the next emulator in the same
process starts with a new one, and nothing of the first is left. The one module-level variable here
is the guard that one embedded emulator runs per process (moto's state is process-wide by nature).
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Any, Final, TypeVar

from harness.aws_errors import service_model
from harness.compute.plane import ComputePlane
from harness.faults import FaultBoard
from harness.iam.credentials import ADMIN_CREDENTIALS
from harness.iam.enforcement import IamEnforcement
from harness.lambda_runtime import FunctionSpec, LambdaRuntime
from harness.timing import Timing

# Read when a context is made: the Step Functions time scale to start with (1.0 when unset).
TIME_SCALE_ENV: Final = "MLOPS_SFN_TIME_SCALE"
# The principal that assumes a Lambda function's execution role.
LAMBDA_PRINCIPAL: Final = "lambda.amazonaws.com"


def sagemaker_parameters(operation: str) -> frozenset[str]:
    """The request members of a SageMaker operation, from botocore's model of the API."""
    model = service_model("sagemaker").operation_model(operation)
    return frozenset(model.input_shape.members)


class StepFunctionsTiming:
    """How fast Step Functions waits, and what the SageMaker integration accepts; thread-safe."""

    def __init__(self, scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._scale = 1.0
        self._parameters: dict[str, frozenset[str]] = {}
        self.set_scale(scale)

    @property
    def scale(self) -> float:
        """Multiplies every Wait state, Retry interval and `.sync` poll: 1.0 is real time."""
        with self._lock:
            return self._scale

    def set_scale(self, scale: float) -> None:
        if not 0 < scale <= 1000:
            raise ValueError(f"the time scale must be in (0, 1000], got {scale}")
        with self._lock:
            self._scale = scale

    def parameters_of(self, operation: str) -> frozenset[str]:
        """`sagemaker_parameters(operation)`, read once per context."""
        with self._lock:
            known = self._parameters.get(operation)
        if known is None:
            known = sagemaker_parameters(operation)
            with self._lock:
                self._parameters[operation] = known
        return known


class PipelineStates:
    """The latest GetPipelineState answer of each pipeline, shared by the pipeline runner (writer,
    through harness.pipeline.state.state_listener) and the CodePipeline seam (reader)."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._executions: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def publish(self, account_id: str, region: str, state: dict[str, Any]) -> None:
        key = (account_id, region, str(state["pipelineName"]))
        with self._lock:
            previous = self._states.get(key)
            merged = copy.deepcopy(state)
            if previous is not None:
                # A stage this execution has not reached keeps its last execution's state, as on AWS.
                before = {stage["stageName"]: stage for stage in previous["stageStates"]}
                merged["stageStates"] = [
                    stage if "latestExecution" in stage else before.get(stage["stageName"], stage)
                    for stage in merged["stageStates"]
                ]
                merged["created"] = previous["created"]
            self._states[key] = merged

    def get(self, account_id: str, region: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            state = self._states.get((account_id, region, name))
            return copy.deepcopy(state) if state is not None else None

    def record_execution(self, account_id: str, region: str, pipeline: str, summary: dict[str, Any]) -> None:
        """Keeps a run's ListPipelineExecutions summary (harness.pipeline.state.execution_summary)."""
        with self._lock:
            runs = self._executions.setdefault((account_id, region, pipeline), {})
            runs[str(summary["pipelineExecutionId"])] = copy.deepcopy(summary)

    def executions(self, account_id: str, region: str, name: str) -> list[dict[str, Any]] | None:
        """The pipeline's executions, newest first; None for a pipeline never published."""
        with self._lock:
            if (account_id, region, name) not in self._states:
                return None
            runs = self._executions.get((account_id, region, name), {})
            return sorted(copy.deepcopy(list(runs.values())), key=lambda run: -float(run["startTime"]))

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._executions.clear()


class HarnessContext:
    """What one running embedded emulator gives its seams. `open()` once the server's URL is known."""

    def __init__(self, time_scale: float | None = None, iam: bool = True) -> None:
        configured = os.environ.get(TIME_SCALE_ENV)
        scale = time_scale if time_scale is not None else float(configured) if configured else 1.0
        self.faults = FaultBoard()
        # IAM enforcement at moto's boundary (harness/seams/iam.py); `iam.set_enabled(False)` turns it off.
        self.iam = IamEnforcement(enabled=iam)
        self.step_functions = StepFunctionsTiming(scale)
        self.timing = Timing(lambda: self.step_functions.scale)
        self._lock = threading.Lock()
        self._plane: ComputePlane | None = None
        self._lambdas: LambdaRuntime | None = None
        self._endpoint_url: str | None = None

    def open(self, endpoint_url: str) -> None:
        """Binds the context to the emulator at `endpoint_url` (the Lambda handlers call it)."""
        with self._lock:
            if self._endpoint_url is not None:
                raise RuntimeError(f"this context is already open for {self._endpoint_url}")
            self._endpoint_url = endpoint_url
            self._lambdas = LambdaRuntime(
                endpoint_url=endpoint_url,
                error_for=self.faults.lambda_error,
                min_cold_start_s=lambda: self.timing.delay_s("lambda_cold_start_s"),
                credentials_for=self._lambda_credentials,
            )

    def _lambda_credentials(self, spec: FunctionSpec) -> dict[str, str]:
        """A function's worker credentials: its execution role's, the session named after the function
        (as Lambda names it), assumed by lambda.amazonaws.com."""
        if not spec.role:
            return ADMIN_CREDENTIALS.as_env()
        return self.iam.session(spec.role, spec.name[:64], LAMBDA_PRINCIPAL).as_env()

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("the harness context is not open: its emulator has not started")
        return self._endpoint_url

    @property
    def lambdas(self) -> LambdaRuntime:
        with self._lock:
            lambdas = self._lambdas
        if lambdas is None:
            raise RuntimeError("the harness context is not open: its emulator has not started")
        return lambdas

    # -- the compute plane ---------------------------------------------------------------------------
    @property
    def plane(self) -> ComputePlane | None:
        """The attached compute plane, or None (the SageMaker seams then keep moto's behaviour)."""
        with self._lock:
            return self._plane

    def attach(self, plane: ComputePlane) -> None:
        """Makes `plane` the one the seams use. Only one plane is attached at a time."""
        with self._lock:
            if self._plane is not None and self._plane is not plane:
                raise RuntimeError("a compute plane is already attached; detach() it first")
            self._plane = plane

    def detach(self) -> None:
        """Shuts the attached plane down (if any) and forgets it."""
        with self._lock:
            plane, self._plane = self._plane, None
        if plane is not None:
            plane.shutdown()

    # -- pipeline states -----------------------------------------------------------------------------
    def pipeline_states(self, account_id: str, region: str) -> PipelineStates:
        """The pipeline states of one account and region, kept on moto's CodePipeline backend."""
        return states_in_backend(account_id, region)

    def close(self) -> None:
        """Stops the plane's containers and the Lambda workers, and switches every fault off."""
        try:
            self.detach()
        finally:
            self.faults.clear()
            with self._lock:
                lambdas, self._lambdas = self._lambdas, None
            if lambdas is not None:
                lambdas.close()


_BACKEND_ATTRIBUTE: Final = "harness_pipeline_states"
_backend_lock = threading.Lock()
HeldT = TypeVar("HeldT")


def held_by_codepipeline_backend(account_id: str, region: str, attribute: str, kind: type[HeldT]) -> HeldT:
    """The `kind` object that moto's CodePipeline backend for this account and region holds under
    `attribute`, made on first use. State kept there goes with the backend: moto's reset makes new
    backends, and with them new, empty objects."""
    from moto.codepipeline.models import codepipeline_backends

    backend = codepipeline_backends[account_id][region]
    with _backend_lock:
        held = getattr(backend, attribute, None)
        if not isinstance(held, kind):
            held = kind()
            setattr(backend, attribute, held)
        return held


def states_in_backend(account_id: str, region: str) -> PipelineStates:
    """The pipeline states held by moto's CodePipeline backend for this account and region."""
    return held_by_codepipeline_backend(account_id, region, _BACKEND_ATTRIBUTE, PipelineStates)


_guard = threading.Lock()
_current: HarnessContext | None = None


def current() -> HarnessContext | None:
    """The context of the embedded emulator running in this process, or None."""
    with _guard:
        return _current


def claim(context: HarnessContext) -> None:
    """Makes `context` the process's one context; refuses while another emulator's context is held."""
    global _current
    with _guard:
        if _current is not None and _current is not context:
            where = _current._endpoint_url or "(starting)"
            raise RuntimeError(
                f"an embedded emulator already runs in this process at {where}; "
                "moto's state is process-wide, so run a second harness in its own process"
            )
        _current = context


def release(context: HarnessContext) -> None:
    global _current
    with _guard:
        if _current is context:
            _current = None
