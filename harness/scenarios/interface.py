"""What the scenario runner needs from the harness: a Protocol, and the plain views of state it reads.

The runner knows nothing of moto, runtimes or the pipeline runner; an adapter over the real harness
implements `ScenarioHarness`, and a `HarnessFactory` opens a fresh, isolated one per scenario (its own
ports, emulator state and work folder) as a context manager that stops everything on exit.

The views are frozen dataclasses of what AWS's APIs report (CodePipeline's execution and stage statuses,
Step Functions' execution status and failed state, the registry's DynamoDB items, SageMaker's endpoint
and its current endpoint config), so that expectations are checked by pure functions over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, Protocol, get_args

from pydantic import JsonValue

from harness.scenarios.schema import Fault


class HarnessError(RuntimeError):
    """The harness cannot do what a step asks (a git command failed, no commit yet, ...)."""


@dataclass(frozen=True)
class StageView:
    name: str
    status: str  # InProgress | Succeeded | Failed | Stopped | NotRun
    reason: str | None = None


@dataclass(frozen=True)
class PipelineExecutionView:
    """One pipeline execution, stages in pipeline order."""

    execution_id: str
    status: str  # InProgress | Succeeded | Failed | Stopped | Superseded
    stages: tuple[StageView, ...] = ()
    trigger: str = ""  # the commit id or the S3 key that started it

    @property
    def failed_stage(self) -> str | None:
        return next((stage.name for stage in self.stages if stage.status == "Failed"), None)

    @property
    def reason(self) -> str | None:
        return next((stage.reason for stage in self.stages if stage.status == "Failed"), None)


@dataclass(frozen=True)
class ExecutionView:
    """One Step Functions execution of the training state machine."""

    name: str
    status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    # Where the failure began: the state whose task failed (e.g. `Train`), else the Pass state that
    # recorded the error before the Fail state (e.g. `BelowThreshold`).
    failed_state: str | None = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True)
class EndpointView:
    name: str
    status: str  # Creating | Updating | InService | Failed | ...
    config_name: str
    failure_reason: str | None = None


@dataclass(frozen=True)
class Observation:
    """The harness's state at one moment; lists are oldest first. A part not observed (`ObservedPart`)
    keeps its empty default."""

    pipeline_executions: tuple[PipelineExecutionView, ...] = ()
    executions: tuple[ExecutionView, ...] = ()
    # The registry's items as plain JSON (DynamoDB types removed, numbers as int/float), oldest first.
    registry: tuple[Mapping[str, JsonValue], ...] = ()
    endpoint: EndpointView | None = None
    approval_pending: bool = False
    training_cache_hits: int = 0  # training jobs that reused an earlier job's model (step caching)


# The parts of an Observation, each read on its own: a wait polls only the part it waits on.
ObservedPart = Literal["pipeline", "executions", "registry", "endpoint", "approval", "cache"]
ALL_PARTS: Final[frozenset[ObservedPart]] = frozenset(get_args(ObservedPart))


@dataclass(frozen=True)
class HttpExchange:
    """One request sent to the API and what came back (`status` is None when no answer came)."""

    method: str
    path: str
    request_body: bytes
    status: int | None
    body: bytes = b""
    error: str | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class ApiEndpoint:
    """Where the published API answers: `url` is the stage's base URL, `key` its API key."""

    url: str
    key: str


@dataclass(frozen=True)
class HarnessSettings:
    """How to set up a fresh harness for one scenario (from its `settings`, with the runner's overrides)."""

    scenario: str
    work_dir: Path  # a fresh folder for this scenario's state and logs
    runtime: Literal["docker", "process", "auto"]
    data: str | Path  # `clinc10`, `clinc150`, or an absolute CSV path
    hyperparameters: Mapping[str, str | int | float] = field(default_factory=dict)
    quality_threshold: float | None = None
    approval: Literal["auto", "reject", "scenario"] = "auto"
    time_scale: float | None = None
    training_cache: bool = True  # step caching of training jobs (harness/compute/training_cache.py)
    iam: bool = True  # IAM enforced for every principal (harness/iam)
    timing: Literal["fast", "aws"] = "fast"  # the timing profile (harness/timing.py)


class ScenarioHarness(Protocol):
    """One running harness, with the deployer's definitions deployed and the data in S3."""

    def commit(
        self, message: str, files: Mapping[str, str], hyperparameters: Mapping[str, str | int | float]
    ) -> str:
        """Commits the changes to the source repository and starts the pipeline; returns the commit id."""
        ...

    def s3_put(self, key: str, body: bytes) -> None:
        """Puts an object under the data prefix (key relative to it), as a user's upload would."""
        ...

    def rerun(self) -> None:
        """Starts the pipeline again on the current commit (CodePipeline's "Release change")."""
        ...

    def decide_approval(self, approve: bool, comment: str) -> None:
        """Approves or rejects the pipeline's waiting manual approval."""
        ...

    def inject_fault(self, fault: Fault) -> None:
        """Makes the fault happen from now on (the harness is discarded after the scenario)."""
        ...

    def api(self) -> ApiEndpoint:
        """The published API; raises when no API has been published yet."""
        ...

    def observe(self, parts: frozenset[ObservedPart] = ALL_PARTS) -> Observation:
        """The current state of pipeline, executions, registry, endpoint, approval and training cache;
        only `parts` are read, the others keep Observation's empty defaults."""
        ...

    def logs_since(self, since: float) -> str:
        """The harness's logs (emulator, runtimes, Lambdas, pipeline) since `since` (time.time())."""
        ...


class HarnessFactory(Protocol):
    """Opens a fresh, isolated harness for one scenario; leaving the context stops it and frees its ports."""

    def __call__(self, settings: HarnessSettings) -> AbstractContextManager[ScenarioHarness]: ...
