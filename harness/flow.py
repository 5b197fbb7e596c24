"""The main job: a commit in, a working HTTP API out, on the local stand-in for AWS (`mlops run`).

`LocalFlow` composes what exists and re-implements none of it:

1. `harness.local.LocalAws`: the embedded emulator, the compute plane on the chosen runtime, the
   Lambda runtime and the local API gateway; `deploy()` pushes the deployer's definitions;
2. the training data (a `Query,Intent` CSV) put under the data prefix of the data bucket;
3. `harness.pipeline`: the deployed CodePipeline run by `PipelineRunner`, Source (a commit of a git
   repository: by default this repository's working tree as a commit) → Build → Train → Approve →
   Register → PublishApi, with GetPipelineState served from the runner's state (the register-model
   Lambda reads its approver there);
4. the API called over HTTP (the local gateway, with the key) with sample queries;
5. `harness.report`: the run's report folder.

Knobs (each a `FlowOptions` field and an `mlops run` option):
- `runtime`: `docker` (the image the Build stage built and pushed to a local registry that stands for
  ECR), `process` (the committed tree's `container/train` and `serve` as child processes) or `auto`:
  docker when an engine answers AND the base image (`BASE_IMAGE`) exists, else process.
- `time_scale`: multiplies Step Functions' Wait states, Retry intervals and `.sync` polls (0.01: the
  state machine's 30 s endpoint poll takes 0.3 s).
- `poll_seconds`: the start-training and publish-api Lambdas' `POLL_SECONDS` (their documented
  optional variable, 10 s and 5 s on AWS), set on the deployed functions: how often the Train action
  looks at its execution, and PublishApi at the endpoint it promotes and the API stack.
- `approval`: `auto`, `prompt` (asks in the terminal) or `wait` (blocks until `mlops approve` /
  `mlops reject` decides through the approval channel under the work dir, `harness.control`).

Output is quiet: one line per stage with elapsed time, the training job's epoch and metric lines, then
the API URL, key, sample answers and registry entry (`FlowSummary`).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
from boto3.dynamodb.types import TypeDeserializer

from harness import datasets
from harness.compute.docker import DockerRuntime
from harness.compute.process import ProcessRuntime
from harness.control import ControlChannel
from harness.datasets import Example
from harness.emulator import ACCOUNT_ID, REGION
from harness.local import DataObject, LocalAws, LocalAwsOptions
from harness.pipeline import (
    PIPELINE_STATES,
    ApprovalPolicy,
    ArtifactStore,
    DockerImageBuild,
    EmulatorJobBoard,
    LocalRegistry,
    PipelineEvent,
    PipelineResult,
    PipelineRunner,
    ProcessImageBuild,
    ProgressPrinter,
    PromptApproval,
    SourceRequest,
    boto3_invoker,
    default_executors,
    deployed_pipeline,
    invoke_client,
    policy_named,
)
from harness.report import RunReport, write_report
from harness.seams.codepipeline import EmulatorApprovalBoard

LOG = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
# The Dockerfile's default base image (container/Dockerfile `ARG BASE_IMAGE`), made by
# scripts/docker-engine.sh: no registry pull works here, so without it no image can be built.
BASE_IMAGE = "mlops-base:bookworm"
WHEELHOUSE = REPO_ROOT / "container" / "wheels"
RUNTIMES = ("auto", "docker", "process")
APPROVALS = ("auto", "prompt", "wait")
# Stage names of the phases around the pipeline, as they appear in a summary's `failed_stage`.
SETUP_STAGE = "Setup"
API_STAGE = "CallApi"
DEFAULT_SAMPLES = 5
API_TIMEOUT_S = 30.0


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
    runtime: str = "auto"
    data: Path | None = None  # a `Query,Intent` CSV; None: CLINC150's clinc10 subset (train split)
    queries: Path | None = None  # a CSV with `Query` (and optionally `Intent`); None: held-out rows
    approval: str = "auto"
    report_dir: Path | None = None  # None: <work_dir>/report
    time_scale: float = 0.01
    poll_seconds: float = 0.5
    source: Path = REPO_ROOT  # the git repository the Source stage commits
    ref: str | None = None  # None: the working tree as a commit
    samples: int = DEFAULT_SAMPLES

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


# -- inputs -------------------------------------------------------------------------------------------
def resolve_runtime(name: str) -> str:
    """`docker` or `process` for `name`; `auto` is docker when an engine answers and BASE_IMAGE exists."""
    if name == "process":
        return name
    docker_ready = DockerRuntime().available() and _image_exists(BASE_IMAGE)
    if name == "auto":
        return "docker" if docker_ready else "process"
    if not docker_ready:
        raise FlowError(
            SETUP_STAGE,
            f"the docker runtime needs a Docker engine and the base image {BASE_IMAGE} "
            "(scripts/docker-engine.sh makes both); use --runtime process",
        )
    return name


def _image_exists(reference: str) -> bool:
    try:
        found = subprocess.run(
            ["docker", "image", "inspect", reference], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return found.returncode == 0


def training_and_queries(
    data: Path | None, queries: Path | None, samples: int
) -> tuple[list[Example], list[Query]]:
    """The training rows and the sample queries. Without `queries`, a few rows are held out: from
    CLINC150's test split for the default data, else taken out of the given data (one per intent, for
    as many intents as `samples`), so the model never trained on them."""
    if data is None:
        intents = datasets.clinc10_intents()
        training = datasets.clinc150_split("train", intents)
        pool = datasets.clinc150_split("test", intents)
        held_out = _one_per_intent(pool, samples)
    else:
        rows = datasets.read_csv(data)
        if not rows:
            raise FlowError(SETUP_STAGE, f"--data {data} has no rows")
        held_out = [] if queries is not None else _one_per_intent(list(reversed(rows)), samples)
        taken = {id(example) for example in held_out}
        training = [example for example in rows if id(example) not in taken]
    if queries is not None:
        return training, read_queries(queries)
    return training, [Query(example.query, example.intent) for example in held_out]


def _one_per_intent(pool: Sequence[Example], count: int) -> list[Example]:
    chosen: dict[str, Example] = {}
    for example in pool:
        if example.intent not in chosen:
            chosen[example.intent] = example
        if len(chosen) == count:
            break
    return list(chosen.values())


def read_queries(path: Path) -> list[Query]:
    """A CSV with the header `Query` and optionally `Intent` (the expected answer)."""
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "Query" not in reader.fieldnames:
            raise ValueError(f"{path}: expected a CSV header with Query (and optionally Intent)")
        found = [Query(row["Query"], row.get("Intent") or None) for row in reader if row["Query"]]
    if not found:
        raise ValueError(f"{path}: no queries")
    return found


# -- training progress --------------------------------------------------------------------------------
class TrainingLogFollower:
    """Prints the training jobs' epoch and metric lines (`epoch=..; train_loss=..;`, `accuracy=..;`)
    while a stage runs, by following every `train.log` under the compute plane's folder."""

    def __init__(self, root: Path, write: Callable[[str], None], interval_s: float = 0.5) -> None:
        self._root = root
        self._write = write
        self._interval_s = interval_s
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TrainingLogFollower:
        for path in self._root.glob("training-jobs/*/*/*/train.log"):
            self._offsets[path] = path.stat().st_size  # earlier jobs are not this run's progress
        self._thread = threading.Thread(target=self._follow, name="training-log", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._read_new()

    def _follow(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._read_new()

    def _read_new(self) -> None:
        for path in sorted(self._root.glob("training-jobs/*/*/*/train.log")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                if "train_loss=" in line or line.startswith("accuracy="):
                    self._write(f"             training {path.parent.name}: {line.strip()}")


# -- the flow -----------------------------------------------------------------------------------------
class LocalFlow:
    """The local stack with the deployed definitions and a pipeline runner over them."""

    def __init__(self, options: FlowOptions, write: Callable[[str], None] = print) -> None:
        self.options = options
        self.write = write
        self.runtime = ""
        self.aws: LocalAws | None = None
        self.data: DataObject | None = None
        self._registry: LocalRegistry | None = None
        self._runner: PipelineRunner | None = None
        self.control = ControlChannel(options.work_dir)

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> LocalFlow:
        """Starts the stack, deploys the definitions and makes the pipeline runner."""
        options = self.options
        self.runtime = resolve_runtime(options.runtime)
        options.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            aws = LocalAws(
                LocalAwsOptions(
                    work_dir=options.work_dir, runtime=self.runtime, time_scale=options.time_scale
                )
            ).start()
            self.aws = aws
            deployment = aws.deploy()
            self._set_poll_seconds(deployment.start_training_function, options.poll_seconds)
            self._set_poll_seconds(deployment.publish_api_function, options.poll_seconds)
            deployed = deployed_pipeline(
                aws.client("cloudformation"), deployment.platform_stack_name, ACCOUNT_ID
            )
            store = ArtifactStore(
                options.work_dir / "artifacts", deployed.pipeline.artifact_bucket, deployed.pipeline.name,
                aws.client("s3"),
            )
            executors = default_executors(
                deployed=deployed,
                endpoint_url=aws.endpoint_url,
                image_build=self._image_build(aws),
                job_board=EmulatorJobBoard(ACCOUNT_ID, REGION),
                invoke=boto3_invoker(invoke_client(aws.session(), aws.endpoint_url)),
                approval=self._approval_policy(),
                store=store,
                lambda_report_timeout_s=900,
            )
            self._runner = PipelineRunner(
                deployed.pipeline,
                executors,
                store,
                options.work_dir / "pipeline",
                events=self._events(),
                state_listener=PIPELINE_STATES.listener(ACCOUNT_ID, REGION),
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _approval_policy(self) -> ApprovalPolicy:
        if self.options.approval == "prompt":
            # The question goes to stderr (as a shell's `read -p` does): stdout stays the output, so
            # that `--json` keeps its summary as stdout's last line.
            return PromptApproval(stdout=sys.stderr)
        # `wait`: decided by PutApprovalResult (`mlops approve`, the console) or the channel's files.
        return policy_named(
            self.options.approval, self.control.approvals, board=EmulatorApprovalBoard(ACCOUNT_ID, REGION)
        )

    def _image_build(self, aws: LocalAws) -> ProcessImageBuild | DockerImageBuild:
        wheelhouse = WHEELHOUSE if WHEELHOUSE.is_dir() else None
        runtime = aws.plane.runtime
        if isinstance(runtime, ProcessRuntime):
            return ProcessImageBuild(runtime.register, wheelhouse)
        self._registry = LocalRegistry(self.options.work_dir / "registry").start()
        return DockerImageBuild(self._registry, aws.client("ecr"), wheelhouse, base_image=BASE_IMAGE)

    def _set_poll_seconds(self, function_name: str, seconds: float) -> None:
        """A Lambda's POLL_SECONDS (deployer/README.md: optional for start-training and publish-api)."""
        client = self.stack.client("lambda")
        current = client.get_function_configuration(FunctionName=function_name)
        variables = dict(current.get("Environment", {}).get("Variables", {}))
        variables["POLL_SECONDS"] = f"{seconds:g}"
        client.update_function_configuration(FunctionName=function_name, Environment={"Variables": variables})

    def _events(self) -> Callable[[PipelineEvent], None]:
        printer = ProgressPrinter(self.write)
        hint = ""
        if self.options.approval == "wait":
            hint = (
                "             waiting for `mlops approve` or `mlops reject --comment TEXT` "
                f"(--work-dir {self.options.work_dir})"
            )

        def show(event: PipelineEvent) -> None:
            printer(event)
            if hint and event.kind == "action-started" and event.stage == "Approve":
                self.write(hint)

        return show

    def stop(self) -> None:
        """Stops everything started, newest first (endpoints, workers, emulator, registry)."""
        aws, self.aws = self.aws, None
        registry, self._registry = self._registry, None
        try:
            if aws is not None:
                aws.stop()
        finally:
            if registry is not None:
                registry.stop()
            PIPELINE_STATES.clear()

    def __enter__(self) -> LocalFlow:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def stack(self) -> LocalAws:
        if self.aws is None:
            raise FlowError(SETUP_STAGE, "the local stack is not started")
        return self.aws

    # -- steps ---------------------------------------------------------------------------------------
    def put_data(self, examples: Iterable[Example], key: str | None = None) -> DataObject:
        """The training CSV under the data prefix (default key `<DataPrefix>train.csv`)."""
        self.data = self.stack.put_training_data(examples, key)
        return self.data

    def run_pipeline(self, source: Path | None = None, ref: str | None = None) -> PipelineResult:
        """One pipeline execution from a commit of `source` (default: the options' repository)."""
        if self._runner is None:
            raise FlowError(SETUP_STAGE, "the flow is not started")
        follower = TrainingLogFollower(self.stack.options.work_dir / "compute", self.write).start()
        try:
            return self._runner.run(SourceRequest(source or self.options.source, ref))
        finally:
            follower.stop()

    def retrain_on_data(self, csv_path: Path, timeout_s: float = 900.0) -> dict[str, Any]:
        """Puts a CSV under the data prefix, which starts an execution through the definitions' own
        S3 -> EventBridge -> start-training path (no pipeline: it trains the last build), and waits
        for that execution. Returns its ARN, status, error and cause."""
        examples = datasets.read_csv(csv_path)
        before = {execution["executionArn"] for execution in self.stack.executions()}
        data = self.put_data(examples, f"{self.stack.deployment.data_prefix}{csv_path.name}")
        self.write(f"data: {len(examples)} rows -> {data.uri}; waiting for the execution it starts")
        deadline = time.monotonic() + 60
        started: list[dict[str, Any]] = []
        while not started:
            if time.monotonic() > deadline:
                raise FlowError("Data", f"putting {data.uri} started no execution within 60 s")
            time.sleep(0.5)
            started = [e for e in self.stack.executions() if e["executionArn"] not in before]
        follower = TrainingLogFollower(self.stack.options.work_dir / "compute", self.write).start()
        try:
            result = self.stack.wait_for_execution(started[0]["executionArn"], timeout_s)
        finally:
            follower.stop()
        return {
            "status": "succeeded" if result.succeeded else "failed",
            "execution_arn": result.arn,
            "execution_status": result.status,
            "error": result.error,
            "cause": result.cause,
            "data_uri": data.uri,
        }

    def ask_api(self, queries: Sequence[Query]) -> tuple[str, str, list[SampleAnswer]]:
        """POSTs each query to the published API through the local gateway: (URL, key, answers)."""
        access = self.stack.api()
        if access.local_url is None or access.api_key is None:
            raise FlowError(API_STAGE, "the API stack has no local URL or no API key")
        answers = [call_api(access.local_url, access.api_key, query) for query in queries]
        return access.local_url, access.api_key, answers

    def registry_item(self, version: str) -> dict[str, Any]:
        """The registry table's item for `version`, as plain JSON (DynamoDB types removed)."""
        deployment = self.stack.deployment
        answer = self.stack.client("dynamodb").get_item(
            TableName=deployment.registry_table,
            Key={"ModelName": {"S": self.model_name}, "Version": {"S": version}},
            ConsistentRead=True,
        )
        if "Item" not in answer:
            raise FlowError("Register", f"the registry has no version {version} of {self.model_name}")
        return plain_item(answer["Item"])

    def registry_versions(self) -> list[str]:
        """Every version in the registry table, sorted."""
        answer = self.stack.client("dynamodb").scan(TableName=self.stack.deployment.registry_table)
        return sorted(str(item["Version"]["S"]) for item in answer.get("Items", []))

    @property
    def model_name(self) -> str:
        """The registry's ModelName: the register-model Lambda's MODEL_NAME (platform.yaml)."""
        function = self.stack.client("lambda").get_function_configuration(
            FunctionName=self.stack.deployment.register_model_function
        )
        return str(function["Environment"]["Variables"]["MODEL_NAME"])

    def write_report(
        self, result: PipelineResult, summary: FlowSummary, folder: Path
    ) -> Path:
        """The run's report folder (timeline, state machine path, loss curve, registry item, answers)."""
        sfn = self.stack.client("stepfunctions")
        state_machine = None
        history: list[Mapping[str, Any]] = []
        training_log = ""
        if summary.execution_arn:
            described = sfn.describe_execution(executionArn=summary.execution_arn)
            machine = sfn.describe_state_machine(stateMachineArn=described["stateMachineArn"])
            state_machine = json.loads(machine["definition"])
            history = _execution_history(sfn, summary.execution_arn)
            job_name = f"{summary.execution_arn.rsplit(':', 1)[1]}-train"
            try:
                training_log = self.stack.training_log(job_name)
            except Exception as error:  # the report is written even when the job left no log
                LOG.warning("no training log for %s: %s", job_name, error)
        details = {
            key: value
            for key, value in {
                "runtime": summary.runtime,
                "commit": summary.commit_id or "",
                "image digest": summary.image_digest or "",
                "data version": summary.data_version or "",
                "endpoint": summary.endpoint_name or "",
                "model version": summary.model_version or "",
                "api url": summary.api_url or "",
            }.items()
            if value
        }
        return write_report(
            folder,
            RunReport(
                pipeline=result.to_json(),
                state_machine=state_machine,
                execution_arn=summary.execution_arn,
                execution_history=history,
                training_log=training_log,
                registry_item=summary.registry_item,
                sample_answers=[asdict(answer) for answer in summary.sample_answers],
                details=details,
            ),
        )

    # -- one full run --------------------------------------------------------------------------------
    def complete_run(
        self,
        result: PipelineResult,
        queries: Sequence[Query],
        summary: FlowSummary,
        report_folder: Path | None = None,
    ) -> FlowSummary:
        """Fills `summary` from a pipeline result, calls the API with `queries`, writes the report (to
        `report_folder`, default the options' report folder)."""
        summary.stage_timings_s.update(result.stage_timings_s())
        summary.execution_id = result.execution_id
        train = result.variables.get("TrainVariables", {})
        summary.execution_arn = train.get("ExecutionArn") or None
        # Train deploys to the candidate endpoint; a succeeded run's PublishApi promoted the config to
        # the serving endpoint, the one the API calls.
        if result.succeeded:
            summary.endpoint_name = self.stack.deployment.endpoint_name
        else:
            summary.endpoint_name = train.get("EndpointName") or None
        summary.commit_id = result.variables.get("SourceVariables", {}).get("CommitId")
        summary.image_digest = result.variables.get("BuildVariables", {}).get("IMAGE_DIGEST")
        summary.model_version = result.variables.get("RegisterVariables", {}).get("ModelVersion")
        if summary.execution_arn:
            execution_input = json.loads(
                self.stack.client("stepfunctions").describe_execution(executionArn=summary.execution_arn)["input"]
            )
            summary.data_version = execution_input.get("DataVersion")
        if not result.succeeded:
            summary.failed_stage = result.failed_stage
            summary.reason = result.reason
        else:
            try:
                if summary.model_version:
                    summary.registry_item = self.registry_item(summary.model_version)
                started = time.monotonic()
                summary.api_url, summary.api_key, summary.sample_answers = self.ask_api(queries)
                summary.stage_timings_s[API_STAGE] = round(time.monotonic() - started, 3)
                failed = [answer for answer in summary.sample_answers if answer.http_status != 200]
                if failed:
                    count = f"{len(failed)} of {len(summary.sample_answers)}"
                    raise FlowError(API_STAGE, f"{count} API calls failed, the first: {failed[0]}")
                summary.status = "succeeded"
            except FlowError as error:
                summary.failed_stage, summary.reason = error.stage, error.reason
        folder = report_folder if report_folder is not None else self.options.report_folder
        try:
            self.write_report(result, summary, folder)
            summary.report_dir = str(folder)
        except Exception as error:
            LOG.warning("the report could not be written: %s", error)
            if summary.succeeded:
                summary.status, summary.failed_stage = "failed", "Report"
                summary.reason = f"the report could not be written: {error}"
        return summary


def call_api(url: str, api_key: str, query: Query) -> SampleAnswer:
    """One POST of `{"inputs": query}` with the key; the intent is the container's first prediction."""
    try:
        response = requests.post(
            url, json={"inputs": query.text}, headers={"x-api-key": api_key}, timeout=API_TIMEOUT_S
        )
    except requests.RequestException as error:
        return SampleAnswer(query.text, query.expected, 0, None, f"no answer: {error}")
    intent = None
    problem = None
    try:
        body = response.json()
        if response.status_code == 200:
            intent = body["predictions"][0]["intent"]
        else:
            problem = str(body.get("message", body))[:500]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        problem = response.text[:500]
    return SampleAnswer(query.text, query.expected, response.status_code, intent, problem)


def plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item without its type descriptors (numbers as int or float)."""
    deserializer = TypeDeserializer()
    return {key: _plain(deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(item) for item in value]
    return value


def _execution_history(sfn: Any, execution_arn: str) -> list[Mapping[str, Any]]:
    events: list[Mapping[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def run_flow(options: FlowOptions, write: Callable[[str], None] = print) -> FlowSummary:
    """`mlops run`: start, deploy, data, pipeline, API calls, report; then stop everything."""
    with LocalFlow(options, write) as flow:
        return run_once(flow, write)


def run_once(flow: LocalFlow, write: Callable[[str], None] = print) -> FlowSummary:
    """The flow's steps on a started `LocalFlow` (the stack stays up afterwards)."""
    options = flow.options
    summary = FlowSummary(runtime=flow.runtime, emulator_url=flow.stack.endpoint_url)
    started = time.monotonic()
    try:
        training, queries = training_and_queries(options.data, options.queries, options.samples)
        data = flow.put_data(training)
        version = f" (version {data.version_id})" if data.version_id else ""
        write(f"data: {len(training)} rows -> {data.uri}{version}")
    except (FlowError, ValueError) as error:
        summary.failed_stage, summary.reason = SETUP_STAGE, str(error)
        return summary
    result = flow.run_pipeline(options.source, options.ref)
    flow.complete_run(result, queries, summary)
    summary.wall_s = round(time.monotonic() - started, 3)
    return summary


def describe(summary: FlowSummary) -> str:
    """The closing lines a person reads."""
    lines = []
    if summary.succeeded:
        lines.append(f"API:      {summary.api_url}")
        lines.append(f"API key:  {summary.api_key}")
        lines.append(f"endpoint: {summary.endpoint_name}   model version: {summary.model_version}")
        for answer in summary.sample_answers:
            expected = f" (expected {answer.expected})" if answer.expected else ""
            lines.append(f"  {answer.http_status} {answer.query!r} -> {answer.intent}{expected}")
        if summary.registry_item is not None:
            lines.append("registry entry:")
            lines.append(json.dumps(summary.registry_item, indent=2, sort_keys=True))
    else:
        lines.append(f"FAILED at {summary.failed_stage}: {summary.reason}")
    timings = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in summary.stage_timings_s.items())
    lines.append(f"stages: {timings}")
    if summary.report_dir:
        lines.append(f"report:   {summary.report_dir}/index.html")
    return "\n".join(lines)


def fresh_work_dir(path: Path) -> Path:
    """Empties `path` (a previous run's files) and returns it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
