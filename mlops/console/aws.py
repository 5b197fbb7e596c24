"""What the console shows, read only through AWS's APIs (boto3 against the stack's endpoint).

`StackView` finds the deployed platform stack by its outputs (CloudFormation DescribeStacks: the one
with a `PipelineName` output) and reads CodePipeline (GetPipelineState, ListPipelineExecutions),
Step Functions (ListExecutions, DescribeExecution, GetExecutionHistory, DescribeStateMachine),
SageMaker (List*/Describe*), DynamoDB (Scan of the registry table), CloudWatch Logs, API Gateway
(GetApiKeys) and sagemaker-runtime (InvokeEndpoint). It never imports the harness's internals, so
it works against any AWS-compatible endpoint, AWS itself included. Approvals are decided with
CodePipeline's PutApprovalResult, with the token GetPipelineState shows, as AWS's console does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

APPROVER_HEADER = "x-mlops-approver"  # the local stand-in for the caller's identity (see the seam)
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class NotFound(LookupError):
    """The thing asked for (an execution, a state, an endpoint) does not exist."""


class AwsError(RuntimeError):
    """An AWS call failed; the message is the service's."""


@dataclass(frozen=True)
class PendingApproval:
    pipeline: str
    stage: str
    action: str
    token: str
    execution_id: str


def _plain(value: Any) -> Any:
    """JSON-able: datetimes as epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _attribute(value: Mapping[str, Any]) -> Any:
    """One DynamoDB attribute value as plain JSON."""
    kind, inner = next(iter(value.items()))
    if kind == "M":
        return {k: _attribute(v) for k, v in inner.items()}
    if kind == "L":
        return [_attribute(v) for v in inner]
    if kind == "N":
        return float(inner)
    return inner


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class StackView:
    """The stack's resources as the AWS APIs show them."""

    def __init__(self, endpoint_url: str | None, region: str, session: boto3.Session | None = None) -> None:
        self._endpoint_url = endpoint_url
        if session is None:
            credentials = FAKE_CREDENTIALS if endpoint_url else {}
            session = boto3.Session(region_name=region, **credentials)
        self._session = session
        self._config = Config(
            retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=3, read_timeout=60
        )
        self._clients: dict[str, Any] = {}
        self._outputs: dict[str, str] | None = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(
                service, endpoint_url=self._endpoint_url, config=self._config
            )
        return self._clients[service]

    # -- the stack -----------------------------------------------------------------------------------
    def outputs(self) -> dict[str, str]:
        """The platform stack's outputs (the stack with a PipelineName output); {} before it exists."""
        if self._outputs:
            return self._outputs
        found: dict[str, str] = {}
        for stack in self.client("cloudformation").describe_stacks().get("Stacks", []):
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            if "PipelineName" in outputs:
                found = outputs
                break
        self._outputs = found or None
        return found

    def output(self, key: str) -> str | None:
        return self.outputs().get(key)

    # -- CodePipeline ---------------------------------------------------------------------------------
    def pipeline_state(self) -> dict[str, Any] | None:
        name = self.output("PipelineName")
        if not name:
            return None
        try:
            return dict(_plain(self.client("codepipeline").get_pipeline_state(name=name)))
        except ClientError as error:
            if _code(error) == "PipelineNotFoundException":
                return None  # deployed, never run
            raise

    def pipeline_executions(self) -> list[dict[str, Any]]:
        name = self.output("PipelineName")
        if not name:
            return []
        try:
            answer = self.client("codepipeline").list_pipeline_executions(pipelineName=name)
        except ClientError as error:
            if _code(error) == "PipelineNotFoundException":
                return []
            raise
        return list(_plain(answer.get("pipelineExecutionSummaries", [])))

    def pending_approvals(self) -> list[PendingApproval]:
        """Approval actions in progress with a token (GetPipelineState), as the console finds them."""
        state = self.pipeline_state()
        if state is None:
            return []
        found = []
        for stage in state.get("stageStates", []):
            execution_id = str((stage.get("latestExecution") or {}).get("pipelineExecutionId", ""))
            for action in stage.get("actionStates", []):
                latest = action.get("latestExecution") or {}
                if latest.get("status") == "InProgress" and latest.get("token"):
                    found.append(
                        PendingApproval(
                            str(state["pipelineName"]),
                            str(stage["stageName"]),
                            str(action["actionName"]),
                            str(latest["token"]),
                            execution_id,
                        )
                    )
        return found

    def decide(self, approval: PendingApproval, approved: bool, comment: str, approver: str) -> None:
        """PutApprovalResult; the service's error (e.g. InvalidApprovalTokenException) as AwsError."""
        client = self.client("codepipeline")

        def name_the_approver(request: Any, **_: Any) -> None:
            request.headers[APPROVER_HEADER] = approver

        client.meta.events.register("before-sign.codepipeline.PutApprovalResult", name_the_approver)
        try:
            client.put_approval_result(
                pipelineName=approval.pipeline,
                stageName=approval.stage,
                actionName=approval.action,
                result={"summary": comment, "status": "Approved" if approved else "Rejected"},
                token=approval.token,
            )
        except ClientError as error:
            raise AwsError(f"{_code(error)}: {error.response.get('Error', {}).get('Message', '')}") from error
        finally:
            client.meta.events.unregister("before-sign.codepipeline.PutApprovalResult", name_the_approver)

    # -- Step Functions --------------------------------------------------------------------------------
    def state_machine_arn(self) -> str | None:
        return self.output("StateMachineArn")

    def executions(self) -> list[dict[str, Any]]:
        arn = self.state_machine_arn()
        if not arn:
            return []
        answer = self.client("stepfunctions").list_executions(stateMachineArn=arn, maxResults=100)
        runs = list(_plain(answer.get("executions", [])))
        return sorted(runs, key=lambda run: -float(run.get("startDate") or 0))

    def execution(self, arn: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """(DescribeExecution, the definition as JSON, the history oldest first); NotFound if unknown."""
        sfn = self.client("stepfunctions")
        try:
            described = dict(_plain(sfn.describe_execution(executionArn=arn)))
        except ClientError as error:
            if _code(error) in ("ExecutionDoesNotExist", "InvalidArn", "ValidationException"):
                raise NotFound(f"no execution {arn}") from error
            raise
        machine = sfn.describe_state_machine(stateMachineArn=described["stateMachineArn"])
        events: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = sfn.get_execution_history(
                executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
            )
            events.extend(_plain(page.get("events", [])))
            token = page.get("nextToken")
            if not token:
                break
        return described, json.loads(machine["definition"]), events

    # -- SageMaker -------------------------------------------------------------------------------------
    def training_jobs(self) -> list[dict[str, Any]]:
        sagemaker = self.client("sagemaker")
        summaries = sagemaker.list_training_jobs(MaxResults=50).get("TrainingJobSummaries", [])
        jobs = [
            dict(_plain(sagemaker.describe_training_job(TrainingJobName=s["TrainingJobName"])))
            for s in summaries
        ]
        return sorted(jobs, key=lambda job: -float(job.get("CreationTime") or 0))

    def models(self) -> list[dict[str, Any]]:
        return list(_plain(self.client("sagemaker").list_models(MaxResults=100).get("Models", [])))

    def endpoint_configs(self) -> list[dict[str, Any]]:
        answer = self.client("sagemaker").list_endpoint_configs(MaxResults=100)
        return list(_plain(answer.get("EndpointConfigs", [])))

    def endpoints(self) -> list[dict[str, Any]]:
        sagemaker = self.client("sagemaker")
        names = [e["EndpointName"] for e in sagemaker.list_endpoints(MaxResults=100).get("Endpoints", [])]
        return [dict(_plain(sagemaker.describe_endpoint(EndpointName=name))) for name in names]

    def endpoint(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(_plain(self.client("sagemaker").describe_endpoint(EndpointName=name)))
        except ClientError as error:
            if _code(error) in ("ValidationException", "ResourceNotFound"):
                return None
            raise

    def invoke_endpoint(self, name: str, body: bytes, content_type: str = "application/json") -> str:
        if self.endpoint(name) is None:
            raise NotFound(f"no endpoint {name}")
        try:
            answer = self.client("sagemaker-runtime").invoke_endpoint(
                EndpointName=name, Body=body, ContentType=content_type
            )
        except ClientError as error:
            raise AwsError(f"{_code(error)}: {error.response.get('Error', {}).get('Message', '')}") from error
        return str(answer["Body"].read().decode("utf-8", errors="replace"))

    # -- the registry ----------------------------------------------------------------------------------
    def registry(self) -> tuple[list[dict[str, Any]], str | None]:
        """(items newest first, the serving endpoint's current config name)."""
        table = self.output("RegistryTableName")
        if not table:
            return [], None
        dynamodb = self.client("dynamodb")
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            page = dynamodb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
            items.extend({k: _attribute(v) for k, v in item.items()} for item in page.get("Items", []))
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        items.sort(key=lambda item: str(item.get("RegisteredAt", "")), reverse=True)
        serving = self.output("EndpointName")
        described = self.endpoint(serving) if serving else None
        config = str(described["EndpointConfigName"]) if described else None
        return items, config

    # -- API Gateway -----------------------------------------------------------------------------------
    def api_key(self) -> str | None:
        keys = self.client("apigateway").get_api_keys(includeValues=True).get("items", [])
        enabled = [key for key in keys if key.get("enabled", True) and key.get("value")]
        return str(enabled[0]["value"]) if enabled else None

    def invoke_urls(self) -> list[str]:
        """Each REST API's stage and POST resource as its invoke URL (API Gateway's documented form,
        https://{restapi_id}.execute-api.{region}.amazonaws.com/{stage_name}/{path})."""
        apigateway = self.client("apigateway")
        region = apigateway.meta.region_name
        urls = []
        for api in apigateway.get_rest_apis().get("items", []):
            stages = apigateway.get_stages(restApiId=api["id"]).get("item", [])
            resources = apigateway.get_resources(restApiId=api["id"]).get("items", [])
            paths = [r["path"] for r in resources if "POST" in (r.get("resourceMethods") or {})]
            for stage in stages:
                for path in paths:
                    urls.append(
                        f"https://{api['id']}.execute-api.{region}.amazonaws.com/{stage['stageName']}{path}"
                    )
        return sorted(urls)

    # -- CloudWatch Logs -------------------------------------------------------------------------------
    def log_groups(self) -> list[str]:
        groups = self.client("logs").describe_log_groups().get("logGroups", [])
        return sorted(str(group["logGroupName"]) for group in groups)

    def log_events(self, group: str, pattern: str = "", limit: int = 500) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"logGroupName": group, "limit": limit}
        try:
            answer = self.client("logs").filter_log_events(**kwargs)
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                raise NotFound(f"no log group {group}") from error
            raise
        events = [dict(event) for event in answer.get("events", [])]
        if pattern:  # a plain substring: moto's filter patterns are partial, so the console filters itself
            events = [
                e for e in events if pattern in str(e.get("message", "")) or pattern in e["logStreamName"]
            ]
        return events


__all__ = ["AwsError", "BotoCoreError", "NotFound", "PendingApproval", "StackView"]
