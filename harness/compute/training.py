"""SageMaker training jobs, really run: the job's lifecycle on the compute plane.

`TrainingJobSpec.from_request` reads a CreateTrainingJob request (the API's own field names) and
rejects what the harness cannot honour. `TrainingJobRunner.start` then, in a background thread:

1. Starting: waits out the timing profile's instance provisioning (harness/timing.py; none by default);
   Downloading: creates a fresh `/opt/ml` under `<work_dir>/training-jobs/<name>/`,
   downloads each input channel from the emulator's S3 into `input/data/<channel>/` and writes
   `input/config/{hyperparameters,inputdataconfig,resourceconfig}.json`;
2. Training: runs the image's `train` through the container runtime, its output kept in
   `<job dir>/train.log` (printable with `TrainingJob.log_text()`);
3. Uploading: packs `/opt/ml/model` into `<S3OutputPath>/<name>/output/model.tar.gz`;
4. ends Completed, Failed (FailureReason = "AlgorithmError: " + the container's
   `/opt/ml/output/failure`, "ClientError: ..." when the image could not be pulled, the data could not be
   fetched or the model not uploaded, or "CapacityError: ..."
   while starting when the capacity fault is on) or Stopped
   (StopTrainingJob sends SIGTERM; `StoppingCondition.MaxRuntimeInSeconds` stops it too, with the
   secondary status MaxRuntimeExceeded). A stopped job uploads no model.

With `roles` (harness.service_roles), the job's S3 reads and writes, its image pull (ECR) and its log
(CloudWatch Logs) are made with the credentials of the job's `RoleArn`, as SageMaker makes them with the
execution role (SageMaker developer guide, "How to use SageMaker execution roles", CreateTrainingJob API:
execution role permissions): a call the role may not make fails the job with the API's denial in its
FailureReason, naming the assumed role and the action.

FinalMetricDataList comes from the log: for each of the job's MetricDefinitions, the first group of
the regex's last match, as SageMaker does with CloudWatch's log. Statuses are read through
`TrainingJob.snapshot()`, which is safe from any thread.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.compute.container_logs import ContainerLogPublisher
from harness.compute.container_runtime import ContainerProcess, ContainerRuntime, ImageNotFound, ResolvedImage
from harness.compute.image_pull import ImagePullDenied, check_image_pull
from harness.compute.s3io import S3Uri, download_prefix, pack_directory, upload_file
from harness.service_roles import SAGEMAKER, SAGEMAKER_SESSION, RoleError, ServiceRoles

LOG = logging.getLogger(__name__)

FAILURE_REASON_LIMIT = 1024
_STOP_GRACE_S = 30.0
_WATCH_INTERVAL_S = 0.2


class TrainingJobError(ValueError):
    """A CreateTrainingJob request the harness rejects, with the reason (a ValidationException)."""


@dataclass(frozen=True)
class Channel:
    name: str
    s3_uri: S3Uri
    content_type: str | None


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class TrainingJobSpec:
    name: str
    image_uri: str
    hyperparameters: dict[str, str]
    channels: tuple[Channel, ...]
    output_path: S3Uri
    metric_definitions: tuple[MetricDefinition, ...]
    instance_type: str
    instance_count: int
    max_runtime_seconds: float | None
    environment: dict[str, str]
    role_arn: str | None = None  # RoleArn: the execution role SageMaker acts as for the job

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> TrainingJobSpec:
        """Validates the parts of a CreateTrainingJob request that the harness runs."""
        name = request.get("TrainingJobName")
        if not isinstance(name, str) or not name:
            raise TrainingJobError("TrainingJobName is required")
        algorithm = request.get("AlgorithmSpecification") or {}
        image_uri = algorithm.get("TrainingImage")
        if not isinstance(image_uri, str) or not image_uri:
            raise TrainingJobError(
                "AlgorithmSpecification.TrainingImage is required (the harness runs images only)"
            )
        mode = algorithm.get("TrainingInputMode", "File")
        if mode != "File":
            raise TrainingJobError(f"TrainingInputMode {mode!r} is not supported by the harness (File only)")
        hyperparameters = request.get("HyperParameters") or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in hyperparameters.items()):
            raise TrainingJobError("HyperParameters must map strings to strings")
        channels = tuple(_channel(item) for item in request.get("InputDataConfig") or [])
        if len({channel.name for channel in channels}) != len(channels):
            raise TrainingJobError("InputDataConfig names a channel twice")
        output = (request.get("OutputDataConfig") or {}).get("S3OutputPath")
        if not isinstance(output, str):
            raise TrainingJobError("OutputDataConfig.S3OutputPath is required")
        metrics = tuple(_metric(item) for item in algorithm.get("MetricDefinitions") or [])
        resources = request.get("ResourceConfig") or {}
        max_runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
        environment = request.get("Environment") or {}
        try:
            output_path = S3Uri.parse(output)
        except ValueError as error:
            raise TrainingJobError(f"OutputDataConfig.S3OutputPath: {error}") from error
        return cls(
            name=name,
            image_uri=image_uri,
            hyperparameters=dict(hyperparameters),
            channels=channels,
            output_path=output_path,
            metric_definitions=metrics,
            instance_type=str(resources.get("InstanceType", "local")),
            instance_count=int(resources.get("InstanceCount", 1)),
            max_runtime_seconds=float(max_runtime) if max_runtime is not None else None,
            environment={str(k): str(v) for k, v in environment.items()},
            role_arn=str(request["RoleArn"]) if request.get("RoleArn") else None,
        )

    @property
    def model_artifact_uri(self) -> S3Uri:
        prefix = self.output_path.key.rstrip("/")
        key = f"{prefix}/{self.name}/output/model.tar.gz" if prefix else f"{self.name}/output/model.tar.gz"
        return S3Uri(self.output_path.bucket, key)


def _channel(item: dict[str, Any]) -> Channel:
    name = item.get("ChannelName")
    source = (item.get("DataSource") or {}).get("S3DataSource") or {}
    if not isinstance(name, str) or not name:
        raise TrainingJobError("every InputDataConfig channel needs a ChannelName")
    data_type = source.get("S3DataType", "S3Prefix")
    if data_type != "S3Prefix":
        raise TrainingJobError(
            f"channel {name}: S3DataType {data_type!r} is not supported by the harness (S3Prefix)"
        )
    try:
        uri = S3Uri.parse(str(source.get("S3Uri", "")))
    except ValueError as error:
        raise TrainingJobError(f"channel {name}: {error}") from error
    content_type = item.get("ContentType")
    return Channel(
        name=name, s3_uri=uri, content_type=content_type if isinstance(content_type, str) else None
    )


def _metric(item: dict[str, Any]) -> MetricDefinition:
    name, regex = item.get("Name"), item.get("Regex")
    if not isinstance(name, str) or not isinstance(regex, str):
        raise TrainingJobError("every MetricDefinition needs a Name and a Regex")
    try:
        pattern = re.compile(regex)
    except re.error as error:
        raise TrainingJobError(f"MetricDefinition {name}: invalid Regex {regex!r}: {error}") from error
    if pattern.groups < 1:
        raise TrainingJobError(f"MetricDefinition {name}: the Regex must capture the value in a group")
    return MetricDefinition(name=name, regex=pattern)


def final_metrics(
    log_text: str, definitions: tuple[MetricDefinition, ...], at: datetime
) -> list[dict[str, Any]]:
    """FinalMetricDataList: each metric's last value in the log (metrics never seen are left out)."""
    found: list[dict[str, Any]] = []
    for definition in definitions:
        value: float | None = None
        for match in definition.regex.finditer(log_text):
            try:
                value = float(match.group(1))
            except (TypeError, ValueError):
                continue
        if value is not None:
            found.append({"MetricName": definition.name, "Value": value, "Timestamp": at})
    return found


@dataclass(frozen=True)
class TrainingJobSnapshot:
    """What DescribeTrainingJob shows of a job the harness runs."""

    status: str  # InProgress | Completed | Failed | Stopping | Stopped
    secondary_status: str
    transitions: tuple[dict[str, Any], ...]
    failure_reason: str | None = None
    final_metrics: tuple[dict[str, Any], ...] = ()
    training_start_time: datetime | None = None
    training_end_time: datetime | None = None
    model_artifact: str | None = None
    exit_code: int | None = None

    @property
    def ended(self) -> bool:
        return self.status in ("Completed", "Failed", "Stopped")


_SECONDARY_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "The job was stopped",
    "MaxRuntimeExceeded": "Training job stopped: it ran past MaxRuntimeInSeconds",
}


def _now() -> datetime:
    return datetime.now(UTC)


class _Stopped(Exception):
    """The job was asked to stop before its container started."""


class TrainingJob:
    """One training job run by the harness."""

    def __init__(
        self,
        spec: TrainingJobSpec,
        job_dir: Path,
        runtime: ContainerRuntime,
        s3: Any,
        prepare_input: Callable[[Path], None] | None = None,
        provision: Callable[[], str | None] | None = None,
        logs: ContainerLogPublisher | None = None,
        ecr: Any | None = None,
        logs_client: Callable[[], Any] | None = None,
        provisioning_s: Callable[[], float] | None = None,
    ) -> None:
        self.spec = spec
        self._ecr = ecr  # asked for the image pull as the job's role (None: not asked)
        self._logs_client = logs_client  # CloudWatch Logs as the job's role (None: the publisher's own)
        self._prepare_input = prepare_input
        self._provision = provision
        self._provisioning_s = provisioning_s
        self._stop_event = threading.Event()
        self._logs = logs
        self._created_s = time.time()
        self.job_dir = job_dir
        self.base_dir = job_dir / "opt" / "ml"
        self.log_path = job_dir / "train.log"
        self._runtime = runtime
        self._s3 = s3
        self._lock = threading.Lock()
        self._process: ContainerProcess | None = None
        self._stop_requested = False
        now = _now()
        self._snapshot = TrainingJobSnapshot(
            status="InProgress",
            secondary_status="Starting",
            transitions=(
                {"Status": "Starting", "StartTime": now, "StatusMessage": _SECONDARY_MESSAGES["Starting"]},
            ),
        )
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"training-job-{spec.name}", daemon=True)

    # -- reading -----------------------------------------------------------------------------------
    def snapshot(self) -> TrainingJobSnapshot:
        with self._lock:
            return self._snapshot

    def log_text(self) -> str:
        """The job's log so far (the container's stdout and stderr)."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float | None = None) -> TrainingJobSnapshot:
        """Blocks until the job has ended (or `timeout` passes); returns the latest snapshot."""
        self._done.wait(timeout)
        return self.snapshot()

    # -- control -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """StopTrainingJob: Stopping, then SIGTERM to the container; the job ends Stopped."""
        with self._lock:
            if self._snapshot.ended or self._stop_requested:
                return
            self._stop_requested = True
            process = self._process
        self._stop_event.set()
        self._set_secondary("Stopping", status="Stopping")
        if process is not None:
            process.terminate()

    # -- the job's thread --------------------------------------------------------------------------
    def _set_secondary(
        self, secondary: str, status: str | None = None, ended: bool = False, **changes: Any
    ) -> None:
        """Moves to a new secondary status (and status), in one step as readers see it."""
        now = _now()
        with self._lock:
            transitions = list(self._snapshot.transitions)
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1] = {**transitions[-1], "EndTime": now}
            latest = {"Status": secondary, "StartTime": now, "StatusMessage": _SECONDARY_MESSAGES[secondary]}
            transitions.append({**latest, "EndTime": now} if ended else latest)
            self._snapshot = replace(
                self._snapshot,
                status=status or self._snapshot.status,
                secondary_status=secondary,
                transitions=tuple(transitions),
                **changes,
            )

    def _end(self, status: str, secondary: str, **changes: Any) -> None:
        """The final status, with the metrics and end time: a reader never sees one without the others."""
        now = _now()
        log_text = self.log_text()
        if self._logs is not None:  # where SageMaker puts the log, before any reader sees the job end
            self._logs.training_job(self.spec.name, log_text, self._created_s, self._logs_client)
        metrics = tuple(final_metrics(log_text, self.spec.metric_definitions, now))
        self._set_secondary(
            secondary, status=status, ended=True, final_metrics=metrics, training_end_time=now, **changes
        )
        LOG.info("training job %s ended %s", self.spec.name, status)
        self._done.set()

    def _run(self) -> None:
        try:
            # No instance could be provisioned (e.g. a capacity fault, harness/faults.py): nothing downloaded.
            capacity = self._provision() if self._provision is not None else None
            if capacity is not None:
                self._end("Failed", "Failed", failure_reason=capacity)
                return
            # Launching and preparing the instances (SageMaker's Starting), as long as the profile says.
            wait_s = self._provisioning_s() if self._provisioning_s is not None else 0.0
            if wait_s > 0 and self._stop_event.wait(wait_s):
                raise _Stopped()
            self._set_secondary("Downloading")
            try:
                image = self._prepare()
            except _Stopped:
                raise
            except ImagePullDenied as error:
                reason = error.reason(self.spec.role_arn or "(no role)")
                self._end("Failed", "Failed", failure_reason=_limit(f"ClientError: {reason} {error.detail}"))
                return
            except (ImageNotFound, ValueError, OSError) as error:
                self._end("Failed", "Failed", failure_reason=_limit(f"ClientError: {error}"))
                return
            except Exception as error:  # botocore errors: the data could not be fetched
                self._end(
                    "Failed", "Failed", failure_reason=_limit(f"ClientError: Data download failed: {error}")
                )
                return
            exit_code, secondary = self._train(image)
            if self._stop_requested or secondary == "MaxRuntimeExceeded":
                self._end(
                    "Stopped",
                    secondary if secondary == "MaxRuntimeExceeded" else "Stopped",
                    exit_code=exit_code,
                )
                return
            if exit_code != 0:
                self._end(
                    "Failed", "Failed", failure_reason=self._failure_reason(exit_code), exit_code=exit_code
                )
                return
            self._set_secondary("Uploading")
            archive = pack_directory(self.base_dir / "model", self.job_dir / "model.tar.gz")
            try:
                upload_file(self._s3, archive, self.spec.model_artifact_uri)
            except Exception as error:  # botocore errors: e.g. the role may not write the output path
                reason = f"ClientError: Failed to upload the model to {self.spec.model_artifact_uri}: {error}"
                self._end("Failed", "Failed", failure_reason=_limit(reason), exit_code=0)
                return
            self._end("Completed", "Completed", model_artifact=str(self.spec.model_artifact_uri), exit_code=0)
        except _Stopped:
            self._end("Stopped", "Stopped")
        except Exception as error:  # the harness itself failed: say so rather than hang InProgress
            LOG.exception("training job %s: harness error", self.spec.name)
            self._end(
                "Failed", "Failed", failure_reason=_limit(f"InternalServerError: the harness failed: {error}")
            )

    def _prepare(self) -> ResolvedImage:
        if self._ecr is not None:
            check_image_pull(self._ecr, self.spec.image_uri)
        image = self._runtime.resolve(self.spec.image_uri)
        if self.job_dir.exists():
            shutil.rmtree(self.job_dir)
        config = self.base_dir / "input" / "config"
        for folder in (config, self.base_dir / "model", self.base_dir / "output" / "data"):
            folder.mkdir(parents=True, exist_ok=True)
        input_config: dict[str, dict[str, str]] = {}
        for channel in self.spec.channels:
            if self._stop_requested:
                raise _Stopped()
            files = download_prefix(self._s3, channel.s3_uri, self.base_dir / "input" / "data" / channel.name)
            if not files:
                raise ValueError(f"channel {channel.name}: no objects under {channel.s3_uri}")
            input_config[channel.name] = {
                "TrainingInputMode": "File",
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
                **({"ContentType": channel.content_type} if channel.content_type else {}),
            }
        if self._prepare_input is not None:  # e.g. a data fault (harness/faults.py); S3 is untouched
            self._prepare_input(self.base_dir / "input" / "data")
        resource_config = {
            "current_host": "algo-1",
            "hosts": [f"algo-{i + 1}" for i in range(self.spec.instance_count)],
            "current_instance_type": self.spec.instance_type,
            "network_interface_name": "eth0",
        }
        _write_json(config / "hyperparameters.json", self.spec.hyperparameters)
        _write_json(config / "inputdataconfig.json", input_config)
        _write_json(config / "resourceconfig.json", resource_config)
        return image

    def _train(self, image: ResolvedImage) -> tuple[int, str]:
        with self._lock:
            if self._stop_requested:
                raise _Stopped()
        self._set_secondary("Training", training_start_time=_now())
        process = self._runtime.start_training(image, self.base_dir, self.log_path, self.spec.environment)
        with self._lock:
            self._process = process
            stop_now = self._stop_requested
        if stop_now:  # StopTrainingJob arrived while the container was starting
            process.terminate()
        started = time.monotonic()
        limit = self.spec.max_runtime_seconds
        while True:
            try:
                return process.wait(_WATCH_INTERVAL_S), "Training"
            except subprocess.TimeoutExpired:
                pass
            if limit is not None and time.monotonic() - started > limit:
                LOG.info(
                    "training job %s ran past MaxRuntimeInSeconds=%s: stopping it", self.spec.name, limit
                )
                return process.stop(_STOP_GRACE_S), "MaxRuntimeExceeded"

    def _failure_reason(self, exit_code: int) -> str:
        failure_file = self.base_dir / "output" / "failure"
        if failure_file.is_file():
            reason = failure_file.read_text(encoding="utf-8", errors="replace").strip()
            if reason:
                return _limit(f"AlgorithmError: {reason}")
        return _limit(
            f"AlgorithmError: the training container exited with status {exit_code} and wrote no "
            f"reason to /opt/ml/output/failure; see its log ({self.log_path})"
        )


def _limit(reason: str) -> str:
    return reason if len(reason) <= FAILURE_REASON_LIMIT else reason[: FAILURE_REASON_LIMIT - 3] + "..."


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True), encoding="utf-8")


@dataclass
class TrainingJobRunner:
    """Starts and keeps the training jobs of one compute plane, by (account, region, name)."""

    runtime: ContainerRuntime
    s3_client: Callable[[], Any]
    work_dir: Path
    # Called with the job's downloaded `input/data` folder before the container starts.
    prepare_input: Callable[[Path], None] | None = None
    # Called as the job starts: a FailureReason when its instances cannot be provisioned, else None.
    provision: Callable[[], str | None] | None = None
    # Where each ended job's log goes (CloudWatch Logs, as SageMaker sends it); None: nowhere.
    logs: ContainerLogPublisher | None = None
    # The execution roles' credentials: a job with a RoleArn makes its AWS calls as that role.
    roles: ServiceRoles | None = None
    # How long a job waits in Starting for its instances (a timing profile, harness/timing.py).
    provisioning_s: Callable[[], float] | None = None
    _jobs: dict[tuple[str, str, str], TrainingJob] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, account: str, region: str, spec: TrainingJobSpec) -> TrainingJob:
        key = (account, region, spec.name)
        job_dir = self.work_dir / "training-jobs" / account / region / spec.name
        s3, ecr, logs_client = self._clients(spec)  # AssumeRole: a call back into the emulator, no lock held
        with self._lock:
            if key in self._jobs:
                raise TrainingJobError(f"a training job named {spec.name} already runs in the harness")
            job = TrainingJob(
                spec,
                job_dir,
                self.runtime,
                s3,
                self.prepare_input,
                self.provision,
                self.logs,
                ecr=ecr,
                logs_client=logs_client,
                provisioning_s=self.provisioning_s,
            )
            self._jobs[key] = job
        job.start()
        return job

    def _clients(self, spec: TrainingJobSpec) -> tuple[Any, Any | None, Callable[[], Any] | None]:
        """(S3, ECR, CloudWatch Logs factory) as the job's role; the plane's own without roles."""
        if self.roles is None or spec.role_arn is None:
            return self.s3_client(), None, None
        try:
            s3 = self.roles.client("s3", spec.role_arn, SAGEMAKER_SESSION, SAGEMAKER)
            ecr = self.roles.client("ecr", spec.role_arn, SAGEMAKER_SESSION, SAGEMAKER)
        except RoleError as error:  # CreateTrainingJob's ValidationException on AWS, in its words
            raise TrainingJobError(
                f"Could not assume role {spec.role_arn}. Please ensure that the role exists and allows "
                f"principal '{SAGEMAKER}' to assume the role. ({error})"
            ) from error
        return s3, ecr, self.roles.client_factory("logs", spec.role_arn, SAGEMAKER_SESSION, SAGEMAKER)

    def jobs(self) -> list[TrainingJob]:
        with self._lock:
            return list(self._jobs.values())

    def get(self, account: str, region: str, name: str) -> TrainingJob | None:
        with self._lock:
            return self._jobs.get((account, region, name))

    def stop_all(self, grace_seconds: float = _STOP_GRACE_S) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.stop()
        for job in jobs:
            job.wait(grace_seconds)
