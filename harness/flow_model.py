"""The main job's data: its options, the error a phase raises, a sample query and answer, and the
run's outcome (`FlowSummary`, whose `to_json()` is `mlops run --json`'s last line). Data only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("auto", "docker", "process")
APPROVALS = ("auto", "prompt", "wait")
SETUP_STAGE = "Setup"
API_STAGE = "CallApi"
DEFAULT_SAMPLES = 5
# The proxy Lambda's default MAX_INPUTS (deployer/lambdas/api_proxy.py): queries the API takes a request.
MAX_API_BATCH = 64


class FlowError(RuntimeError):
    """A phase of the flow failed; `stage` names it (a pipeline stage, Setup or CallApi)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


@dataclass(frozen=True)
class FlowOptions:
    """How `mlops run` runs. Every field has a default that suits a developer machine."""

    work_dir: Path
    # `docker` (the image the Build stage built, pushed to a local registry standing for ECR),
    # `process` (the committed tree's `container/train` and `serve` as child processes), or `auto`:
    # docker when an engine answers AND the base image exists, else process.
    runtime: str = "auto"
    data: Path | None = None  # a `Query,Intent` CSV; None: CLINC150's clinc10 subset (train split)
    queries: Path | None = None  # a CSV with `Query` (and optionally `Intent`); None: held-out rows
    # `auto`, `prompt` (asks in the terminal) or `wait` (`mlops approve`/`reject`, or the console).
    approval: str = "auto"
    report_dir: Path | None = None  # None: <work_dir>/report
    # Multiplies Step Functions' Wait states, Retry intervals and `.sync` polls (0.01: 30 s become 0.3 s).
    time_scale: float = 0.01
    # The platform's StartTrainingPollSeconds / PublishApiPollSeconds (10 s and 5 s on AWS).
    poll_seconds: float = 0.5
    source: Path = REPO_ROOT  # the git repository the Source stage commits
    ref: str | None = None  # None: the working tree as a commit
    samples: int = DEFAULT_SAMPLES
    # Platform template parameters (e.g. QualityThreshold) over the ones the harness passes.
    parameters: Mapping[str, str] = field(default_factory=dict)
    api_batch_size: int = MAX_API_BATCH  # queries per API request at the end (harness.api_client)
    training_cache: bool = True  # step caching of training jobs (harness.compute.training_cache)
    iam: bool = True  # IAM enforced at the emulator's boundary (harness/iam); False: full rights for all

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {self.runtime!r}")
        if self.approval not in APPROVALS:
            raise ValueError(f"approval must be one of {', '.join(APPROVALS)}, not {self.approval!r}")
        for name in ("data", "queries"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"--{name}: {path} is not a file")
        if not 0 < self.time_scale <= 1000:
            raise ValueError(f"time_scale must be in (0, 1000], got {self.time_scale}")
        if not 0 < self.poll_seconds <= 60:
            raise ValueError(f"poll_seconds must be in (0, 60], got {self.poll_seconds}")
        if self.samples < 1:
            raise ValueError(f"samples must be at least 1, got {self.samples}")
        if not 1 <= self.api_batch_size <= MAX_API_BATCH:
            raise ValueError(f"api_batch_size must be in [1, {MAX_API_BATCH}], got {self.api_batch_size}")

    @property
    def report_folder(self) -> Path:
        return self.report_dir if self.report_dir is not None else self.work_dir / "report"


@dataclass(frozen=True)
class Query:
    text: str
    expected: str | None = None


@dataclass(frozen=True)
class SampleAnswer:
    query: str
    expected: str | None
    http_status: int
    intent: str | None
    error: str | None = None


@dataclass
class FlowSummary:
    """The run's outcome; `to_json()` is `mlops run --json`'s last line."""

    status: str = "failed"
    failed_stage: str | None = None
    reason: str | None = None
    runtime: str = ""
    stage_timings_s: dict[str, float] = field(default_factory=dict)
    execution_id: str | None = None
    execution_arn: str | None = None
    endpoint_name: str | None = None
    model_version: str | None = None
    commit_id: str | None = None
    image_digest: str | None = None
    data_version: str | None = None
    api_url: str | None = None
    api_key: str | None = None
    emulator_url: str | None = None
    sample_answers: list[SampleAnswer] = field(default_factory=list)
    api_throttled: int = 0  # 429s the API client met and retried (or, when retries ran out, returned)
    training_cache_hit: bool = False  # the training job reused an earlier job's model (step caching)
    # Calls IAM refused during the run: principal, action, resource, reason, AWS's message (harness/iam).
    access_denied: list[dict[str, str]] = field(default_factory=list)
    registry_item: dict[str, Any] | None = None
    report_dir: str | None = None
    wall_s: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        if self.succeeded:
            document.pop("failed_stage")
            document.pop("reason")
        return document
