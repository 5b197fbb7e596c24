"""The Invoke/Lambda action: the CodePipeline job event in, PutJobSuccessResult/PutJobFailureResult out.

For each action execution the executor creates a job on a `JobBoard` (the emulator's CodePipeline job
API, `harness.seams.codepipeline`, through `EmulatorJobBoard`), invokes the function with the job
event as AWS shapes it (`CodePipeline.job`: id, accountId, data.actionConfiguration.configuration
with FunctionName and UserParameters, inputArtifacts/outputArtifacts with their S3 locations and
revisions, artifactCredentials, and continuationToken when continuing) and waits for the function to
report. A success with a continuationToken ends that job: a new job with the token in
`data.continuationToken` re-invokes the function, as CodePipeline does, until a success without a
token or a failure. The function's `outputVariables` become the action's output variables; its
`executionDetails.summary` the summary.

CodePipeline invokes the function asynchronously (CodePipeline User Guide, "Invoke an AWS Lambda
function in a pipeline"; Lambda Developer Guide, "Asynchronous invocation": a function error is retried
twice, about 1 and 2 minutes apart), so a function that raises is invoked twice more, after
`async_retry_delays_s`; whatever it reported meanwhile counts. One that never reports fails the action
with the message AWS shows in that case: after `report_timeout_s` when it returned without reporting,
after `after_raise_timeout_s` when it raised three times (CodePipeline's quota for the action: 20
minutes on AWS; the local flow scales both waits by its time scale).

The principal is the pipeline's role (CodePipeline user guide, "Manage the CodePipeline service role":
`lambda:InvokeFunction` on the function): give `boto3_invoker` a client signed with its credentials, and
the executor `credentials` of that role for the job's `artifactCredentials` (temporary credentials of
the role, as CodePipeline hands them; harness.service_roles). An Invoke the role may not make fails the
action at once with the Lambda API's denial (it is not the function's error: nothing is retried).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from harness.pipeline.artifacts import ArtifactAccessDenied, ArtifactRef, ArtifactStore
from harness.pipeline.model import ActionContext, ActionFailed, ActionOutput


@dataclass(frozen=True)
class JobOutcome:
    """What the function reported for one job."""

    succeeded: bool
    continuation_token: str | None = None
    output_variables: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""
    external_execution_id: str | None = None
    failure_type: str | None = None
    failure_message: str | None = None


class JobBoard(Protocol):
    """Where jobs are created and their results read (CodePipeline's job API)."""

    def create_job(self, action_type_id: Mapping[str, str], data: Mapping[str, Any]) -> str:
        """Creates a job handed to a Lambda (InProgress at once); returns its id."""
        ...

    def event(self, job_id: str) -> dict[str, Any]:
        """The `{"CodePipeline.job": ...}` event for the job."""
        ...

    def wait(self, job_id: str, timeout_s: float) -> JobOutcome | None:
        """The job's outcome, or None when nothing was reported within `timeout_s`."""
        ...


class EmulatorJobBoard:
    """The embedded emulator's job API (harness.seams.codepipeline), in this process."""

    def __init__(self, account_id: str, region: str) -> None:
        self._account_id = account_id
        self._region = region

    def create_job(self, action_type_id: Mapping[str, str], data: Mapping[str, Any]) -> str:
        from harness.seams import codepipeline

        job = codepipeline.create_job(
            self._account_id, self._region, action_type_id, data, dispatched_to_lambda=True
        )
        return job.id

    def event(self, job_id: str) -> dict[str, Any]:
        from harness.seams import codepipeline

        return codepipeline.lambda_event(codepipeline.get_job(self._account_id, self._region, job_id))

    def wait(self, job_id: str, timeout_s: float) -> JobOutcome | None:
        from harness.seams import codepipeline

        try:
            job = codepipeline.wait_for_result(self._account_id, self._region, job_id, timeout_s)
        except TimeoutError:
            return None
        result = job.result
        if result is None:
            return None
        details = result.execution_details or {}
        return JobOutcome(
            succeeded=result.succeeded,
            continuation_token=result.continuation_token,
            output_variables=dict(result.output_variables or {}),
            summary=str(details.get("summary", "")),
            external_execution_id=details.get("externalExecutionId") or result.external_execution_id,
            failure_type=result.failure_type,
            failure_message=result.failure_message,
        )


class FunctionError(Exception):
    """The invoked function raised (Lambda's FunctionError)."""


class InvokeDenied(Exception):
    """The Invoke call itself was refused to the pipeline's role (AccessDeniedException)."""


# (function name, event) -> None; raises FunctionError when the function failed.
Invoker = Callable[[str, dict[str, Any]], None]


# Lambda retries a failed asynchronous invocation twice (its default MaximumRetryAttempts).
ASYNC_RETRIES = 2

# Lambda's longest timeout (900 s) plus a margin: a synchronous invoke must not time out before the function.
INVOKE_READ_TIMEOUT_S = 960


def invoke_config() -> Config:
    """A Lambda client's settings for action invokes: no retries (a retried invoke would run the action
    twice) and a read timeout longer than any function's."""
    return Config(read_timeout=INVOKE_READ_TIMEOUT_S, connect_timeout=5, retries={"max_attempts": 1})


def invoke_client(session: Any, endpoint_url: str | None) -> Any:
    """A Lambda client of `session` for action invokes (`invoke_config`)."""
    return session.client("lambda", endpoint_url=endpoint_url, config=invoke_config())


def boto3_invoker(lambda_client: Any) -> Invoker:
    """Invokes synchronously through the Lambda API (the emulator's runs the handler for real).

    Give it a client from `invoke_client()`: the default retry and read-timeout settings of a client
    would re-invoke a slow function or give up on it before it ends.
    """

    def invoke(function_name: str, event: dict[str, Any]) -> None:
        try:
            response = lambda_client.invoke(
                FunctionName=function_name,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("AccessDeniedException", "AccessDenied"):
                message = error.response.get("Error", {}).get("Message", str(error))
                raise InvokeDenied(
                    f"{message} (Service: AWSLambda; Status Code: 403; Error Code: AccessDeniedException; "
                    f"Request ID: {error.response.get('ResponseMetadata', {}).get('RequestId', '')})"
                ) from error
            raise FunctionError(f"the Invoke call failed: {error}") from error
        except BotoCoreError as error:
            raise FunctionError(f"the Invoke call failed: {error}") from error
        if response.get("FunctionError"):
            payload = response["Payload"].read().decode("utf-8", errors="replace")
            try:
                document = json.loads(payload)
                message = f"{document.get('errorType', 'Error')}: {document.get('errorMessage', payload)}"
            except (ValueError, AttributeError):
                message = payload
            raise FunctionError(message)

    return invoke


def job_data(
    context: ActionContext,
    output_artifacts: tuple[ArtifactRef, ...],
    credentials: Mapping[str, str],
    continuation_token: str | None,
    pipeline_arn: str = "",
) -> dict[str, Any]:
    """The job's `data`, as CodePipeline builds it for a Lambda invoke action.

    `pipelineContext` is what GetJobDetails returns for the job (a function reads it there to find its
    pipeline); the emulator's job API keeps one `data` for both, so the event carries it too."""
    data: dict[str, Any] = {
        "actionConfiguration": {"configuration": dict(context.configuration)},
        "inputArtifacts": [_artifact(a) for a in context.input_artifacts],
        "outputArtifacts": [_artifact(a) for a in output_artifacts],
        "artifactCredentials": dict(credentials),
        "pipelineContext": {
            "pipelineName": context.pipeline.name,
            "stage": {"name": context.stage},
            "action": {"name": context.action.name, "actionExecutionId": context.action_execution_id},
            "pipelineArn": pipeline_arn,
            "pipelineExecutionId": context.execution_id,
        },
    }
    if continuation_token is not None:
        data["continuationToken"] = continuation_token
    return data


def _artifact(ref: ArtifactRef) -> dict[str, Any]:
    return {"name": ref.name, "revision": ref.revision, "location": ref.s3_location()}


class LambdaInvokeExecutor:
    """Executor for Invoke/Lambda actions."""

    def __init__(
        self,
        board: JobBoard,
        invoke: Invoker,
        *,
        report_timeout_s: float = 60.0,
        action_timeout_s: float = 3600.0,
        continuation_delay_s: float = 0.0,
        async_retry_delays_s: tuple[float, float] = (0.0, 0.0),
        after_raise_timeout_s: float | None = None,
        max_jobs: int = 1000,
        store: ArtifactStore | None = None,
        credentials: Mapping[str, str] | None = None,
        region: str = "",
        account_id: str = "",
    ) -> None:
        self._board = board
        self._invoke = invoke
        self._report_timeout_s = report_timeout_s
        self._action_timeout_s = action_timeout_s
        self._continuation_delay_s = continuation_delay_s
        self._async_retry_delays_s = async_retry_delays_s
        # How long the action waits once the function raised three times (AWS: CodePipeline's action
        # timeout); None = report_timeout_s.
        self._after_raise_timeout_s = (
            report_timeout_s if after_raise_timeout_s is None else after_raise_timeout_s
        )
        self._max_jobs = max_jobs
        self._store = store  # where functions write their output artifacts (the artifact bucket)
        # The emulator accepts any credentials; AWS hands out short-lived ones for the artifact bucket.
        self._arn_prefix = f"arn:aws:codepipeline:{region}:{account_id}:" if region and account_id else ""
        self._credentials = dict(
            credentials or {"accessKeyId": "testing", "secretAccessKey": "testing", "sessionToken": "testing"}
        )

    def __call__(self, context: ActionContext) -> ActionOutput:
        function_name = context.configuration.get("FunctionName")
        if not function_name:
            raise ActionFailed("a Lambda invoke action needs FunctionName", failure_type="ConfigurationError")
        outputs = self._output_locations(context)
        action_type = context.action.action_type
        type_id = {
            "category": action_type.category,
            "owner": action_type.owner,
            "provider": action_type.provider,
            "version": action_type.version,
        }
        deadline = time.monotonic() + self._action_timeout_s
        token: str | None = None
        for _ in range(self._max_jobs):
            arn = f"{self._arn_prefix}{context.pipeline.name}" if self._arn_prefix else ""
            data = job_data(context, outputs, self._credentials, token, arn)
            job_id = self._board.create_job(type_id, data)
            context.progress(f"job {job_id} -> {function_name}" + (" (continuing)" if token else ""))
            try:
                raised = self._invoke_async(context, function_name, self._board.event(job_id))
            except InvokeDenied as denied:
                raise ActionFailed(str(denied), failure_type="JobFailed") from denied
            wait_s = self._after_raise_timeout_s if raised else self._report_timeout_s
            left = max(0.0, min(wait_s, deadline - time.monotonic()))
            outcome = self._board.wait(job_id, left)
            if outcome is None:
                detail = f" (it raised {1 + ASYNC_RETRIES} times: {raised})" if raised else ""
                raise ActionFailed(
                    f"The AWS Lambda function {function_name} failed to return a result. Check the function "
                    "to verify that it has permission to call the PutJobSuccessResult action and that it "
                    f"made a call to PutJobSuccessResult.{detail}"
                )
            if not outcome.succeeded:
                raise ActionFailed(
                    outcome.failure_message or "the function reported a failure",
                    failure_type=outcome.failure_type or "JobFailed",
                )
            if outcome.continuation_token is None:
                return ActionOutput(
                    variables=dict(outcome.output_variables),
                    artifacts=self._fetch_outputs(context, outputs),
                    summary=outcome.summary,
                    external_execution_id=outcome.external_execution_id,
                )
            token = outcome.continuation_token
            if outcome.summary:
                context.progress(outcome.summary)
            if time.monotonic() >= deadline:
                raise ActionFailed(f"the action did not finish within {self._action_timeout_s:.0f} s")
            time.sleep(self._continuation_delay_s)
        raise ActionFailed(f"the function asked to continue more than {self._max_jobs} times")

    def _invoke_async(self, context: ActionContext, function_name: str, event: dict[str, Any]) -> str | None:
        """Lambda's asynchronous invoke: a function error is retried twice; the last error, if all failed."""
        for attempt in range(1 + ASYNC_RETRIES):
            try:
                self._invoke(function_name, event)
                return None
            except FunctionError as error:
                last = str(error)
            if attempt < ASYNC_RETRIES:
                context.progress(f"{function_name} raised ({last}); Lambda invokes it again")
                time.sleep(self._async_retry_delays_s[attempt])
        context.progress(f"{function_name} raised {1 + ASYNC_RETRIES} times; the action waits for a result")
        return last

    def _output_locations(self, context: ActionContext) -> tuple[ArtifactRef, ...]:
        if not context.action.output_artifacts:
            return ()
        if self._store is None:
            raise ActionFailed("the action has output artifacts but the runner gave no artifact store")
        return tuple(self._store.planned(context.execution_id, n) for n in context.action.output_artifacts)

    def _fetch_outputs(self, context: ActionContext, outputs: tuple[ArtifactRef, ...]) -> dict[str, Path]:
        fetched = {}
        for ref in outputs:
            assert self._store is not None  # outputs exist only with a store (see _output_locations)
            try:
                fetched[ref.name] = self._store.download(ref, context.output_path(ref.name))
            except ArtifactAccessDenied as denied:
                raise ActionFailed(str(denied)) from denied
            except Exception as error:
                message = f"the function wrote no output artifact {ref.name} ({ref.key}): {error}"
                raise ActionFailed(message) from error
        return fetched
