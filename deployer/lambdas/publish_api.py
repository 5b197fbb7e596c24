"""Promote the approved endpoint config to the serving endpoint, then create or update the API stack
(templates/api.yaml) in front of it: the PublishApi action.

Promotion (UserParameters `{"EndpointConfigName": "#{TrainVariables.EndpointConfigName}"}`): the
pipeline's training execution deployed the config to the candidate endpoint only, so that a rejected
approval leaves the API as it was. After the approval this action creates the serving endpoint
(ENDPOINT_NAME) on the config, or updates it (nothing when it already serves it), and waits until
DescribeEndpoint shows it InService on that config; Failed, or InService on another config once the
update was asked for (a rolled-back update), fails the action with SageMaker's reason. Then the
candidate endpoint (CANDIDATE_ENDPOINT_NAME) is deleted when it is InService on the promoted config:
it costs money on AWS, and the config stays (the serving endpoint uses it). A candidate on another
config belongs to a later run and is left alone.

The rendered template is read from the assets bucket (`mlops deploy` uploaded it); CloudFormation
creates the stack with its own role (API_STACK_ROLE_ARN), so this function needs no API Gateway rights.
"No updates are to be performed" is success. A stack whose creation rolled back (ROLLBACK_COMPLETE)
can only be deleted (CloudFormation user guide, "Stack status codes"): it is deleted, then created again,
so that one failed first publish does not block every later run. The action waits for the endpoint,
then the stack, while the Lambda has time, then hands CodePipeline a continuation token (JSON:
`{"Step": "promote", "Requested": bool}` or `{"Step": "publish", "StackId": ...}`) and is invoked
again. On success the action's output variables are the stack's outputs (ApiUrl, ApiId, StageName,
ApiKeyId, ProxyFunctionName); a failed stack fails the action with the failing resources and their reasons. A
direct invoke (`{}`) publishes the API stack only (no promotion), waits without the job API and raises
on failure.

Environment (read in `Settings.from_env` only): API_STACK_NAME, API_STACK_ROLE_ARN, ASSETS_BUCKET,
API_TEMPLATE_KEY, API_PROXY_CODE_KEY, API_PROXY_ROLE_ARN, PROJECT_NAME, ENDPOINT_NAME,
CANDIDATE_ENDPOINT_NAME, and optionally POLL_SECONDS (default 5).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from deployer.lambdas.pipeline_job import (
    CodePipelineReporter,
    EventError,
    JobReporter,
    PipelineJob,
    fail_unstarted_job,
    require_env,
)

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

REPORT_MARGIN_MS = 15_000
NO_UPDATES = "No updates are to be performed"
SUCCEEDED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})
# A stack left as it was may be in the state its last failed update rolled back to: still a working API.
UNCHANGED_OK = SUCCEEDED | {"UPDATE_ROLLBACK_COMPLETE"}
# Endpoint statuses that change by themselves: wait for them to settle.
ENDPOINT_BUSY = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class PublishError(RuntimeError):
    """The API stack could not be created or updated; the message names the failing resources."""


class PromotionError(RuntimeError):
    """The serving endpoint did not come to serve the approved config; the message says why."""


@dataclass(frozen=True)
class Settings:
    stack_name: str
    stack_role_arn: str
    assets_bucket: str
    template_key: str
    proxy_code_key: str
    proxy_role_arn: str
    project_name: str
    endpoint_name: str
    candidate_endpoint_name: str
    poll_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        names = (
            "API_STACK_NAME",
            "API_STACK_ROLE_ARN",
            "ASSETS_BUCKET",
            "API_TEMPLATE_KEY",
            "API_PROXY_CODE_KEY",
            "API_PROXY_ROLE_ARN",
            "PROJECT_NAME",
            "ENDPOINT_NAME",
            "CANDIDATE_ENDPOINT_NAME",
        )
        require_env(environ, names)
        if environ["CANDIDATE_ENDPOINT_NAME"] == environ["ENDPOINT_NAME"]:
            raise RuntimeError("CANDIDATE_ENDPOINT_NAME must differ from ENDPOINT_NAME (the serving one)")
        return cls(
            stack_name=environ["API_STACK_NAME"],
            stack_role_arn=environ["API_STACK_ROLE_ARN"],
            assets_bucket=environ["ASSETS_BUCKET"],
            template_key=environ["API_TEMPLATE_KEY"],
            proxy_code_key=environ["API_PROXY_CODE_KEY"],
            proxy_role_arn=environ["API_PROXY_ROLE_ARN"],
            project_name=environ["PROJECT_NAME"],
            endpoint_name=environ["ENDPOINT_NAME"],
            candidate_endpoint_name=environ["CANDIDATE_ENDPOINT_NAME"],
            poll_seconds=float(environ.get("POLL_SECONDS", "5")),
        )

    def parameters(self, template_body: str) -> list[dict[str, str]]:
        """Every parameter of the template, explicitly: its default unless this function sets it, so
        that an unchanged API compares equal to the deployed one ("No updates are to be performed")."""
        declared = json.loads(template_body).get("Parameters", {})
        values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
        values |= {
            "ProjectName": self.project_name,
            "EndpointName": self.endpoint_name,
            "CodeBucket": self.assets_bucket,
            "ProxyCodeKey": self.proxy_code_key,
            "ProxyRoleArn": self.proxy_role_arn,
        }
        return [{"ParameterKey": key, "ParameterValue": value} for key, value in sorted(values.items())]


@dataclass(frozen=True)
class Clients:
    cloudformation: Any
    s3: Any
    sagemaker: Any


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    remaining: Callable[[], int] = context.get_remaining_time_in_millis
    if PipelineJob.is_job_event(event):
        reporter = CodePipelineReporter(boto3.client("codepipeline"))
        try:  # a Lambda action reports, never raises (see fail_unstarted_job)
            settings = Settings.from_env()
            clients = Clients(boto3.client("cloudformation"), boto3.client("s3"), boto3.client("sagemaker"))
            job = PipelineJob.from_event(event)
        except Exception as error:
            return fail_unstarted_job(event, reporter, error)
        return run_pipeline_action(job, settings, clients, reporter, remaining)
    settings = Settings.from_env()
    clients = Clients(boto3.client("cloudformation"), boto3.client("s3"), boto3.client("sagemaker"))
    if event:
        raise EventError(
            "a direct invoke takes {} (it publishes the API stack only); the promotion of an endpoint "
            "config runs as the pipeline's PublishApi action"
        )
    stack_id, changed = start_publish(settings, clients.cloudformation, clients.s3)
    stack = wait_for_stack(clients.cloudformation, stack_id, settings.poll_seconds, remaining)
    return {"StackStatus": stack["StackStatus"], **check_result(clients.cloudformation, stack, changed)}


@dataclass(frozen=True)
class Progress:
    """Where a PublishApi job stands: its continuation token's content."""

    step: Literal["promote", "publish"]
    requested: bool = False  # promote: CreateEndpoint/UpdateEndpoint was called for the config
    stack_id: str = ""  # publish: the stack to wait for

    def token(self) -> str:
        if self.step == "promote":
            return json.dumps({"Step": "promote", "Requested": self.requested})
        return json.dumps({"Step": "publish", "StackId": self.stack_id})

    @classmethod
    def from_token(cls, token: str | None) -> Progress:
        if token is None:
            return cls("promote")
        try:
            raw = json.loads(token)
        except json.JSONDecodeError as error:
            raise EventError(f"continuation token is not JSON: {error}") from error
        if isinstance(raw, dict) and raw.get("Step") == "promote" and isinstance(raw.get("Requested"), bool):
            return cls("promote", requested=raw["Requested"])
        if isinstance(raw, dict) and raw.get("Step") == "publish" and isinstance(raw.get("StackId"), str):
            return cls("publish", stack_id=raw["StackId"])
        raise EventError(f"continuation token {token!r} is not one this action hands out")


def endpoint_config_parameter(job: PipelineJob) -> str:
    """The config to promote, from the action's UserParameters."""
    config = job.user_parameters.get("EndpointConfigName")
    if not isinstance(config, str) or not _SAGEMAKER_NAME.match(config):
        raise EventError(
            f"UserParameters.EndpointConfigName {config!r} is not an endpoint config name "
            '(the pipeline passes {"EndpointConfigName": "#{TrainVariables.EndpointConfigName}"})'
        )
    return config


def run_pipeline_action(
    job: PipelineJob,
    settings: Settings,
    clients: Clients,
    reporter: JobReporter,
    remaining_ms: Callable[[], int],
) -> dict[str, Any]:
    """Promote the config, then publish (or keep waiting for either) and report the result; never raises."""
    try:
        config = endpoint_config_parameter(job)
        progress = Progress.from_token(job.continuation_token)
        if progress.step == "promote":
            progress = promote(clients.sagemaker, settings, config, progress.requested, remaining_ms)
            if progress.step == "promote":
                reporter.succeed(
                    job.id,
                    summary=f"endpoint {settings.endpoint_name} moves to {config}",
                    continuation_token=progress.token(),
                )
                return {"status": "RUNNING", "EndpointConfigName": config}
            delete_candidate(clients.sagemaker, settings, config)
            stack_id, changed = start_publish(settings, clients.cloudformation, clients.s3)
        else:
            stack_id, changed = progress.stack_id, True
        stack = wait_for_stack(clients.cloudformation, stack_id, settings.poll_seconds, remaining_ms)
        if stack["StackStatus"].endswith("_IN_PROGRESS"):
            token = Progress("publish", stack_id=stack_id).token()
            reporter.succeed(job.id, summary=f"API stack {stack['StackStatus']}", continuation_token=token)
            return {"status": "RUNNING", "StackId": stack_id}
        outputs = check_result(clients.cloudformation, stack, changed)
    # Broad on purpose: an action that raises leaves the pipeline waiting until it times out.
    except Exception as error:
        log.exception("publish-api failed")
        reporter.fail(job.id, f"could not publish the API: {error}")
        return {"status": "FAILED", "reason": str(error)}
    reporter.succeed(job.id, summary=f"API at {outputs.get('ApiUrl', '?')}", output_variables=outputs)
    return {"status": "SUCCEEDED", **outputs}


def promote(
    sagemaker: Any, settings: Settings, config: str, requested: bool, remaining_ms: Callable[[], int]
) -> Progress:
    """Moves the serving endpoint to `config` and waits while the Lambda has time: Progress("publish")
    once it is InService on the config, Progress("promote", requested) while it is not there yet."""
    endpoint = settings.endpoint_name
    while True:
        described = _describe_endpoint(sagemaker, endpoint)
        status = described.get("EndpointStatus") if described else None
        on_config = described is not None and described.get("EndpointConfigName") == config
        if status == "InService" and on_config:
            log.info(json.dumps({"promoted": config, "endpoint": endpoint}))
            return Progress("publish")
        if status in ENDPOINT_BUSY:
            if remaining_ms() - settings.poll_seconds * 1000 < REPORT_MARGIN_MS:
                return Progress("promote", requested=requested)
            time.sleep(settings.poll_seconds)
            continue
        if requested:
            raise PromotionError(_not_promoted(endpoint, config, described))
        if described is None:
            sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
            log.info(json.dumps({"creating": endpoint, "config": config}))
        elif on_config:  # Failed (or OutOfService) on this very config: asking again changes nothing
            raise PromotionError(_not_promoted(endpoint, config, described))
        else:
            sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
            log.info(json.dumps({"updating": endpoint, "config": config}))
        requested = True


def _not_promoted(endpoint: str, config: str, described: Mapping[str, Any] | None) -> str:
    if described is None:
        return f"endpoint {endpoint} disappeared while it was moving to {config}"
    reason = described.get("FailureReason") or "no reason given"
    status = described.get("EndpointStatus")
    serving = described.get("EndpointConfigName")
    if serving == config:
        return f"endpoint {endpoint} is {status} on {config}: {reason}"
    return f"endpoint {endpoint} is {status} on {serving} (rolled back) instead of {config}: {reason}"


def delete_candidate(sagemaker: Any, settings: Settings, config: str) -> None:
    """Deletes the candidate endpoint once it is InService on the promoted config (the serving endpoint
    is, too); a candidate on another config belongs to a later run and is kept."""
    candidate = _describe_endpoint(sagemaker, settings.candidate_endpoint_name)
    if candidate is None:
        return
    if candidate.get("EndpointConfigName") != config or candidate.get("EndpointStatus") != "InService":
        log.info(json.dumps({"candidate_kept": settings.candidate_endpoint_name}))
        return
    sagemaker.delete_endpoint(EndpointName=settings.candidate_endpoint_name)
    log.info(json.dumps({"candidate_deleted": settings.candidate_endpoint_name}))


def start_publish(settings: Settings, cloudformation: Any, s3: Any) -> tuple[str, bool]:
    """Create or update the stack: the stack id to wait for, and whether anything is changing."""
    body = s3.get_object(Bucket=settings.assets_bucket, Key=settings.template_key)["Body"].read().decode()
    request: dict[str, Any] = {
        "StackName": settings.stack_name,
        "TemplateBody": body,
        "Parameters": settings.parameters(body),
        "RoleARN": settings.stack_role_arn,
        "Tags": [{"Key": "project", "Value": settings.project_name}],
    }
    existing = _describe(cloudformation, settings.stack_name)
    if existing is not None and existing["StackStatus"] == "ROLLBACK_COMPLETE":
        delete_rolled_back(cloudformation, existing, settings.poll_seconds)
        existing = None
    if existing is None:
        created = cloudformation.create_stack(**request)
        log.info(json.dumps({"creating": settings.stack_name}))
        return str(created["StackId"]), True
    if existing["StackStatus"] in {"ROLLBACK_FAILED", "DELETE_FAILED"}:
        raise PublishError(
            f"stack {settings.stack_name} is {existing['StackStatus']} and cannot be updated: "
            "delete it (mlops destroy) and run the pipeline again"
        )
    try:
        updated = cloudformation.update_stack(**request)
    except ClientError as error:
        if NO_UPDATES not in str(error):
            raise
        log.info(json.dumps({"unchanged": settings.stack_name}))
        return str(existing["StackId"]), False
    log.info(json.dumps({"updating": settings.stack_name}))
    return str(updated["StackId"]), True


DELETE_POLLS = 60


def delete_rolled_back(cloudformation: Any, stack: Mapping[str, Any], poll_seconds: float) -> None:
    """Deletes a stack in ROLLBACK_COMPLETE (its resources are already gone, so this is quick) and waits
    until it is DELETE_COMPLETE; a deletion that fails or does not end is a PublishError."""
    stack_id = str(stack["StackId"])
    reason = stack.get("StackStatusReason")
    log.info(json.dumps({"deleting_rolled_back": stack["StackName"], "reason": reason}))
    cloudformation.delete_stack(StackName=stack_id)
    for _ in range(DELETE_POLLS):
        current = _describe(cloudformation, stack_id)
        status = current["StackStatus"] if current is not None else "DELETE_COMPLETE"
        if status == "DELETE_COMPLETE":
            return
        if status != "DELETE_IN_PROGRESS":
            raise PublishError(
                f"stack {stack['StackName']} was ROLLBACK_COMPLETE and its deletion is {status}"
            )
        time.sleep(poll_seconds)
    raise PublishError(f"stack {stack['StackName']} was ROLLBACK_COMPLETE and is still being deleted")


def wait_for_stack(
    cloudformation: Any, stack_id: str, poll_seconds: float, remaining_ms: Callable[[], int]
) -> dict[str, Any]:
    while True:
        stack = _describe(cloudformation, stack_id)
        if stack is None:
            raise PublishError(f"stack {stack_id} does not exist")
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        if remaining_ms() - poll_seconds * 1000 < REPORT_MARGIN_MS:
            return stack
        time.sleep(poll_seconds)


def check_result(cloudformation: Any, stack: Mapping[str, Any], changed: bool) -> dict[str, str]:
    """The stack's outputs when it succeeded; otherwise a PublishError with the failed resources."""
    status = stack["StackStatus"]
    if status not in (SUCCEEDED if changed else UNCHANGED_OK):
        events = cloudformation.describe_stack_events(StackName=stack["StackId"]).get("StackEvents", [])
        failures = [
            f"{event['LogicalResourceId']} ({event.get('ResourceType', '?')}): "
            f"{event.get('ResourceStatusReason', 'no reason given')}"
            for event in events
            if str(event.get("ResourceStatus", "")).endswith("_FAILED")
        ]
        detail = "; ".join(failures) or stack.get("StackStatusReason", "no reason given")
        raise PublishError(f"API stack {stack['StackName']} is {status}: {detail}")
    return {output["OutputKey"]: str(output["OutputValue"]) for output in stack.get("Outputs", [])}


def _describe(cloudformation: Any, name_or_id: str) -> dict[str, Any] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name_or_id)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def _describe_endpoint(sagemaker: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(sagemaker.describe_endpoint(EndpointName=name))
    except ClientError as error:
        if "Could not find endpoint" in str(error):
            return None
        raise
