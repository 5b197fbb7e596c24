"""The scenario format: a strict pydantic model of one scenario file.

A scenario is `name`, `description`, `settings` and `steps`. Each step is a mapping with exactly one
*kind* key (`commit`, `s3_put`, `approval`, `requests`, `fault`, `wait`) plus an optional `name` and a
list of `expect` entries; each expectation likewise has exactly one kind key (`pipeline`, `execution`,
`registry`, `endpoint`, `http`, `time`). Both are discriminated unions keyed by that key, so an error
names the exact field (`steps.2.commit.files`) rather than every member of the union. Faults are a union
discriminated by their `kind` field; waits by their key (`pipeline`, `execution`, `approval`).

Every model forbids unknown keys and validates strictly (no string-to-number coercion). References
between steps (`during`, `config_changed_since`, `unchanged_since`, `equals_commit_of`) and rules that
span the file (an `approval` step needs `settings.approval: scenario`; `http` expectations belong to
`requests` steps) are checked by `Scenario`'s own validator, which reports the path of the offending
field in the error's context (`loc`) so that the loader can point at its line.

Paths in a scenario (`settings.data`, `s3_put.file`) are relative to the scenario file; when the loader
passes `{"base_dir": ...}` as validation context, they are resolved against it and must exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from harness.aws_errors import aws_error

# Statuses, as the AWS services report them. `NotRun` is the harness's word for a stage that a failed or
# rejected run never reached (CodePipeline shows no latest execution for it).
PipelineStatus = Literal["InProgress", "Succeeded", "Failed", "Stopped", "Superseded"]
PipelineWaitStatus = Literal["InProgress", "Succeeded", "Failed", "Stopped", "Superseded", "finished"]
StageStatus = Literal["InProgress", "Succeeded", "Failed", "Stopped", "NotRun"]
ExecutionStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
ExecutionWaitStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "finished"]
EndpointStatus = Literal["Creating", "Updating", "InService", "Failed", "Deleting", "OutOfService"]
# `finished`: any terminal status (for waits whose outcome the expectations judge).
FINISHED: Final = "finished"
PIPELINE_TERMINAL: Final = frozenset({"Succeeded", "Failed", "Stopped", "Superseded"})
EXECUTION_TERMINAL: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})

DATASETS: Final = ("clinc10", "clinc150")
# Logical names of the project's Lambda functions (the harness maps them to the deployed names).
LAMBDA_FUNCTIONS: Final = ("start-training", "register-model", "publish-api", "api-proxy")
LambdaFunction = Literal["start-training", "register-model", "publish-api", "api-proxy"]
HTTP_PREDICATES: Final = {
    "all_succeeded": "every request got an answer with a 2xx status (no connection errors)",
    "intent_in_known_intents": "every answer is JSON predictions whose intents are intents of the data",
    "one_prediction_per_input": "every answer has as many predictions as the request had inputs",
    "json_body": "every answer's body is valid JSON",
}
HttpPredicate = Literal["all_succeeded", "intent_in_known_intents", "one_prediction_per_input", "json_body"]

STEP_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9-]*$"
StepName = Annotated[str, Field(pattern=STEP_NAME_PATTERN, max_length=64)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class Strict(BaseModel):
    """Base of every scenario model: unknown keys are errors, values are not coerced, models are frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def keyed_union_validator(kinds: Sequence[str], what: str) -> Callable[[Any], Any]:
    """A before-validator that demands exactly one of `kinds` as a key, naming what it found instead."""

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "keyed_union_type",
                "{what} must be a mapping with exactly one of: {kinds}",
                {"what": what, "kinds": ", ".join(kinds)},
            )
        found = [kind for kind in kinds if kind in value]
        if len(found) != 1:
            raise PydanticCustomError(
                "keyed_union_kind",
                "{what} must have exactly one of: {kinds}; {found}",
                {
                    "what": what,
                    "kinds": ", ".join(kinds),
                    "found": f"found {' and '.join(found)}"
                    if found
                    else f"found only {', '.join(value) or 'nothing'}",
                },
            )
        return value

    return check


def union_tag(kind: str) -> str:
    """The tag of a keyed union's member: spelt so that it can never be mistaken for a YAML key in a `loc`."""
    return f"<{kind}>"


def keyed_union_tag(kinds: Sequence[str]) -> Callable[[Any], str | None]:
    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            found = [kind for kind in kinds if kind in value]
            return union_tag(found[0]) if len(found) == 1 else None
        return None

    return tag


# ---------------------------------------------------------------------------------------------- settings


class HyperparameterValues(Strict):
    """The training container's hyperparameters (container/byoc/hyperparameters.py), with its ranges."""

    model_preset: Literal["tiny", "125m"] | None = None
    epochs: Annotated[int, Field(ge=1, le=1000)] | None = None
    max_steps: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=4096)] | None = None
    learning_rate: Annotated[float, Field(gt=0, le=1)] | None = None
    max_length: Annotated[int, Field(ge=16, le=2048)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    eval_fraction: Annotated[float, Field(gt=0, le=0.5)] | None = None

    def given(self) -> dict[str, str | int | float]:
        """Only the keys the scenario set, as the container expects them in hyperparameters.json."""
        return {key: value for key, value in self.model_dump().items() if value is not None}


def _resolve_existing(value: str, info: ValidationInfo, what: str) -> str:
    """Resolves a path against the scenario file's folder (from the validation context) and checks it."""
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if base is None:
        return value
    path = (Path(base) / value).resolve()
    if not path.is_file():
        raise PydanticCustomError(
            "path_missing", "{what} {path} does not exist", {"what": what, "path": str(path)}
        )
    return str(path)


class ScenarioSettings(Strict):
    """How the harness is set up for the scenario."""

    runtime: Literal["docker", "process", "auto"] = Field(
        default="auto",
        description="container runtime; `auto`: Docker if an engine holds the base image, else process",
    )
    data: str = Field(
        default="clinc10",
        description="training data: `clinc10`, `clinc150`, or a `Query,Intent` CSV path relative to the file",
    )
    hyperparameters: HyperparameterValues = Field(
        default_factory=HyperparameterValues, description="the container's hyperparameters for the first run"
    )
    quality_threshold: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None, description="the quality gate's minimum accuracy (the deployed default when absent)"
    )
    approval: Literal["auto", "reject", "scenario"] = Field(
        default="auto",
        description="manual approval: approve, reject, or decided by the scenario's `approval` steps",
    )
    time_scale: Annotated[float, Field(gt=0, le=1)] | None = Field(
        default=None,
        description="factor applied to Step Functions Wait states (the harness default when absent)",
    )
    training_cache: bool = Field(
        default=True,
        description="a training job reuses an earlier one's model when image, data and hyperparameters match",
    )
    iam: bool = Field(
        default=True,
        description="IAM enforced: each principal acts with its role's policies (false: full rights for all)",
    )
    timing: Literal["fast", "aws"] = Field(
        default="fast",
        description="fast: nothing added; aws: AWS's provisioning times (training, endpoints, CodeBuild, "
        "Lambda cold starts) at the time scale",
    )

    @field_validator("data")
    @classmethod
    def _data(cls, value: str, info: ValidationInfo) -> str:
        if value in DATASETS:
            return value
        if not value.endswith(".csv"):
            raise PydanticCustomError(
                "data_choice",
                "data must be one of {names} or a path to a .csv file, got {value!r}",
                {"names": ", ".join(DATASETS), "value": value},
            )
        return _resolve_existing(value, info, "data file")


# ---------------------------------------------------------------------------------------------- expectations


class Matcher(Strict):
    """A check of one value; every operator given must hold (at least one is required)."""

    equals: JsonValue = None
    not_equals: JsonValue = None
    contains: str | None = None
    matches: str | None = Field(default=None, description="a regular expression searched in the value's text")
    one_of: list[JsonValue] | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    present: bool | None = Field(default=None, description="the field exists (true) or does not (false)")
    equals_commit_of: StepName | None = Field(
        default=None, description="the commit id made by the named commit step"
    )

    @model_validator(mode="after")
    def _at_least_one(self) -> Matcher:
        if not self.model_fields_set:
            raise PydanticCustomError("matcher_empty", "a matcher needs at least one operator")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as error:
                raise PydanticCustomError(
                    "regex", "matches is not a valid regular expression: {error}", {"error": str(error)}
                ) from None
        return self


class Conditions(Strict):
    """An expectation's body: it must state at least one condition (an empty one would always pass)."""

    _selectors: ClassVar[frozenset[str]] = frozenset({"which"})

    @model_validator(mode="after")
    def _states_something(self) -> Conditions:
        if not self.model_fields_set - self._selectors:
            raise PydanticCustomError(
                "expectation_empty",
                "an expectation needs at least one of: {fields}",
                {
                    "fields": ", ".join(
                        name for name in type(self).model_fields if name not in self._selectors
                    )
                },
            )
        return self


# A plain scalar is shorthand for `{equals: value}`.
FieldCheck = str | int | float | bool | None | Matcher


class PipelineExpectation(Conditions):
    """The pipeline's executions: the latest one, or each of them (`which: all`)."""

    which: Literal["latest", "all"] = "latest"
    count: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="number of pipeline executions so far"
    )
    status: PipelineStatus | None = None
    stages: dict[str, StageStatus] = Field(default_factory=dict, description="stage name -> status")
    failed_stage: str | None = None
    reason_contains: str | None = None


class ExecutionExpectation(Conditions):
    """The state machine's executions: the latest one, or each of them (`which: all`)."""

    which: Literal["latest", "all"] = "latest"
    count: Annotated[int, Field(ge=0)] | None = Field(default=None, description="number of executions so far")
    status: ExecutionStatus | None = None
    failed_state: str | None = Field(default=None, description="the state in which the execution failed")
    error: str | None = None
    cause_contains: str | None = None
    distinct_names: bool = Field(default=False, description="every execution has its own name")


class RegistryExpectation(Conditions):
    """The model registry: one item per model version (`Version`), oldest first."""

    count: Annotated[int, Field(ge=0)] | None = None
    latest: dict[str, FieldCheck] = Field(
        default_factory=dict, description="checks on the newest item's fields"
    )
    each: dict[str, FieldCheck] = Field(default_factory=dict, description="checks on every item's fields")
    consistent: bool = Field(
        default=False, description="each Version once, each a succeeded execution's name"
    )
    unchanged_since: StepName | None = Field(
        default=None, description="the registry is as it was after the named step"
    )


class EndpointExpectation(Conditions):
    """The serving endpoint and its current endpoint config."""

    exists: bool | None = None
    status: EndpointStatus | None = None
    config_changed_since: StepName | None = None
    config_unchanged_since: StepName | None = None
    config_name_matches: str | None = Field(
        default=None, description="a regular expression the config's name matches"
    )


class HttpExpectation(Conditions):
    """The answers to the step's requests (every answer must satisfy every check)."""

    status: int | list[int] | None = Field(default=None, description="the HTTP status, or any of a list")
    body_equals: JsonValue = Field(default=None, description="the body, as JSON (or text when not JSON)")
    body_contains: str | None = None
    predicates: list[HttpPredicate] = Field(default_factory=list)


class TimeExpectation(Strict):
    """A time budget."""

    within_s: Seconds
    since: Literal["step", "scenario"] = "step"


EXPECTATION_KINDS: Final = ("pipeline", "execution", "registry", "endpoint", "http", "time")


class ExpectPipeline(Strict):
    pipeline: PipelineExpectation


class ExpectExecution(Strict):
    execution: ExecutionExpectation


class ExpectRegistry(Strict):
    registry: RegistryExpectation


class ExpectEndpoint(Strict):
    endpoint: EndpointExpectation


class ExpectHttp(Strict):
    http: HttpExpectation


class ExpectTime(Strict):
    time: TimeExpectation


Expectation = Annotated[
    Annotated[ExpectPipeline, Tag(union_tag("pipeline"))]
    | Annotated[ExpectExecution, Tag(union_tag("execution"))]
    | Annotated[ExpectRegistry, Tag(union_tag("registry"))]
    | Annotated[ExpectEndpoint, Tag(union_tag("endpoint"))]
    | Annotated[ExpectHttp, Tag(union_tag("http"))]
    | Annotated[ExpectTime, Tag(union_tag("time"))],
    Discriminator(keyed_union_tag(EXPECTATION_KINDS)),
    BeforeValidator(keyed_union_validator(EXPECTATION_KINDS, "an expectation")),
]
ExpectationBody = (
    PipelineExpectation
    | ExecutionExpectation
    | RegistryExpectation
    | EndpointExpectation
    | HttpExpectation
    | TimeExpectation
)


def expectation_body(expectation: Expectation) -> ExpectationBody:
    """The one checked object inside an `expect` entry."""
    kind = expectation_kind(expectation)
    body = getattr(expectation, kind)
    assert isinstance(body, ExpectationBody)  # one field per wrapper, by construction
    return body


def expectation_kind(expectation: Expectation) -> str:
    return next(iter(type(expectation).model_fields))


# ---------------------------------------------------------------------------------------------- steps


class CommitTrigger(Strict):
    """A new commit of the source repository, which starts the pipeline."""

    message: str = "scenario commit"
    files: dict[str, str] = Field(default_factory=dict, description="repository path -> new content")
    hyperparameters: HyperparameterValues = Field(
        default_factory=HyperparameterValues, description="hyperparameter changes carried by the commit"
    )

    @field_validator("files")
    @classmethod
    def _relative_paths(cls, files: dict[str, str]) -> dict[str, str]:
        for path in files:
            parts = Path(path).parts
            if not path or Path(path).is_absolute() or ".." in parts:
                raise PydanticCustomError(
                    "repo_path", "file paths are relative to the repository, got {path!r}", {"path": path}
                )
        return files


class S3PutTrigger(Strict):
    """An object put under the data prefix, which starts training (the S3 event)."""

    key: Annotated[str, Field(min_length=1, description="object key relative to the data prefix")]
    file: str | None = Field(default=None, description="a file relative to the scenario file")
    dataset: Literal["clinc10", "clinc150"] | None = None
    text: str | None = None

    @field_validator("file")
    @classmethod
    def _file(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _resolve_existing(value, info, "file")

    @model_validator(mode="after")
    def _one_source(self) -> S3PutTrigger:
        sources = [name for name in ("file", "dataset", "text") if getattr(self, name) is not None]
        if len(sources) != 1:
            raise PydanticCustomError(
                "s3_put_source",
                "s3_put needs exactly one of file, dataset, text; found {found}",
                {"found": " and ".join(sources) or "none"},
            )
        return self


class RerunTrigger(Strict):
    """The pipeline runs again on the current commit (CodePipeline's "Release change"); takes no fields."""


class ApprovalChoice(Strict):
    """The decision on the pipeline's waiting manual approval."""

    decision: Literal["approve", "reject"]
    comment: str = ""


class ApiRequests(Strict):
    """Requests sent to the published API (`path` is relative to the API's stage URL)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: Annotated[str, Field(pattern=r"^/")] = "/predict"
    json_body: JsonValue = Field(default=None, alias="json", description="a JSON body")
    text: str | None = Field(
        default=None, description="a raw text body, sent as is (malformed JSON, CSV, ...)"
    )
    filler_bytes: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)] | None = Field(
        default=None, description="a body of this many bytes (for size limits)"
    )
    content_type: str | None = Field(
        default=None, description="Content-Type; application/json for `json` bodies when absent"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    key: str = Field(
        default="default", description="`default` (the API's key), `none` (no key header), or a literal key"
    )
    repeat: Annotated[int, Field(ge=1, le=10_000)] = 1
    concurrency: Annotated[int, Field(ge=1, le=64)] = 1
    interval_s: Annotated[float, Field(ge=0, le=60)] = Field(
        default=0.0,
        description="pause after each request of one sender (to stay within the API's throttle)",
    )
    during: StepName | None = Field(
        default=None, description="keep sending in the background until the named later step has finished"
    )
    retry_throttled: bool = Field(
        default=True,
        description="retry a 429 with backoff as AWS SDKs do (Retry-After honoured); false: 429 is an answer",
    )
    retry_unavailable: bool = Field(
        default=False,
        description="retry a 503 with the same backoff, as the SDKs' standard mode retries transient errors",
    )

    def body_kinds(self) -> list[str]:
        """The body fields given (`json: null` is a body: the JSON text `null`)."""
        given = {"json": "json_body", "text": "text", "filler_bytes": "filler_bytes"}
        return [key for key, field in given.items() if field in self.model_fields_set]

    @model_validator(mode="after")
    def _one_body(self) -> ApiRequests:
        bodies = self.body_kinds()
        if len(bodies) > 1:
            raise PydanticCustomError(
                "request_body",
                "a request has at most one body; found {found}",
                {"found": " and ".join(bodies)},
            )
        return self


class TrainingFails(Strict):
    """The training container exits with an error (failure file written, non-zero exit)."""

    kind: Literal["training_fails"]
    reason: str = "injected training failure"
    exit_code: Annotated[int, Field(ge=1, le=255)] = 1


class BadData(Strict):
    """The next training jobs get a malformed data file in their input channel (S3 is left as it is)."""

    kind: Literal["bad_data"]
    problem: Literal["missing_header", "empty", "single_intent"] = "missing_header"


class EndpointUnhealthy(Strict):
    """The model server never answers /ping, so the endpoint never becomes InService."""

    kind: Literal["endpoint_unhealthy"]
    startup_limit_s: Seconds | None = None


class LambdaRaises(Strict):
    """The named Lambda function raises an exception on its next invocations."""

    kind: Literal["lambda_raises"]
    function: LambdaFunction
    message: str = "injected Lambda failure"


class ServerDies(Strict):
    """The model server process exits `after_s` seconds after it is InService (one serving now: after
    `after_s` from this step); `times` servers die in all, and SageMaker replaces each one's instance."""

    kind: Literal["server_dies"]
    after_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
    times: Annotated[int, Field(ge=1, le=100)] = 1


class CapacityShortage(Strict):
    """The next training jobs get no instance: each ends Failed with SageMaker's `CapacityError: ...`
    FailureReason before any data is downloaded (the state machine waits and trains again)."""

    kind: Literal["capacity_shortage"]
    jobs: Annotated[int, Field(ge=1, le=10)] = 1


class ApiError(Strict):
    """The next calls of one AWS API operation, from any caller (Lambdas, state machine, harness), are
    answered with an error as the service gives it, at the emulator's boundary; SDK retries then apply."""

    kind: Literal["api_error"]
    service: str = Field(description="botocore's name: sagemaker, stepfunctions, lambda, dynamodb, logs, ...")
    operation: str = Field(description="the API reference's operation name, e.g. DescribeEndpoint")
    error: Literal["throttling", "unavailable", "internal", "resource_limit_exceeded"] = Field(
        default="throttling",
        description="throttling (ThrottlingException 400, TooManyRequestsException 429, ...), "
        "unavailable (503), internal (500), resource_limit_exceeded (SageMaker's quota error)",
    )
    times: Annotated[int, Field(ge=1, le=100)] = Field(default=1, description="how many calls fail")

    @model_validator(mode="after")
    def _known_call(self) -> ApiError:
        try:
            aws_error(self.service, self.operation, self.error)
        except ValueError as problem:
            raise PydanticCustomError("api_error_call", "{problem}", {"problem": str(problem)}) from None
        return self


class ClearFaults(Strict):
    """Switches every fault injected so far off (what a fix or the end of an outage would do)."""

    kind: Literal["clear"]


Fault = Annotated[
    TrainingFails
    | BadData
    | EndpointUnhealthy
    | LambdaRaises
    | ServerDies
    | CapacityShortage
    | ApiError
    | ClearFaults,
    Field(discriminator="kind"),
]
FAULT_MODELS: Final = (
    TrainingFails,
    BadData,
    EndpointUnhealthy,
    LambdaRaises,
    ServerDies,
    CapacityShortage,
    ApiError,
    ClearFaults,
)


class WaitBase(Strict):
    timeout_s: Seconds = 300.0


class WaitPipeline(WaitBase):
    """Until the pipeline's latest execution (or each, `which: all`) reaches a status."""

    pipeline: PipelineWaitStatus
    which: Literal["latest", "all"] = "latest"


class WaitExecution(WaitBase):
    """Until the state machine's latest execution (or each, `which: all`) reaches a status."""

    execution: ExecutionWaitStatus
    which: Literal["latest", "all"] = "latest"


class WaitForApproval(WaitBase):
    """Until the pipeline waits on its manual approval."""

    approval: Literal["pending"]


WAIT_KINDS: Final = ("pipeline", "execution", "approval")
Wait = Annotated[
    Annotated[WaitPipeline, Tag(union_tag("pipeline"))]
    | Annotated[WaitExecution, Tag(union_tag("execution"))]
    | Annotated[WaitForApproval, Tag(union_tag("approval"))],
    Discriminator(keyed_union_tag(WAIT_KINDS)),
    BeforeValidator(keyed_union_validator(WAIT_KINDS, "a wait")),
]


class StepBase(Strict):
    name: StepName | None = Field(default=None, description="lets other steps refer to this one")
    expect: list[Expectation] = Field(default_factory=list, description="checked after the step")


class CommitStep(StepBase):
    commit: CommitTrigger


class S3PutStep(StepBase):
    s3_put: S3PutTrigger


class RerunStep(StepBase):
    rerun: RerunTrigger


class ApprovalStep(StepBase):
    approval: ApprovalChoice


class RequestsStep(StepBase):
    requests: ApiRequests


class FaultStep(StepBase):
    fault: Fault


class WaitStep(StepBase):
    wait: Wait


STEP_KINDS: Final = ("commit", "s3_put", "rerun", "approval", "requests", "fault", "wait")
Step = Annotated[
    Annotated[CommitStep, Tag(union_tag("commit"))]
    | Annotated[S3PutStep, Tag(union_tag("s3_put"))]
    | Annotated[RerunStep, Tag(union_tag("rerun"))]
    | Annotated[ApprovalStep, Tag(union_tag("approval"))]
    | Annotated[RequestsStep, Tag(union_tag("requests"))]
    | Annotated[FaultStep, Tag(union_tag("fault"))]
    | Annotated[WaitStep, Tag(union_tag("wait"))],
    Discriminator(keyed_union_tag(STEP_KINDS)),
    BeforeValidator(keyed_union_validator(STEP_KINDS, "a step")),
]


def step_kind(step: Step) -> str:
    """The step's kind key (`commit`, `wait`, ...)."""
    return next(kind for kind in STEP_KINDS if kind in type(step).model_fields)


def step_label(index: int, step: Step) -> str:
    """A step's name, or `#<n> <kind>` (1-based) for an unnamed one."""
    return step.name or f"#{index + 1} {step_kind(step)}"


# ---------------------------------------------------------------------------------------------- scenario


Loc = tuple[str | int, ...]


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc)


class Scenario(Strict):
    """One scenario: a fresh harness, set up by `settings`, driven by `steps` in order."""

    name: Annotated[str, Field(pattern=STEP_NAME_PATTERN, max_length=80)]
    description: Annotated[str, Field(min_length=1)]
    settings: ScenarioSettings = Field(default_factory=ScenarioSettings)
    steps: Annotated[list[Step], Field(min_length=1)]

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        problems = reference_problems(self)
        if problems:
            # The problems travel in the context so that the loader can point at each field's line.
            raise PydanticCustomError(
                "scenario_reference",
                "{summary}",
                {
                    "summary": "; ".join(f"{_dotted(loc)}: {message}" for loc, message in problems),
                    "problems": problems,
                },
            )
        return self


def reference_problems(scenario: Scenario) -> list[tuple[Loc, str]]:
    """Rules that span steps: names unique, references to existing steps in the right order."""
    problems: list[tuple[Loc, str]] = []
    position: dict[str, int] = {}
    for index, step in enumerate(scenario.steps):
        if step.name in position:
            used = position[step.name] + 1
            problems.append(
                (("steps", index, "name"), f"step name {step.name!r} is already used by step {used}")
            )
        elif step.name is not None:
            position[step.name] = index
    commits = {
        name: index for name, index in position.items() if isinstance(scenario.steps[index], CommitStep)
    }

    def refer(loc: Loc, name: str, index: int, rule: str, among: dict[str, int] = position) -> None:
        """`rule`: `earlier` (this step or before) or `later` (strictly after)."""
        if name not in among:
            what = "commit step" if among is commits else "step"
            problems.append((loc, f"no {what} is named {name!r}"))
        elif rule == "earlier" and among[name] > index:
            problems.append(
                (loc, f"{loc[-1]} must name this step or an earlier one, but {name!r} comes later")
            )
        elif rule == "later" and among[name] <= index:
            problems.append((loc, f"{loc[-1]} must name a later step, but {name!r} is not later"))

    for index, step in enumerate(scenario.steps):
        base: Loc = ("steps", index)
        if isinstance(step, ApprovalStep) and scenario.settings.approval != "scenario":
            policy = scenario.settings.approval
            problems.append(
                (
                    (*base, "approval"),
                    f"an approval step needs settings.approval: scenario (it is {policy!r})",
                )
            )
        if isinstance(step, RequestsStep) and step.requests.during is not None:
            refer((*base, "requests", "during"), step.requests.during, index, "later")
        for number, expectation in enumerate(step.expect):
            body = expectation_body(expectation)
            at: Loc = (*base, "expect", number, expectation_kind(expectation))
            if isinstance(body, HttpExpectation) and not isinstance(step, RequestsStep):
                problems.append((at, "http expectations belong to a requests step"))
            if isinstance(body, RegistryExpectation):
                if body.unchanged_since is not None:
                    refer((*at, "unchanged_since"), body.unchanged_since, index, "earlier")
                for section, checks in (("latest", body.latest), ("each", body.each)):
                    for field, check in checks.items():
                        if isinstance(check, Matcher) and check.equals_commit_of is not None:
                            loc = (*at, section, field, "equals_commit_of")
                            refer(loc, check.equals_commit_of, index, "earlier", among=commits)
            if isinstance(body, EndpointExpectation):
                for name, field in (
                    (body.config_changed_since, "config_changed_since"),
                    (body.config_unchanged_since, "config_unchanged_since"),
                ):
                    if name is not None:
                        refer((*at, field), name, index, "earlier")
    return problems
