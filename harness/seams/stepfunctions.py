"""Seams: Step Functions' SageMaker service integrations, and a time scale for waiting.

Why: moto 5.2.5's engine (a port of LocalStack's) treats `arn:aws:states:::sagemaker:*` as an
unsupported service: it forwards plain calls and fails `createTrainingJob.sync` with "Unsupported
.sync callback procedure". Its Wait states, Retry intervals and `.sync` polls sleep for real, so a
state machine that polls an endpoint every 30 s takes minutes locally.

What (while installed):
- `arn:aws:states:::sagemaker:<action>` for the optimized integration's actions that the harness runs
  (createTrainingJob, createModel, createEndpointConfig, createEndpoint, updateEndpoint) calls SageMaker
  (the emulator's, through the SageMaker seam) with the task's parameters. Every other action is
  rejected when the state machine is created, as CreateStateMachine does for actions the optimized
  integration lacks (describeEndpoint, deleteEndpoint, ...: those are `aws-sdk:sagemaker:*` calls).
- `createTrainingJob.sync` polls DescribeTrainingJob until the job ends (a throttled or 5xx poll is
  polled again: the poll is Step Functions' own, which AWS does not surface as the task's error; AWS
  documents nothing here): Completed gives the description as the task's output; Failed or Stopped
  fails the task with `States.TaskFailed` and the description (JSON, with FailureReason) as the
  cause. `.sync` on another action is rejected at creation.
- An API error fails the task as AWS names it. Optimized integration: an error that SageMaker's API
  models (ResourceLimitExceeded, ResourceInUse, ResourceNotFound, ConflictException) is
  `SageMaker.<Name>Exception`, any other (ValidationException, ThrottlingException, 5xx) is
  `SageMaker.AmazonSageMakerException`, with the message and error code in the cause. `aws-sdk:sagemaker`
  tasks: modeled errors are `SageMaker.<Name>Exception`, others `SageMaker.SageMakerException` (moto
  names them `sagemaker.sagemakerException`; the seam gives moto's aws-sdk service the PascalCase name).
- Datetimes in outputs become epoch milliseconds (as Step Functions shows them; moto's
  DescribeExecution answers 500 on a datetime).
- Errors of moto's Step Functions parser (InvalidDefinition, ...) carry their AWS error code (moto
  left it empty).
- State machines created by CloudFormation land in the backend that runs executions. moto keeps
  two Step Functions backends and, with `execute_state_machine` on (as the harness always has it),
  its API reads and runs the parser backend, while `AWS::StepFunctions::StateMachine` is created in
  the plain one: a stack's state machine could be neither described nor started.
- The time scale (the running emulator's `context.step_functions`, harness/context.py; it starts at
  the environment variable MLOPS_SFN_TIME_SCALE, else 1.0): every Wait state, Retry interval and
  `.sync` poll interval is multiplied by it. 1.0 is real time; 0.01 makes a 30 s Wait take 0.3 s.
  Waits stay interruptible (a stopped execution ends them at once). Without a running emulator the
  scale is 1.0.

How: replaces `state_task_factory.state_task_service_for` (imported there by name); the module global
`stepfunctions.models.stepfunctions_backends` (read only by StateMachine's CloudFormation hooks) with
the parser backends; `WaitFunction._wait_interval`; and the `time` module that `retrier_decl` sleeps
with. The `.sync` resolver polls DescribeTrainingJob itself at the scaled interval until the job
ends, so moto's own fixed poll delay is never reached.
"""

from __future__ import annotations

import datetime
import functools
import time
from collections.abc import Callable
from typing import Any, Final

from botocore.exceptions import ClientError
from moto.core.exceptions import AWSError
from moto.stepfunctions import models as stepfunctions_models
from moto.stepfunctions.parser import api as stepfunctions_parser_api
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import StateCredentials
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk,
    state_task_service_callback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
    ResourceRuntimePart,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from harness.boto_sessions import new_session
from harness.context import current, sagemaker_parameters

# Step Functions developer guide, "Create and manage Amazon SageMaker AI jobs with Step Functions",
# Optimized SageMaker AI APIs: the whole list. The harness runs the first five.
OPTIMIZED_SAGEMAKER_ACTIONS: Final[frozenset[str]] = frozenset(
    {
        "createEndpoint",
        "createEndpointConfig",
        "createHyperParameterTuningJob",
        "createLabelingJob",
        "createModel",
        "createProcessingJob",
        "createTrainingJob",
        "createTransformJob",
        "updateEndpoint",
    }
)
# action in the resource ARN -> the SageMaker API operation it calls (the optimized ones the harness runs).
SAGEMAKER_ACTIONS: Final[dict[str, str]] = {
    "createTrainingJob": "CreateTrainingJob",
    "createModel": "CreateModel",
    "createEndpointConfig": "CreateEndpointConfig",
    "createEndpoint": "CreateEndpoint",
    "updateEndpoint": "UpdateEndpoint",
}
SYNC_ACTIONS: Final[frozenset[str]] = frozenset({"createTrainingJob"})
_TRAINING_ENDED_BADLY: Final[frozenset[str]] = frozenset({"Failed", "Stopped"})
_TRAINING_RUNNING: Final[frozenset[str]] = frozenset({"InProgress", "Stopping"})
# The optimized integration's name for an error SageMaker's API does not model (the base class of the
# SDK it calls); aws-sdk integrations name it `SageMaker.SageMakerException`.
_DEFAULT_ERROR_NAME = "SageMaker.AmazonSageMakerException"
_AWS_SDK_SERVICE_ERROR_NAME = "SageMaker"
# botocore's throttling error codes (its standard retry mode's list, as the SDKs document them).
_THROTTLING_CODES: Final[frozenset[str]] = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)
# moto's own `.sync` poll interval, before scaling.
_SYNC_POLL_SECONDS = 0.5
_MIN_SYNC_POLL_SECONDS = 0.01
# The principal that assumes a state machine's role (its trust policy must name it), and the session's name.
STATES_PRINCIPAL: Final = "states.amazonaws.com"
STATES_SESSION_NAME: Final = "StepFunctions"


def time_scale() -> float:
    """The running emulator's Step Functions time scale; real time (1.0) while none runs."""
    context = current()
    return context.step_functions.scale if context is not None else 1.0


def _parameters_of(operation: str) -> frozenset[str]:
    context = current()
    return context.step_functions.parameters_of(operation) if context else sagemaker_parameters(operation)


def to_step_functions_json(value: Any) -> Any:
    """A boto3 response as Step Functions shows it: datetimes as epoch milliseconds."""
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: to_step_functions_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_step_functions_json(item) for item in value]
    return value


class StateTaskServiceSageMaker(state_task_service_callback.StateTaskServiceCallback):
    """`arn:aws:states:::sagemaker:<action>[.sync]`."""

    def __init__(self) -> None:
        # WaitForTaskToken is listed only because moto's callback code expects a callback endpoint
        # for every integration pattern; SageMaker tasks never hand out a token.
        super().__init__(
            supported_integration_patterns={
                ResourceCondition(ResourceCondition.Sync),
                ResourceCondition(ResourceCondition.WaitForTaskToken),
            }
        )

    def _validate_service_integration_is_supported(self) -> None:
        action = self.resource.api_action
        if action not in OPTIMIZED_SAGEMAKER_ACTIONS:
            raise ValueError(
                f"The resource provided {self.resource.resource_arn} not recognized. The value is not a "
                "valid resource ARN, or the resource is not available in this region."
            )
        if action not in SAGEMAKER_ACTIONS:
            raise ValueError(
                f"The resource provided {self.resource.resource_arn} is not recognized by the harness: "
                "an optimized SageMaker action it does not run "
                f"(it runs sagemaker:{', sagemaker:'.join(SAGEMAKER_ACTIONS)})"
            )
        condition = self.resource.condition
        if condition is not None and not (condition == ResourceCondition.Sync and action in SYNC_ACTIONS):
            raise ValueError(
                f"The resource provided {self.resource.resource_arn} not recognized: .{condition}"
            )

    def _get_supported_parameters(self) -> set[str] | None:
        operation = SAGEMAKER_ACTIONS.get(self.resource.api_action)
        return set(_parameters_of(operation)) if operation else None

    def _client(self, runtime_part: ResourceRuntimePart, credentials: StateCredentials) -> Any:
        return role_client_for(region=runtime_part.region, service="sagemaker", state_credentials=credentials)

    def _eval_service_task(
        self,
        env: Environment,
        resource_runtime_part: ResourceRuntimePart,
        normalised_parameters: dict[str, Any],
        state_credentials: StateCredentials,
    ) -> None:
        client = self._client(resource_runtime_part, state_credentials)
        method = getattr(client, self._get_boto_service_action())
        response = method(**normalised_parameters)
        response.pop("ResponseMetadata", None)
        env.stack.append(to_step_functions_json(response))

    def _from_error(self, env: Environment, ex: Exception) -> FailureEvent:
        if isinstance(ex, ClientError):
            error = ex.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            name = optimized_error_name(ex)
            metadata = ex.response.get("ResponseMetadata", {})
            cause = (
                f"{error.get('Message', '')} (Service: AmazonSageMaker; Status Code: "
                f"{metadata.get('HTTPStatusCode', 400)}; Error Code: {code}; Request ID: "
                f"{metadata.get('RequestId', '')}; Proxy: null)"
            )
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(name),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(  # type: ignore[typeddict-item]
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=name, cause=cause, resource=self._get_sfn_resource(), resourceType="sagemaker"
                    )
                ),
            )
        return super()._from_error(env=env, ex=ex)

    def _build_sync_resolver(
        self,
        env: Environment,
        resource_runtime_part: ResourceRuntimePart,
        normalised_parameters: dict[str, Any],
        state_credentials: StateCredentials,
    ) -> Callable[[], Any] | None:
        env.stack.pop()  # CreateTrainingJob's own answer; the task's output is the job's description
        job_name = normalised_parameters["TrainingJobName"]
        client = self._client(resource_runtime_part, state_credentials)

        def resolve() -> Any:
            # Polls until the job ends (or the execution stops: then None, and moto's loop ends too).
            while True:
                interval = max(_SYNC_POLL_SECONDS * time_scale(), _MIN_SYNC_POLL_SECONDS)
                try:
                    description = client.describe_training_job(TrainingJobName=job_name)
                except ClientError as error:
                    if not transient(error):
                        raise
                    # The service's own poll, not a call of the state machine: it polls again.
                    env.program_state_event.wait(interval)
                    if not env.is_running():
                        return None
                    continue
                description.pop("ResponseMetadata", None)
                status = description["TrainingJobStatus"]
                if status not in _TRAINING_RUNNING:
                    break
                env.program_state_event.wait(interval)  # woken early when the execution stops
                if not env.is_running():
                    return None
            output = to_step_functions_json(description)
            if status not in _TRAINING_ENDED_BADLY:
                return output
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(),
                            resourceType="sagemaker",
                            error=StatesErrorNameType.StatesTaskFailed.to_name(),
                            cause=to_json_str(output, separators=(",", ":")),  # compact, as AWS shows it
                        )
                    ),
                )
            )

        return resolve


def transient(error: ClientError) -> bool:
    """A throttling or 5xx answer: what an SDK retries (AWS SDKs and Tools Reference Guide, "Retry
    behavior": throttling codes and HTTP 500/502/503/504)."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _THROTTLING_CODES or status >= 500


def optimized_error_name(error: ClientError) -> str:
    """The error name of a SageMaker API error in an optimized `sagemaker:*` task.

    botocore raises a modeled error as its own class (named like the error shape: ResourceInUse) and
    any other as plain ClientError, as the SDK behind the integration does."""
    modeled = type(error).__name__
    if modeled == "ClientError":
        return _DEFAULT_ERROR_NAME
    return f"SageMaker.{modeled}" if modeled.endswith("Exception") else f"SageMaker.{modeled}Exception"


_moto_state_task_service_for = state_task_factory.state_task_service_for  # type: ignore[attr-defined]


def _state_task_service_for(service_name: str) -> StateTaskService:
    if service_name == "sagemaker":
        return StateTaskServiceSageMaker()
    return _moto_state_task_service_for(service_name)


def _scaled_wait_interval(self: WaitFunction, env: Environment, wait_seconds: int) -> None:
    # Replaces moto's loop, which re-enters whenever a whole second has not passed (forever, once scaled).
    deadline = time.monotonic() + max(wait_seconds, 0) * time_scale()
    while env.is_running():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        env.program_state_event.wait(remaining)


class _ScaledTime:
    """Stands in for the `time` module inside retrier_decl, whose only use is `time.sleep`."""

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(max(seconds, 0) * time_scale())


def _name_parser_errors() -> None:
    """moto's Step Functions parser raises errors (InvalidDefinition, ...) whose AWS code sits in `code`,
    while the response takes it from `TYPE`: `InvalidDefinition` reached clients with an empty code."""
    for value in vars(stepfunctions_parser_api).values():
        if isinstance(value, type) and issubclass(value, AWSError) and value is not AWSError:
            code = vars(value).get("code")
            if isinstance(code, str) and value.TYPE is None:
                value.TYPE = code


def role_client_for(region: str, service: str, state_credentials: StateCredentials | None = None) -> Any:
    """moto's `boto_client_for`, signed with the state machine's role as on AWS (Step Functions assumes
    the role to call the service of every Task; Step Functions developer guide, "How Step Functions
    works with IAM") instead of moto's fixed key "ak", which the harness's IAM boundary refuses."""
    context = current()
    role_arn = getattr(state_credentials, "role_arn", None)
    if context is None or not role_arn:
        return _moto_boto_client_for(region, service, state_credentials)
    credentials = context.iam.session(str(role_arn), STATES_SESSION_NAME, STATES_PRINCIPAL)
    from moto.settings import moto_server_port

    return _role_client(
        region,
        service,
        f"http://localhost:{moto_server_port()}",
        tuple(sorted(credentials.as_boto3().items())),
    )


@functools.lru_cache(maxsize=64)
def _role_client(
    region: str, service: str, endpoint_url: str, credentials: tuple[tuple[str, str], ...]
) -> Any:
    """One client per role's credentials, service and emulator (a client is thread-safe; making one per
    Task cost more than the Task's call). The credentials are a context's, kept for its life, so a new
    context (a new emulator port, new keys) gets new clients."""
    from botocore.config import Config

    return new_session(region, dict(credentials)).client(
        service,
        endpoint_url=endpoint_url,
        # moto's settings for these clients: no retries, its task timeout for connect and read.
        config=Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        ),
    )


_moto_boto_client_for = boto_client_for


def _sign_with_the_role() -> None:
    """Every module of moto's Step Functions parser that imported `boto_client_for` by name."""
    import sys

    from moto.stepfunctions.parser.asl.utils import boto_client

    boto_client.boto_client_for = role_client_for  # modules imported later take this one
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is (
            _moto_boto_client_for
        ):
            module.boto_client_for = role_client_for  # type: ignore[attr-defined]


def install() -> None:
    _name_parser_errors()
    _sign_with_the_role()
    # moto's aws-sdk service builds `<Service>.<Error>Exception` from this table, else the lower-case name.
    state_task_service_aws_sdk._SERVICE_ERROR_NAMES["sagemaker"] = _AWS_SDK_SERVICE_ERROR_NAME
    stepfunctions_models.stepfunctions_backends = stepfunctions_parser_backends  # type: ignore[assignment]
    state_task_factory.state_task_service_for = _state_task_service_for  # type: ignore[attr-defined]
    WaitFunction._wait_interval = _scaled_wait_interval  # type: ignore[method-assign]
    retrier_decl.time = _ScaledTime  # type: ignore[attr-defined,assignment]
