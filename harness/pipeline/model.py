"""The runner's vocabulary: what an action executor gets and returns, results, and progress events.

An executor is any callable `(ActionContext) -> ActionOutput`; it fails its action by raising
`ActionFailed` (any other exception fails it too, reported as an internal error). Statuses and field
names follow CodePipeline's GetPipelineState / ListActionExecutions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.pipeline.artifacts import ArtifactRef
from harness.pipeline.definition import Action, Pipeline

Status = Literal["InProgress", "Succeeded", "Failed"]
IN_PROGRESS: Status = "InProgress"
SUCCEEDED: Status = "Succeeded"
FAILED: Status = "Failed"


class ActionFailed(Exception):
    """Raised by an executor to fail its action; `reason` is what CodePipeline would show."""

    def __init__(
        self,
        reason: str,
        *,
        failure_type: str = "JobFailed",
        log_path: Path | None = None,
        updated_by: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failure_type = failure_type
        self.log_path = log_path
        self.updated_by = updated_by


@dataclass(frozen=True)
class SourceRequest:
    """What the Source action takes: a git repository and a ref (None: the working tree as a commit)."""

    repository: Path
    ref: str | None = None


@dataclass
class ActionContext:
    """Everything an executor sees of its run."""

    pipeline: Pipeline
    execution_id: str
    stage: str
    action: Action
    configuration: Mapping[str, str]  # the action's configuration, pipeline variables resolved
    input_artifacts: tuple[ArtifactRef, ...]
    work_dir: Path  # an empty folder of the action's own
    source: SourceRequest | None
    variables: Mapping[str, Mapping[str, str]]  # namespace -> name -> value, as resolved so far
    progress: Callable[[str], None]  # one line of progress (shown by the event stream)
    action_execution_id: str = ""

    def output_path(self, artifact: str) -> Path:
        """Where the executor writes an output artifact's zip (the runner stores it afterwards)."""
        return self.work_dir / "out" / f"{artifact}.zip"


@dataclass(frozen=True)
class ActionOutput:
    """What a succeeded action returns: output variables, artifacts (name -> zip path), a summary."""

    variables: Mapping[str, str] = field(default_factory=dict)
    artifacts: Mapping[str, Path] = field(default_factory=dict)
    summary: str = ""
    revision: str | None = None  # the source revision the output artifacts carry (Source actions)
    external_execution_id: str | None = None
    log_path: Path | None = None
    updated_by: str | None = None  # who acted (an approver), as GetPipelineState's lastUpdatedBy


class ActionExecutor(Protocol):
    def __call__(self, context: ActionContext) -> ActionOutput: ...


# (category, provider) -> executor: the one explicit table the runner dispatches on.
ExecutorTable = Mapping[tuple[str, str], ActionExecutor]


@dataclass
class ActionResult:
    stage: str
    name: str
    category: str
    provider: str
    status: Status
    started_at: float
    finished_at: float | None = None
    summary: str = ""
    error: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    artifacts: tuple[ArtifactRef, ...] = ()
    external_execution_id: str | None = None
    log_path: Path | None = None
    error_code: str | None = None
    updated_by: str | None = None
    action_execution_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def duration_s(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "action": self.name,
            "category": self.category,
            "provider": self.provider,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "summary": self.summary,
            "error": self.error,
            "output_variables": dict(self.variables),
            "output_artifacts": [
                {"name": a.name, "bucket": a.bucket, "key": a.key, "revision": a.revision}
                for a in self.artifacts
            ],
            "external_execution_id": self.external_execution_id,
            "error_code": self.error_code,
            "updated_by": self.updated_by,
            "log_path": str(self.log_path) if self.log_path else None,
        }


@dataclass
class StageResult:
    name: str
    status: Status
    started_at: float
    finished_at: float | None = None
    actions: list[ActionResult] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "actions": [a.to_json() for a in self.actions],
        }


@dataclass
class PipelineResult:
    pipeline_name: str
    execution_id: str
    status: Status
    started_at: float
    finished_at: float | None = None
    stages: list[StageResult] = field(default_factory=list)
    failed_stage: str | None = None
    failed_action: str | None = None
    reason: str | None = None
    variables: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    def stage(self, name: str) -> StageResult:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"stage {name!r} did not run in execution {self.execution_id}")

    def stage_timings_s(self) -> dict[str, float]:
        return {stage.name: round(stage.duration_s, 3) for stage in self.stages}

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline_name,
            "execution_id": self.execution_id,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "failed_stage": self.failed_stage,
            "failed_action": self.failed_action,
            "reason": self.reason,
            "stage_timings_s": self.stage_timings_s(),
            "stages": [s.to_json() for s in self.stages],
            "variables": self.variables,
        }


EventKind = Literal[
    "pipeline-started",
    "stage-started",
    "action-started",
    "action-progress",
    "action-finished",
    "stage-finished",
    "pipeline-finished",
]


@dataclass(frozen=True)
class PipelineEvent:
    """One step of progress. `status` is set on -finished events; `message` on progress and failures."""

    kind: EventKind
    execution_id: str
    time: float
    stage: str | None = None
    action: str | None = None
    status: Status | None = None
    message: str = ""
    elapsed_s: float | None = None


EventSink = Callable[[PipelineEvent], None]
