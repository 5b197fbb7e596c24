"""Create or update the API stack (templates/api.yaml) in front of the endpoint: the PublishApi action.

The rendered template is read from the assets bucket (`mlops deploy` uploaded it); CloudFormation
creates the stack with its own role (API_STACK_ROLE_ARN), so this function needs no API Gateway rights.
"No updates are to be performed" is success. The action waits for the stack while the Lambda has time,
then hands CodePipeline a continuation token (the stack id). On success the action's output variables
are the stack's outputs (ApiUrl, ApiId, StageName, ApiKeyId, ProxyFunctionName); a failed stack fails the
action with the failing resources and their reasons. A direct invoke (`{}`) publishes and waits without
the job API and raises on failure.

Environment (read in `Settings.from_env` only): API_STACK_NAME, API_STACK_ROLE_ARN, ASSETS_BUCKET,
API_TEMPLATE_KEY, API_PROXY_CODE_KEY, API_PROXY_ROLE_ARN, PROJECT_NAME, ENDPOINT_NAME, and optionally
POLL_SECONDS (default 5).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from deployer.lambdas.pipeline_job import CodePipelineReporter, JobReporter, PipelineJob

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

REPORT_MARGIN_MS = 15_000
NO_UPDATES = "No updates are to be performed"
SUCCEEDED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})
# A stack left as it was may be in the state its last failed update rolled back to: still a working API.
UNCHANGED_OK = SUCCEEDED | {"UPDATE_ROLLBACK_COMPLETE"}


class PublishError(RuntimeError):
    """The API stack could not be created or updated; the message names the failing resources."""


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
        )
        missing = [name for name in names if not environ.get(name)]
        if missing:
            raise RuntimeError(f"environment variable(s) not set: {', '.join(missing)}")
        return cls(
            stack_name=environ["API_STACK_NAME"],
            stack_role_arn=environ["API_STACK_ROLE_ARN"],
            assets_bucket=environ["ASSETS_BUCKET"],
            template_key=environ["API_TEMPLATE_KEY"],
            proxy_code_key=environ["API_PROXY_CODE_KEY"],
            proxy_role_arn=environ["API_PROXY_ROLE_ARN"],
            project_name=environ["PROJECT_NAME"],
            endpoint_name=environ["ENDPOINT_NAME"],
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


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    cloudformation = boto3.client("cloudformation")
    s3 = boto3.client("s3")
    remaining: Callable[[], int] = context.get_remaining_time_in_millis
    if PipelineJob.is_job_event(event):
        job = PipelineJob.from_event(event)
        reporter = CodePipelineReporter(boto3.client("codepipeline"))
        return run_pipeline_action(job, settings, cloudformation, s3, reporter, remaining)
    stack_id, changed = start_publish(settings, cloudformation, s3)
    stack = wait_for_stack(cloudformation, stack_id, settings.poll_seconds, remaining)
    return {"StackStatus": stack["StackStatus"], **check_result(cloudformation, stack, changed)}


def run_pipeline_action(
    job: PipelineJob,
    settings: Settings,
    cloudformation: Any,
    s3: Any,
    reporter: JobReporter,
    remaining_ms: Callable[[], int],
) -> dict[str, Any]:
    """Publish (or keep waiting for) the API stack and report the result; never raises."""
    try:
        if job.continuation_token:
            stack_id, changed = job.continuation_token, True
        else:
            stack_id, changed = start_publish(settings, cloudformation, s3)
        stack = wait_for_stack(cloudformation, stack_id, settings.poll_seconds, remaining_ms)
        if stack["StackStatus"].endswith("_IN_PROGRESS"):
            reporter.succeed(job.id, summary=f"API stack {stack['StackStatus']}", continuation_token=stack_id)
            return {"status": "RUNNING", "StackId": stack_id}
        outputs = check_result(cloudformation, stack, changed)
    # Broad on purpose: an action that raises leaves the pipeline waiting until it times out.
    except Exception as error:
        log.exception("publish-api failed")
        reporter.fail(job.id, f"could not publish the API: {error}")
        return {"status": "FAILED", "reason": str(error)}
    reporter.succeed(job.id, summary=f"API at {outputs.get('ApiUrl', '?')}", output_variables=outputs)
    return {"status": "SUCCEEDED", **outputs}


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
    if existing is None:
        created = cloudformation.create_stack(**request)
        log.info(json.dumps({"creating": settings.stack_name}))
        return str(created["StackId"]), True
    if existing["StackStatus"] in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"}:
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
