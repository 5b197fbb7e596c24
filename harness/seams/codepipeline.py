"""Seam: CodePipeline's job API (the worker side of actions), which moto 5.2.5 lacks.

Why: the pipeline's Lambda actions report back with PutJobSuccessResult / PutJobFailureResult, and
custom action workers use PollForJobs / AcknowledgeJob / GetJobDetails; in moto 5.2.5 all five answer
500. moto maps a request's X-Amz-Target action to the snake_case method of
`codepipeline.responses.CodePipelineResponse` on every request, so this seam adds the five methods
there. Job state lives in the per-account/region CodePipeline backend (an attribute moto's reset
drops with the backend), so jobs are scoped and cleared as moto's own resources are.

The pipeline runner (the harness, in this process) uses the Python API below: `run_lambda_action` runs
a Lambda invoke action end to end (continuations included); underneath, `create_job` makes a job,
`lambda_event` is the event a Lambda action receives, and `wait_for_result` blocks until the worker
reports. Job statuses follow AWS: Created (queued for a poller) → Dispatched
(polled) → InProgress (acknowledged; a job handed to a Lambda starts here) → Succeeded | Failed.
A success with a continuationToken ends that job; the runner starts the next job of the same action
with the token in `data.continuationToken`, as CodePipeline does.

PutApprovalResult (absent from moto 5.2.5) decides a manual approval as the console and `aws codepipeline
put-approval-result` do: a waiting approval action opens an entry on the backend's `ApprovalBoard`
(`EmulatorApprovalBoard`, the runner's side) with a token; GetPipelineState shows that token in the
action's `latestExecution.token` while it waits; PutApprovalResult checks pipeline, stage, action and
token and hands the decision to the waiting action. Its errors follow the API reference
(PutApprovalResult, "Errors"): PipelineNotFoundException, StageNotFoundException, ActionNotFoundException,
InvalidApprovalTokenException (a token that is not the open request's), ApprovalAlreadyCompletedException
(the request was already answered), ValidationException (a bad result status or summary).

ListPipelineExecutions and GetPipelineExecution: moto's know only the executions its own
StartPipelineExecution recorded; this seam answers from the runner's executions (the backend's
`PipelineStates`, newest first), for the pipelines the runner runs, and leaves the others to moto's own
methods (`REPLACED`).

StartPipelineExecution: moto's records an execution that has "Succeeded" at once and runs nothing. For a
pipeline the harness's runner serves (a start function registered on the backend's `PipelineStarts`,
`register_pipeline_start`), this seam hands the new execution id and its trigger to that function,
which runs the execution; others keep moto's behaviour. The trigger (ListPipelineExecutions'
`trigger`, API reference "ExecutionTrigger") is `StartPipelineExecution` for a caller of the API, or
what the harness's own services set in the `x-mlops-trigger` header when they start it on AWS's
behalf: an EventBridge rule (`CloudWatchEvent`, `start_pipeline_as`, with the rule's role) or a
connection's change detection (`Webhook`).

GetPipelineState (also a 500 in moto 5.2.5) answers from the pipeline runner's view of its runs, the
`PipelineStates` held by the same backend (`harness.context.states_in_backend`; the runner
publishes there through its `state_listener`):
the register-model Lambda reads who approved from the Approve stage's latest execution. A pipeline
that exists but has not run answers its stages and actions without a latestExecution; an unknown name
PipelineNotFoundException, as AWS does.

UpdatePipeline: moto's checks a pipeline's structure on create only (two stages at least); AWS checks
it on update too (API reference, UpdatePipeline, "Errors": InvalidStructureException), so a stack update
that cuts a pipeline to one stage fails there. The backend's `update_pipeline` checks it first.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.core.exceptions import JsonRESTError

from harness.context import held_by_codepipeline_backend, states_in_backend
from harness.identity import FAKE_CREDENTIALS

ACTIVE = ("Created", "Dispatched", "InProgress")
FINISHED = ("Succeeded", "Failed")
FAILURE_TYPES = frozenset(
    {
        "JobFailed",
        "ConfigurationError",
        "PermissionError",
        "RevisionOutOfSync",
        "RevisionUnavailable",
        "SystemUnavailable",
    }
)
LAMBDA_INVOKE_ACTION = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}


class JobNotFoundException(JsonRESTError):
    code = 400

    def __init__(self, job_id: str) -> None:
        super().__init__(
            "JobNotFoundException", f"The job was specified in an invalid format or cannot be found: {job_id}"
        )


class InvalidNonceException(JsonRESTError):
    code = 400

    def __init__(self) -> None:
        super().__init__("InvalidNonceException", "The nonce was specified in an invalid format.")


class InvalidJobStateException(JsonRESTError):
    code = 400

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__("InvalidJobStateException", f"The job {job_id} is {status} and cannot change state.")


class PipelineNotFoundException(JsonRESTError):
    code = 400

    def __init__(self, name: str) -> None:
        message = f"The account does not include a pipeline with the name {name}"
        super().__init__("PipelineNotFoundException", message)


class StageNotFoundException(JsonRESTError):
    code = 400

    def __init__(self, name: str) -> None:
        super().__init__(
            "StageNotFoundException",
            f"The stage {name} was specified in an invalid format or cannot be found",
        )


class ActionNotFoundException(JsonRESTError):
    code = 400

    def __init__(self, name: str) -> None:
        super().__init__("ActionNotFoundException", f"The action {name} cannot be found")


class InvalidApprovalTokenException(JsonRESTError):
    code = 400

    def __init__(self) -> None:
        super().__init__(
            "InvalidApprovalTokenException",
            "The approval request already received a response or has expired.",
        )


class ApprovalAlreadyCompletedException(JsonRESTError):
    code = 400

    def __init__(self) -> None:
        super().__init__(
            "ApprovalAlreadyCompletedException", "The approval action has already been approved or rejected."
        )


class ValidationException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message)


@dataclass
class JobResult:
    """What the worker reported (PutJobSuccessResult or PutJobFailureResult's parameters)."""

    succeeded: bool
    continuation_token: str | None = None
    current_revision: dict[str, Any] | None = None
    execution_details: dict[str, Any] | None = None
    output_variables: dict[str, str] | None = None
    failure_type: str | None = None
    failure_message: str | None = None
    external_execution_id: str | None = None
    reported_at: float = field(default_factory=time.time)


@dataclass
class Job:
    """One job: an action execution handed to a worker (a Lambda or a custom poller)."""

    id: str
    account_id: str
    action_type_id: dict[str, str]
    data: dict[str, Any]
    nonce: str
    status: str = "Created"
    result: JobResult | None = None
    created_at: float = field(default_factory=time.time)

    def to_api(self) -> dict[str, Any]:
        """The Job structure PollForJobs returns."""
        return {"id": self.id, "data": self.data, "nonce": self.nonce, "accountId": self.account_id}


class JobStore:
    """The jobs of one account and region; thread-safe, with waiting on results."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._changed = threading.Condition()

    def add(self, job: Job) -> Job:
        with self._changed:
            self._jobs[job.id] = job
            self._changed.notify_all()
        return job

    def get(self, job_id: str) -> Job:
        with self._changed:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundException(job_id)
        return job

    def poll(self, action_type_id: Mapping[str, str], max_batch: int) -> list[Job]:
        with self._changed:
            found = [
                job
                for job in self._jobs.values()
                if job.status == "Created" and _same_type(job.action_type_id, action_type_id)
            ][:max_batch]
            for job in found:
                job.status = "Dispatched"
            return found

    def acknowledge(self, job_id: str, nonce: str) -> Job:
        job = self.get(job_id)
        with self._changed:
            if nonce != job.nonce:
                raise InvalidNonceException()
            if job.status == "Dispatched":
                job.status = "InProgress"
            self._changed.notify_all()
        return job

    def finish(self, job_id: str, result: JobResult) -> Job:
        job = self.get(job_id)
        with self._changed:
            if job.status not in ACTIVE:
                raise InvalidJobStateException(job_id, job.status)
            job.result = result
            job.status = "Succeeded" if result.succeeded else "Failed"
            self._changed.notify_all()
        return job

    def wait(self, job_id: str, timeout_s: float) -> Job:
        job = self.get(job_id)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while job.status not in FINISHED:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"job {job_id} got no result within {timeout_s:.0f} s (status {job.status})"
                    )
                self._changed.wait(left)
        return job


def _same_type(left: Mapping[str, str], right: Mapping[str, str]) -> bool:
    return all(str(left.get(k)) == str(right.get(k)) for k in ("category", "owner", "provider", "version"))


def job_store(account_id: str, region: str) -> JobStore:
    """The job store held by moto's CodePipeline backend for this account and region."""
    return held_by_codepipeline_backend(account_id, region, "harness_jobs", JobStore)


# -- manual approvals: the runner's waiting actions, answered by PutApprovalResult --------------------
APPROVAL_STATUSES = ("Approved", "Rejected")
SUMMARY_MAX = 512  # ApprovalResult.summary: length 0-512 (API reference, ApprovalResult)


@dataclass
class OpenApproval:
    pipeline: str
    stage: str
    action: str
    token: str
    decide: Callable[[bool, str, str], None]  # (approved, summary, who) -> the waiting action


class ApprovalBoard:
    """The open approval requests of one account and region, and the tokens of answered ones."""

    def __init__(self) -> None:
        self._open: dict[str, OpenApproval] = {}
        self._answered: set[str] = set()
        self._lock = threading.Lock()

    def open(self, approval: OpenApproval) -> None:
        with self._lock:
            self._open[approval.token] = approval

    def close(self, token: str) -> None:
        with self._lock:
            if self._open.pop(token, None) is not None:
                self._answered.add(token)

    def tokens(self, pipeline: str) -> dict[tuple[str, str], str]:
        """(stage, action) -> token of each open request of `pipeline`."""
        with self._lock:
            return {(a.stage, a.action): a.token for a in self._open.values() if a.pipeline == pipeline}

    def answer(
        self, pipeline: str, stage: str, action: str, token: str, approved: bool, summary: str, who: str
    ) -> None:
        with self._lock:
            approval = self._open.get(token)
            if approval is None or (approval.pipeline, approval.stage, approval.action) != (
                pipeline,
                stage,
                action,
            ):
                if token in self._answered:
                    raise ApprovalAlreadyCompletedException()
                raise InvalidApprovalTokenException()
            del self._open[token]
            self._answered.add(token)
        approval.decide(approved, summary, who)


def approval_board(account_id: str, region: str) -> ApprovalBoard:
    """The approval board held by moto's CodePipeline backend for this account and region."""
    return held_by_codepipeline_backend(account_id, region, "harness_approvals", ApprovalBoard)


class EmulatorApprovalBoard:
    """The runner's side (`harness.pipeline.approval.ApprovalBoard`): a waiting approval action opens
    its request here, and PutApprovalResult's decision reaches it through `decide`."""

    def __init__(self, account_id: str, region: str) -> None:
        self._account_id = account_id
        self._region = region

    def open(
        self, pipeline: str, stage: str, action: str, token: str, decide: Callable[[bool, str, str], None]
    ) -> None:
        approval_board(self._account_id, self._region).open(
            OpenApproval(pipeline, stage, action, token, decide)
        )

    def close(self, token: str) -> None:
        approval_board(self._account_id, self._region).close(token)


# -- the Python API for the pipeline runner -----------------------------------------------------------
def create_job(
    account_id: str,
    region: str,
    action_type_id: Mapping[str, str],
    data: Mapping[str, Any],
    dispatched_to_lambda: bool = False,
) -> Job:
    """Creates a job for one action execution. `data` is the JobData structure (actionConfiguration,
    pipelineContext, inputArtifacts, outputArtifacts, continuationToken...). A job handed to a Lambda
    starts InProgress (nobody polls for it); others wait in Created for PollForJobs."""
    missing = {"category", "owner", "provider", "version"} - set(action_type_id)
    if missing:
        raise ValueError(f"actionTypeId lacks {sorted(missing)}")
    job = Job(
        id=str(uuid.uuid4()),
        account_id=account_id,
        action_type_id={k: str(v) for k, v in action_type_id.items()},
        data={"actionTypeId": dict(action_type_id), **dict(data)},
        nonce=secrets.token_hex(16),
        status="InProgress" if dispatched_to_lambda else "Created",
    )
    return job_store(account_id, region).add(job)


def lambda_event(job: Job) -> dict[str, Any]:
    """The event CodePipeline sends a Lambda invoke action."""
    return {"CodePipeline.job": {"id": job.id, "accountId": job.account_id, "data": job.data}}


def get_job(account_id: str, region: str, job_id: str) -> Job:
    return job_store(account_id, region).get(job_id)


def wait_for_result(account_id: str, region: str, job_id: str, timeout_s: float) -> Job:
    """Blocks until the job succeeded or failed (TimeoutError past `timeout_s`)."""
    return job_store(account_id, region).wait(job_id, timeout_s)


@dataclass(frozen=True)
class ActionRun:
    """The jobs of one Lambda action execution: one per invocation, continuations included."""

    function_name: str
    jobs: tuple[Job, ...]

    @property
    def final(self) -> Job:
        return self.jobs[-1]

    @property
    def succeeded(self) -> bool:
        return self.final.status == "Succeeded"


def run_lambda_action(
    account_id: str,
    region: str,
    function_name: str,
    data: Mapping[str, Any],
    max_runs: int = 100,
    report_grace_s: float = 5.0,
) -> ActionRun:
    """Runs a Lambda invoke action as CodePipeline does: a job, the function invoked with the job event,
    the result read from the job API; a success with a continuationToken starts the next job of the same
    action with that token, until a success without one or a failure.

    Where AWS would wait for the action's timeout, the harness fails the job at once (with the Lambda's
    error) when the function fails without reporting, or returns and reports nothing within
    `report_grace_s`."""
    from moto.awslambda.utils import get_backend

    if max_runs < 1:
        raise ValueError("max_runs must be at least 1")
    function = get_backend(account_id, region).get_function(function_name)
    store = job_store(account_id, region)
    jobs: list[Job] = []
    token: str | None = None
    for _ in range(max_runs):
        job_data = dict(data)
        if token is not None:
            job_data["continuationToken"] = token
        job = create_job(account_id, region, LAMBDA_INVOKE_ACTION, job_data, dispatched_to_lambda=True)
        jobs.append(job)
        headers: dict[str, str] = {}
        payload = function.invoke(json.dumps(lambda_event(job)), {}, headers)
        if headers.get("x-amz-function-error") and job.status not in FINISHED:
            _fail_unreported(store, job, f"the Lambda {function_name} failed: {_error_text(payload)}")
        try:
            store.wait(job.id, report_grace_s)
        except TimeoutError:
            _fail_unreported(
                store, job, f"the Lambda {function_name} returned without reporting a job result"
            )
        if job.result is None or not job.result.succeeded or not job.result.continuation_token:
            return ActionRun(function_name, tuple(jobs))
        token = job.result.continuation_token
    raise RuntimeError(f"the {function_name} action still asked to continue after {max_runs} runs")


def _error_text(payload: Any) -> str:
    try:
        error = json.loads(payload)
        return f"{error['errorType']}: {error['errorMessage']}"
    except (ValueError, KeyError, TypeError):
        return str(payload)[:1000]


def _fail_unreported(store: JobStore, job: Job, message: str) -> None:
    # If the function reported after all, just now, its result stands.
    with contextlib.suppress(InvalidJobStateException):
        store.finish(job.id, JobResult(succeeded=False, failure_type="JobFailed", failure_message=message))


# -- the API methods added to moto's CodePipelineResponse ---------------------------------------------
def _store(response: Any) -> JobStore:
    return job_store(response.current_account, response.region)


def _required(response: Any, name: str) -> Any:
    value = response._get_param(name)
    if value in (None, ""):
        raise ValidationException(
            f"1 validation error detected: Value null at '{name}' failed to satisfy constraint: "
            "Member must not be null"
        )
    return value


def poll_for_jobs(self: Any) -> str:
    action_type_id = _required(self, "actionTypeId")
    max_batch = int(self._get_param("maxBatchSize") or 1)
    if not 1 <= max_batch <= 100:
        raise ValidationException("maxBatchSize must be between 1 and 100")
    jobs = _store(self).poll(action_type_id, max_batch)
    return json.dumps({"jobs": [job.to_api() for job in jobs]})


def acknowledge_job(self: Any) -> str:
    job = _store(self).acknowledge(_required(self, "jobId"), _required(self, "nonce"))
    return json.dumps({"status": job.status})


def get_job_details(self: Any) -> str:
    job = _store(self).get(_required(self, "jobId"))
    return json.dumps({"jobDetails": {"id": job.id, "data": job.data, "accountId": job.account_id}})


def put_job_success_result(self: Any) -> str:
    result = JobResult(
        succeeded=True,
        continuation_token=self._get_param("continuationToken"),
        current_revision=self._get_param("currentRevision"),
        execution_details=self._get_param("executionDetails"),
        output_variables=self._get_param("outputVariables"),
    )
    _store(self).finish(_required(self, "jobId"), result)
    return "{}"


def put_job_failure_result(self: Any) -> str:
    details = _required(self, "failureDetails")
    if "type" not in details or "message" not in details:
        raise ValidationException("failureDetails needs a type and a message")
    if details["type"] not in FAILURE_TYPES:
        raise ValidationException(f"failureDetails.type must be one of {sorted(FAILURE_TYPES)}")
    result = JobResult(
        succeeded=False,
        failure_type=str(details["type"]),
        failure_message=str(details["message"]),
        external_execution_id=details.get("externalExecutionId"),
    )
    _store(self).finish(_required(self, "jobId"), result)
    return "{}"


def _never_run_state(account_id: str, region: str, name: str) -> dict[str, Any]:
    """GetPipelineState of a pipeline that exists (CreatePipeline, or its CloudFormation resource) and
    has not run: every stage and action, none with a latestExecution."""
    from moto.codepipeline.models import codepipeline_backends

    pipelines = codepipeline_backends[account_id][region].pipelines
    if name not in pipelines:
        raise PipelineNotFoundException(name)
    found = pipelines[name]
    declaration = found.pipeline
    return {
        "pipelineName": name,
        "pipelineVersion": declaration["version"],
        "stageStates": [
            {
                "stageName": stage["name"],
                "inboundTransitionState": {"enabled": True},
                "actionStates": [{"actionName": action["name"]} for action in stage["actions"]],
            }
            for stage in declaration["stages"]
        ],
        "created": found.metadata["created"],
        "updated": found.metadata["updated"],
    }


def get_pipeline_state(self: Any) -> str:
    name = str(_required(self, "name"))
    state = states_in_backend(self.current_account, self.region).get(self.current_account, self.region, name)
    if state is None:
        return json.dumps(_never_run_state(self.current_account, self.region, name))
    tokens = approval_board(self.current_account, self.region).tokens(name)
    for stage in state["stageStates"]:
        for action in stage["actionStates"]:
            token = tokens.get((stage["stageName"], action["actionName"]))
            latest = action.get("latestExecution")
            if token is not None and isinstance(latest, dict) and latest.get("status") == "InProgress":
                latest["token"] = token  # an open approval request's token, as GetPipelineState shows it
    return json.dumps(state)


def put_approval_result(self: Any) -> str:
    pipeline = str(_required(self, "pipelineName"))
    stage_name = str(_required(self, "stageName"))
    action_name = str(_required(self, "actionName"))
    token = str(_required(self, "token"))
    result = _required(self, "result")
    status = result.get("status") if isinstance(result, dict) else None
    summary = result.get("summary", "") if isinstance(result, dict) else ""
    if status not in APPROVAL_STATUSES:
        raise ValidationException(f"result.status must be one of {list(APPROVAL_STATUSES)}")
    if not isinstance(summary, str) or len(summary) > SUMMARY_MAX:
        raise ValidationException(f"result.summary must be text of at most {SUMMARY_MAX} characters")
    states = states_in_backend(self.current_account, self.region)
    state = states.get(self.current_account, self.region, pipeline)
    if state is None:
        raise PipelineNotFoundException(pipeline)
    stage = next((s for s in state["stageStates"] if s["stageName"] == stage_name), None)
    if stage is None:
        raise StageNotFoundException(stage_name)
    if not any(a["actionName"] == action_name for a in stage["actionStates"]):
        raise ActionNotFoundException(action_name)
    who = self.headers.get("x-mlops-approver") or "console"
    approval_board(self.current_account, self.region).answer(
        pipeline, stage_name, action_name, token, status == "Approved", summary, str(who)
    )
    return json.dumps({"approvedAt": time.time()})


# -- StartPipelineExecution: the executions the harness's runner runs ----------------------------------
TRIGGER_HEADER = "x-mlops-trigger"  # JSON {"triggerType", "triggerDetail"}: set by the harness's services
TRIGGER_TYPES = frozenset(
    {
        "CreatePipeline",
        "StartPipelineExecution",
        "PollForSourceChanges",
        "Webhook",
        "CloudWatchEvent",
        "PutActionRevision",
        "WebhookV2",
        "ManualRollback",
        "AutomatedRollback",
    }
)  # ExecutionTrigger.triggerType's valid values (API reference)
StartFunction = Callable[[str, dict[str, str]], None]  # (execution id, trigger) -> runs it


class PipelineStarts:
    """The start functions of the pipelines the harness's runner serves, by pipeline name."""

    def __init__(self) -> None:
        self._starts: dict[str, StartFunction] = {}
        self._lock = threading.Lock()

    def register(self, pipeline: str, start: StartFunction) -> None:
        with self._lock:
            self._starts[pipeline] = start

    def unregister(self, pipeline: str, start: StartFunction) -> None:
        with self._lock:
            if self._starts.get(pipeline) is start:
                del self._starts[pipeline]

    def get(self, pipeline: str) -> StartFunction | None:
        with self._lock:
            return self._starts.get(pipeline)


def pipeline_starts(account_id: str, region: str) -> PipelineStarts:
    """The start functions held by moto's CodePipeline backend for this account and region."""
    return held_by_codepipeline_backend(account_id, region, "harness_starts", PipelineStarts)


def _trigger(self: Any) -> dict[str, str]:
    raw = self.headers.get(TRIGGER_HEADER)
    if not raw:
        return {"triggerType": "StartPipelineExecution", "triggerDetail": ""}
    trigger = json.loads(raw)
    if trigger.get("triggerType") not in TRIGGER_TYPES:
        raise ValidationException(f"unknown trigger type {trigger.get('triggerType')!r}")
    return {
        "triggerType": str(trigger["triggerType"]),
        "triggerDetail": str(trigger.get("triggerDetail", "")),
    }


def start_pipeline_execution(self: Any) -> str:
    name = str(_required(self, "name"))
    start = pipeline_starts(self.current_account, self.region).get(name)
    if start is None:
        return str(_MOTO_METHODS["start_pipeline_execution"](self))
    from moto.codepipeline.models import codepipeline_backends

    codepipeline_backends[self.current_account][self.region].get_pipeline(name)  # PipelineNotFoundException
    execution_id = str(uuid.uuid4())
    start(execution_id, _trigger(self))
    return json.dumps({"pipelineExecutionId": execution_id})


def start_pipeline_as(
    credentials: Mapping[str, str] | None, pipeline_arn: str, trigger: Mapping[str, str], endpoint_url: str
) -> str:
    """StartPipelineExecution of the pipeline `pipeline_arn` names, as an AWS service calls it on a
    customer's behalf: EventBridge with the credentials of a rule target's `RoleArn` (boto3 keyword
    arguments, harness.iam `Credentials.as_boto3()`), a connection with none (the harness's own).
    Returns the execution id. The call goes through the emulator's API like any other, so IAM's
    enforcement at the boundary (harness/seams/iam.py) authorizes it for that role."""
    import boto3

    parts = pipeline_arn.split(":")
    if len(parts) != 6 or parts[2] != "codepipeline":
        raise ValueError(f"not a CodePipeline pipeline ARN: {pipeline_arn!r}")
    region, account, name = parts[3], parts[4], parts[5]
    signed_as = dict(credentials) if credentials is not None else dict(FAKE_CREDENTIALS)
    client = boto3.client("codepipeline", region_name=region, endpoint_url=endpoint_url, **signed_as)
    header = json.dumps(dict(trigger))

    def add_headers(request: Any, **_: Any) -> None:
        request.headers[TRIGGER_HEADER] = header
        request.headers["x-moto-account-id"] = account

    client.meta.events.register("before-sign.codepipeline.StartPipelineExecution", add_headers)
    return str(client.start_pipeline_execution(name=name)["pipelineExecutionId"])


def list_pipeline_executions(self: Any) -> str:
    name = str(_required(self, "pipelineName"))
    executions = states_in_backend(self.current_account, self.region).executions(
        self.current_account, self.region, name
    )
    if executions is None:
        return str(_MOTO_METHODS["list_pipeline_executions"](self))
    limit = int(self._get_param("maxResults") or 100)
    return json.dumps({"pipelineExecutionSummaries": executions[:limit]})


def get_pipeline_execution(self: Any) -> str:
    name = str(_required(self, "pipelineName"))
    execution_id = str(_required(self, "pipelineExecutionId"))
    executions = states_in_backend(self.current_account, self.region).executions(
        self.current_account, self.region, name
    )
    summary = next((e for e in executions or [] if e["pipelineExecutionId"] == execution_id), None)
    if summary is None:
        return str(_MOTO_METHODS["get_pipeline_execution"](self))
    from moto.codepipeline.models import codepipeline_backends

    pipeline, _ = codepipeline_backends[self.current_account][self.region].get_pipeline(name)
    execution = {
        "pipelineName": name,
        "pipelineVersion": pipeline["version"],
        "pipelineExecutionId": execution_id,
        "status": summary["status"],
        "artifactRevisions": [
            {"name": r["actionName"], "revisionId": r["revisionId"], "revisionSummary": r["revisionSummary"]}
            for r in summary.get("sourceRevisions", [])
        ],
        "trigger": summary["trigger"],
        "executionMode": summary.get("executionMode", "SUPERSEDED"),
    }
    if "statusSummary" in summary:
        execution["statusSummary"] = summary["statusSummary"]
    return json.dumps({"pipelineExecution": execution})


API_METHODS = {
    "get_pipeline_state": get_pipeline_state,
    "put_approval_result": put_approval_result,
    "poll_for_jobs": poll_for_jobs,
    "acknowledge_job": acknowledge_job,
    "get_job_details": get_job_details,
    "put_job_success_result": put_job_success_result,
    "put_job_failure_result": put_job_failure_result,
}

# moto implements these for its own pipelines only; the seam's method falls back to moto's.
REPLACED = {
    "list_pipeline_executions": list_pipeline_executions,
    "get_pipeline_execution": get_pipeline_execution,
    "start_pipeline_execution": start_pipeline_execution,
}
_MOTO_METHODS: dict[str, Any] = {}


def _checked_update_pipeline(moto_update: Callable[[Any, dict[str, Any]], Any]) -> Callable[..., Any]:
    def update_pipeline(self: Any, pipeline: dict[str, Any]) -> Any:
        from moto.codepipeline.exceptions import InvalidStructureException

        stages = pipeline.get("stages") or []
        if len(stages) < 2:  # CreatePipeline's check, in moto's words
            raise InvalidStructureException(
                f"Pipeline has only {len(stages)} stage(s). "
                "There should be a minimum of 2 stages in a pipeline"
            )
        return moto_update(self, pipeline)

    update_pipeline.checks_structure = True  # type: ignore[attr-defined]
    return update_pipeline


def install() -> None:
    from moto.codepipeline import models, responses

    if not getattr(models.CodePipelineBackend.update_pipeline, "checks_structure", False):
        moto_update = models.CodePipelineBackend.update_pipeline
        models.CodePipelineBackend.update_pipeline = _checked_update_pipeline(moto_update)  # type: ignore[method-assign]

    if not hasattr(models, "codepipeline_backends") or not hasattr(responses, "CodePipelineResponse"):
        raise RuntimeError(
            "moto moved: codepipeline backends or CodePipelineResponse are gone; "
            "port harness/seams/codepipeline.py"
        )
    for name, method in API_METHODS.items():
        existing = getattr(responses.CodePipelineResponse, name, None)
        if existing is not None and existing is not method:
            raise RuntimeError(
                f"moto now implements CodePipeline {name}: drop it from harness/seams/codepipeline.py"
            )
        setattr(responses.CodePipelineResponse, name, method)
    for name, method in REPLACED.items():
        existing = getattr(responses.CodePipelineResponse, name, None)
        if existing is None:
            raise RuntimeError(f"moto no longer has CodePipeline {name}: move it to API_METHODS")
        if existing is not method:
            _MOTO_METHODS[name] = existing
        setattr(responses.CodePipelineResponse, name, method)
