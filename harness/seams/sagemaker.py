"""Seams: moto's SageMaker and SageMaker Runtime, backed by the compute plane.

Why: moto 5.2.5 records training jobs as Completed and endpoints as InService at once, has no
StopTrainingJob or UpdateEndpoint, accepts duplicate training job names, and answers InvokeEndpoint
with a canned body. With these seams, while a compute plane is attached to the running emulator's
context (harness/context.py):

- CreateTrainingJob rejects a duplicate name (ResourceInUse, as AWS), keeps the caller's
  MetricDefinitions (moto overwrites them) and starts the job on the compute plane;
  DescribeTrainingJob / ListTrainingJobs show its live status; StopTrainingJob sends SIGTERM.
- CreateEndpoint starts `serve` (Creating -> InService | Failed), UpdateEndpoint swaps configs
  without dropping requests, DeleteEndpoint stops the container; DescribeEndpoint shows all that:
  `EndpointConfigName` is the config that serves, and while Creating/Updating the config being
  deployed is its `PendingDeploymentSummary` (EndpointConfigName, StartTime), as AWS answers.
- InvokeEndpoint forwards to the container with SageMaker's limits and error mapping: a body over
  6 MB gets 413; a container that answers non-2xx gives HTTP 424 `ModelError` with
  OriginalStatusCode/OriginalMessage; one that takes over 60 s gives a ModelError too; while the
  endpoint's instance is being replaced (it failed its health checks) the answer is 503
  `ServiceUnavailable`.

While no plane is attached, moto's behaviour is unchanged except for the duplicate-name check and
the two added operations (which then change metadata only).

How: `HarnessSageMakerBackend` subclasses moto's backend and replaces it in `sagemaker_backends`
(the subclass must claim moto's module: moto derives a backend's URL module from `__module__`); two
methods are added to `SageMakerResponse` (moto maps an action to the snake_case method of that
name); `SageMakerRuntimeResponse.invoke_endpoint` is replaced (the backend method only sees a
canned digest of the request). A response's HTTP status comes from `headers["status"]`.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.sagemaker import models as sagemaker_models
from moto.sagemaker import responses as sagemaker_responses
from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
from moto.sagemakerruntime import responses as runtime_responses

from harness.compute.endpoints import (
    MAX_INVOCATION_BYTES,
    EndpointError,
    EndpointSnapshot,
    InvocationTimeout,
    ModelTarget,
    NoHealthyInstance,
)
from harness.compute.plane import ComputePlane
from harness.compute.training import TrainingJobError, TrainingJobSpec
from harness.context import current

_TRAINING_REQUEST_FIELDS = {
    "training_job_name": "TrainingJobName",
    "hyper_parameters": "HyperParameters",
    "algorithm_specification": "AlgorithmSpecification",
    "input_data_config": "InputDataConfig",
    "output_data_config": "OutputDataConfig",
    "resource_config": "ResourceConfig",
    "stopping_condition": "StoppingCondition",
    "role_arn": "RoleArn",
}
_TRAINING_ACTIVE = ("InProgress", "Stopping")


def _attached_plane() -> ComputePlane | None:
    """The compute plane attached to the running emulator's context (harness/context.py), if any."""
    context = current()
    return context.plane if context is not None else None


class HarnessSageMakerBackend(sagemaker_models.SageMakerModelBackend):
    """moto's SageMaker backend whose jobs and endpoints run on the attached compute plane."""

    # moto derives the backend's URL module from this (see the module docstring).
    __module__ = "moto.sagemaker.models"

    # -- training jobs -----------------------------------------------------------------------------
    def create_training_job(self, **kwargs: Any) -> sagemaker_models.FakeTrainingJob:  # type: ignore[override]
        name = kwargs["training_job_name"]
        if name in self.training_jobs:
            arn = sagemaker_models.FakeTrainingJob.arn_formatter(name, self.account_id, self.region_name)
            raise ResourceInUseException(
                "Training job names must be unique within an AWS account and region, and a training job "
                f"with this name already exists ({arn})"
            )
        algorithm = kwargs.get("algorithm_specification") or {}
        metric_definitions = copy.deepcopy(algorithm.get("MetricDefinitions"))
        plane = _attached_plane()
        spec: TrainingJobSpec | None = None
        if plane is not None:
            request = {field: kwargs.get(arg) for arg, field in _TRAINING_REQUEST_FIELDS.items()}
            try:
                spec = TrainingJobSpec.from_request(request)
            except TrainingJobError as error:
                raise ValidationError(message=str(error)) from error
        job = super().create_training_job(**kwargs)
        # moto replaces the caller's MetricDefinitions with a sample of its own.
        if metric_definitions is None:
            job.algorithm_specification.pop("MetricDefinitions", None)
        else:
            job.algorithm_specification["MetricDefinitions"] = metric_definitions
        if plane is not None and spec is not None:
            try:
                plane.training.start(self.account_id, self.region_name, spec)
            except TrainingJobError as error:  # the plane outlived a reset of moto's state
                del self.training_jobs[name]
                raise ValidationError(message=str(error)) from error
            self._sync_training_job(job)
        return job

    def describe_training_job(self, training_job_name: str) -> dict[str, Any]:
        job = self.training_jobs.get(training_job_name)
        if job is not None:
            self._sync_training_job(job)
        return super().describe_training_job(training_job_name)

    def list_training_jobs(self, *args: Any, **kwargs: Any) -> Any:
        for job in list(self.training_jobs.values()):
            self._sync_training_job(job)
        return super().list_training_jobs(*args, **kwargs)

    def stop_training_job(self, training_job_name: str) -> None:
        job = self.training_jobs.get(training_job_name)
        if job is None:
            arn = sagemaker_models.FakeTrainingJob.arn_formatter(
                training_job_name, self.account_id, self.region_name
            )
            raise ValidationError(message=f"Could not find training job '{arn}'.")
        self._sync_training_job(job)
        if job.training_job_status not in _TRAINING_ACTIVE:
            status = job.training_job_status
            raise ValidationError(
                message=f"The request was rejected because the training job is in status {status}."
            )
        plane = _attached_plane()
        run = plane.training.get(self.account_id, self.region_name, training_job_name) if plane else None
        if run is None:  # metadata only: nothing runs
            job.training_job_status = job.secondary_status = "Stopped"
            return
        run.stop()
        self._sync_training_job(job)

    def _sync_training_job(self, job: sagemaker_models.FakeTrainingJob) -> None:
        plane = _attached_plane()
        run = plane.training.get(self.account_id, self.region_name, job.training_job_name) if plane else None
        if run is None:
            return
        snapshot = run.snapshot()
        # DescribeTrainingJob is built from the object's __dict__ (None values are left out).
        vars(job).update(
            training_job_status=snapshot.status,
            secondary_status=snapshot.secondary_status,
            secondary_status_transitions=[dict(item) for item in snapshot.transitions],
            failure_reason=snapshot.failure_reason,
            final_metric_data_list=[dict(item) for item in snapshot.final_metrics],
            training_start_time=snapshot.training_start_time,
            training_end_time=snapshot.training_end_time,
            model_artifacts={"S3ModelArtifacts": snapshot.model_artifact}
            if snapshot.model_artifact
            else None,
            last_modified_time=snapshot.transitions[-1]["StartTime"],
        )

    # -- endpoints ---------------------------------------------------------------------------------
    def create_endpoint(
        self, endpoint_name: str, endpoint_config_name: str, tags: list[dict[str, str]]
    ) -> sagemaker_models.FakeEndpoint:
        if endpoint_name in self.endpoints:
            arn = sagemaker_models.FakeEndpoint.arn_formatter(
                endpoint_name, self.account_id, self.region_name
            )
            raise ValidationError(message=f'Cannot create already existing endpoint "{arn}".')
        plane = _attached_plane()
        target = self._model_target(endpoint_config_name) if plane is not None else None
        endpoint = super().create_endpoint(endpoint_name, endpoint_config_name, tags)
        if plane is not None and target is not None:
            try:
                plane.endpoints.create(self._key(endpoint_name), target)
            except EndpointError as error:
                del self.endpoints[endpoint_name]
                raise ValidationError(message=str(error)) from error
            endpoint.endpoint_status = "Creating"
        return endpoint

    def describe_endpoint(self, endpoint_name: str) -> dict[str, Any]:
        endpoint = self.endpoints.get(endpoint_name)
        snapshot = self._sync_endpoint(endpoint) if endpoint is not None else None
        described = dict(super().describe_endpoint(endpoint_name))
        if snapshot is not None and snapshot.pending is not None:
            # Only while Creating/Updating with a new config (SageMaker API reference, DescribeEndpoint:
            # PendingDeploymentSummary); EndpointConfigName stays the config that serves.
            described["PendingDeploymentSummary"] = {
                "EndpointConfigName": snapshot.pending.config_name,
                "StartTime": datetime.fromtimestamp(snapshot.pending.started_at, UTC),
            }
        return described

    def update_endpoint(self, endpoint_name: str, endpoint_config_name: str) -> str:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = sagemaker_models.FakeEndpoint.arn_formatter(
                endpoint_name, self.account_id, self.region_name
            )
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        target = self._model_target(endpoint_config_name)
        plane = _attached_plane()
        if plane is None:  # metadata only
            self._switch_config(endpoint, endpoint_config_name)
            return str(endpoint.arn)
        try:
            plane.endpoints.update(self._key(endpoint_name), target)
        except EndpointError as error:
            raise ValidationError(message=str(error)) from error
        endpoint.endpoint_status = "Updating"
        endpoint.last_modified_time = utcnow()
        return str(endpoint.arn)

    def delete_endpoint(self, endpoint_name: str) -> None:
        super().delete_endpoint(endpoint_name)
        plane = _attached_plane()
        if plane is not None and plane.endpoints.describe(self._key(endpoint_name)) is not None:
            plane.endpoints.delete(self._key(endpoint_name))

    def _sync_endpoint(self, endpoint: sagemaker_models.FakeEndpoint) -> EndpointSnapshot | None:
        plane = _attached_plane()
        snapshot = plane.endpoints.describe(self._key(endpoint.endpoint_name)) if plane else None
        if snapshot is None:
            return None
        if snapshot.config_name != endpoint.endpoint_config_name:
            self._switch_config(endpoint, snapshot.config_name)
        if snapshot.status != endpoint.endpoint_status:
            endpoint.last_modified_time = utcnow()
        vars(endpoint).update(endpoint_status=snapshot.status, failure_reason=snapshot.failure_reason)
        return snapshot

    def _switch_config(self, endpoint: sagemaker_models.FakeEndpoint, config_name: str) -> None:
        config = self.endpoint_configs.get(config_name)
        endpoint.endpoint_config_name = config_name
        if config is not None:
            endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
        endpoint.last_modified_time = utcnow()

    def _model_target(self, endpoint_config_name: str) -> ModelTarget:
        """The image, model data and environment that a one-variant endpoint config serves."""
        config = self.endpoint_configs.get(endpoint_config_name)
        if config is None:
            arn = sagemaker_models.FakeEndpointConfig.arn_formatter(
                endpoint_config_name, self.account_id, self.region_name
            )
            raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
        variants = config.production_variants
        if len(variants) != 1:
            raise ValidationError(
                message=f"the harness serves endpoint configs with exactly one production variant; "
                f"{endpoint_config_name} has {len(variants)}"
            )
        variant = variants[0]
        model = self._models.get(variant["ModelName"])
        if model is None:
            raise ValidationError(message=f"Could not find model '{variant['ModelName']}'.")
        container = model.primary_container or (model.containers[0] if model.containers else {})
        image = container.get("Image")
        if not image:
            raise ValidationError(message=f"model {model.model_name} names no container Image")
        return ModelTarget(
            config_name=endpoint_config_name,
            variant_name=str(variant.get("VariantName", "AllTraffic")),
            image_uri=str(image),
            model_data_url=container.get("ModelDataUrl"),
            environment={str(k): str(v) for k, v in (container.get("Environment") or {}).items()},
            execution_role_arn=str(model.execution_role_arn) if model.execution_role_arn else None,
        )

    def _key(self, endpoint_name: str) -> tuple[str, str, str]:
        return (self.account_id, self.region_name, endpoint_name)


def _update_endpoint_response(self: sagemaker_responses.SageMakerResponse) -> ActionResult:
    backend: HarnessSageMakerBackend = self.sagemaker_backend  # type: ignore[assignment]
    arn = backend.update_endpoint(
        endpoint_name=self._get_param("EndpointName"),
        endpoint_config_name=self._get_param("EndpointConfigName"),
    )
    return ActionResult({"EndpointArn": arn})


def _stop_training_job_response(self: sagemaker_responses.SageMakerResponse) -> EmptyResult:
    backend: HarnessSageMakerBackend = self.sagemaker_backend  # type: ignore[assignment]
    backend.stop_training_job(self._get_param("TrainingJobName"))
    return EmptyResult()


# -- sagemaker-runtime --------------------------------------------------------------------------------
_moto_invoke_endpoint = runtime_responses.SageMakerRuntimeResponse.invoke_endpoint

# SageMaker Runtime API reference, InvokeEndpoint, Errors: ServiceUnavailable (HTTP 503), in its words.
_UNAVAILABLE_MESSAGE = "The service is unavailable. Try your call again."
_TIMEOUT_MESSAGE = (
    "Your invocation timed out while waiting for a response from container primary. Review the latency "
    "metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
)


def _error(status: int, error_type: str, message: str, **fields: Any) -> tuple[int, dict[str, Any], str]:
    headers = {"status": status, "x-amzn-ErrorType": error_type, "Content-Type": "application/json"}
    return status, headers, json.dumps({"__type": error_type, "message": message, **fields})


def _invoke_endpoint(self: runtime_responses.SageMakerRuntimeResponse) -> Any:
    plane = _attached_plane()
    if plane is None:
        return _moto_invoke_endpoint(self)
    # The path is /endpoints/<name>/invocations (moto's own parameter parsing leaves the name out).
    endpoint_name = urllib.parse.unquote(urllib.parse.urlparse(self.path).path.split("/")[2])
    body: bytes = self.raw_body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if len(body) > MAX_INVOCATION_BYTES:
        return (
            413,
            {"status": 413},
            json.dumps({"message": f"HTTP content length exceeded {MAX_INVOCATION_BYTES} bytes."}),
        )
    key = (self.current_account, self.region, endpoint_name)
    try:
        result = plane.endpoints.invoke(
            key,
            body,
            content_type=self.headers.get("Content-Type"),
            accept=self.headers.get("Accept"),
            custom_attributes=self.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
        )
    except EndpointError as error:
        return _error(400, "ValidationError", str(error))
    except InvocationTimeout:
        return _error(424, "ModelError", _TIMEOUT_MESSAGE)
    except NoHealthyInstance:  # its instance is being replaced (harness/compute/endpoints.py)
        return _error(503, "ServiceUnavailable", _UNAVAILABLE_MESSAGE)
    if 200 <= result.status < 300:
        headers: dict[str, Any] = {
            "status": 200,
            "Content-Type": result.content_type,
            "x-Amzn-Invoked-Production-Variant": result.variant_name,
        }
        if result.custom_attributes is not None:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = result.custom_attributes
        return 200, headers, result.body
    original = result.body.decode("utf-8", errors="replace")
    kind = "client" if result.status < 500 else "server"
    log_group = f"log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
    log_stream = f"arn:aws:logs:{self.region}:{self.current_account}:{log_group}"
    return _error(
        424,
        "ModelError",
        f'Received {kind} error ({result.status}) from primary with message "{original}". '
        f"See {log_stream} in account {self.current_account} for more information.",
        OriginalStatusCode=result.status,
        OriginalMessage=original,
        LogStreamArn=log_stream,
    )


def install() -> None:
    """Swaps in the backend and adds/replaces the response methods (before the first request)."""
    backends = sagemaker_models.sagemaker_backends
    backends.backend = HarnessSageMakerBackend  # type: ignore[attr-defined]
    backends.clear()
    response_class = sagemaker_responses.SageMakerResponse
    response_class.update_endpoint = _update_endpoint_response  # type: ignore[attr-defined]
    response_class.stop_training_job = _stop_training_job_response  # type: ignore[attr-defined]
    runtime_responses.SageMakerRuntimeResponse.invoke_endpoint = _invoke_endpoint  # type: ignore[method-assign]
