"""Register an approved model version in the DynamoDB registry, exactly once.

Runs as the pipeline's Register action (UserParameters `{"ExecutionArn": "#{TrainVariables.ExecutionArn}"}`;
the approver is read from the Approve stage's latest execution) or by a direct invoke with
`{"ExecutionArn": ..., "Approver": ..., "ApprovalComment": ...}`.

The item's key is (`ModelName`, `Version`), `Version` being the training execution's name, which is
derived from commit, data, image and hyperparameters. The write is conditional
(`attribute_not_exists`), so a retried action never writes a second item: it finds the one it wrote
and reports success with the same version.

Item attributes (DynamoDB types): ModelName S, Version S, ExecutionArn S, CommitId S, DataVersion S,
ImageUri S, ImageDigest S, Hyperparameters M of S, Metrics M of N, Accuracy N, ArtifactUri S,
TrainingJobName S, SageMakerModelName S, EndpointName S, EndpointConfigName S, Approver S,
ApprovalComment S, ApprovedAt S, TrainingStartedAt S, TrainingEndedAt S, RegisteredAt S (ISO 8601, UTC).
`EndpointName` is the serving endpoint (ENDPOINT_NAME), the one the PublishApi action promotes this
version to, not the candidate endpoint the pipeline's training execution deployed it to;
`EndpointConfigName` is the execution's config (`<execution name>-config`).

Environment (read in `Settings.from_env` only): REGISTRY_TABLE, MODEL_NAME, ENDPOINT_NAME, APPROVAL_STAGE.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


@dataclass(frozen=True)
class Settings:
    table: str
    model_name: str
    endpoint_name: str
    approval_stage: str = "Approve"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        names = ("REGISTRY_TABLE", "MODEL_NAME", "ENDPOINT_NAME")
        require_env(environ, names)
        stage = environ.get("APPROVAL_STAGE") or "Approve"
        return cls(environ["REGISTRY_TABLE"], environ["MODEL_NAME"], environ["ENDPOINT_NAME"], stage)


@dataclass(frozen=True)
class Approval:
    approver: str
    comment: str
    approved_at: str


@dataclass(frozen=True)
class Registration:
    version: str
    created: bool
    item: dict[str, Any]


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    if PipelineJob.is_job_event(event):
        codepipeline = boto3.client("codepipeline")
        reporter = CodePipelineReporter(codepipeline)
        try:  # a Lambda action reports, never raises (see fail_unstarted_job)
            settings = Settings.from_env()
            dynamodb = boto3.client("dynamodb")
            stepfunctions = boto3.client("stepfunctions")
            job = PipelineJob.from_event(event)
        except Exception as error:
            return fail_unstarted_job(event, reporter, error)
        return run_pipeline_action(job, settings, dynamodb, stepfunctions, reporter, codepipeline)
    settings = Settings.from_env()
    dynamodb = boto3.client("dynamodb")
    stepfunctions = boto3.client("stepfunctions")
    execution_arn = event.get("ExecutionArn")
    if not isinstance(execution_arn, str) or not execution_arn:
        raise EventError("expected a CodePipeline job or {'ExecutionArn': ..., 'Approver': ...}")
    approval = Approval(
        approver=str(event.get("Approver") or "unknown"),
        comment=str(event.get("ApprovalComment") or ""),
        approved_at=str(event.get("ApprovedAt") or _now()),
    )
    registration = register(execution_arn, approval, settings, dynamodb, stepfunctions)
    return {"ModelVersion": registration.version, "Created": registration.created}


def run_pipeline_action(
    job: PipelineJob,
    settings: Settings,
    dynamodb: Any,
    stepfunctions: Any,
    reporter: JobReporter,
    codepipeline: Any,
) -> dict[str, Any]:
    """Register the execution named in UserParameters and report the result; never raises."""
    try:
        execution_arn = job.user_parameters.get("ExecutionArn")
        if not isinstance(execution_arn, str) or not execution_arn.startswith("arn:"):
            raise EventError(f"UserParameters.ExecutionArn must be an execution ARN, got {execution_arn!r}")
        approval = read_approval(codepipeline, job.id, settings.approval_stage)
        registration = register(execution_arn, approval, settings, dynamodb, stepfunctions)
    # Broad on purpose: an action that raises leaves the pipeline waiting until it times out.
    except Exception as error:
        log.exception("register-model failed")
        reporter.fail(job.id, f"could not register the model: {error}")
        return {"status": "FAILED", "reason": str(error)}
    verb = "registered" if registration.created else "was already registered as"
    reporter.succeed(
        job.id,
        summary=f"{settings.model_name} {verb} version {registration.version}",
        output_variables={"ModelVersion": registration.version, "ModelName": settings.model_name},
    )
    return {"status": "SUCCEEDED", "ModelVersion": registration.version, "Created": registration.created}


def read_approval(codepipeline: Any, job_id: str, stage: str) -> Approval:
    """Who approved: the Approve stage's latest action execution of the job's pipeline."""
    context = codepipeline.get_job_details(jobId=job_id)["jobDetails"]["data"]["pipelineContext"]
    state = codepipeline.get_pipeline_state(name=context["pipelineName"])
    for stage_state in state.get("stageStates", []):
        if stage_state.get("stageName") != stage:
            continue
        for action in stage_state.get("actionStates", []):
            latest = action.get("latestExecution") or {}
            if latest.get("status") == "Succeeded":
                changed = latest.get("lastStatusChange")
                return Approval(
                    approver=str(latest.get("lastUpdatedBy") or "unknown"),
                    comment=str(latest.get("summary") or ""),
                    approved_at=_iso(changed) if changed else _now(),
                )
    raise EventError(f"stage {stage!r} of pipeline {context['pipelineName']!r} has no succeeded approval")


def register(
    execution_arn: str, approval: Approval, settings: Settings, dynamodb: Any, stepfunctions: Any
) -> Registration:
    execution = stepfunctions.describe_execution(executionArn=execution_arn)
    if execution["status"] != "SUCCEEDED":
        status = execution["status"]
        raise EventError(f"execution {execution_arn} is {status}, not SUCCEEDED: nothing to register")
    item = registry_item(execution, approval, settings.model_name, settings.endpoint_name)
    try:
        dynamodb.put_item(
            TableName=settings.table,
            Item=item,
            ConditionExpression="attribute_not_exists(ModelName) AND attribute_not_exists(Version)",
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        existing = dynamodb.get_item(
            TableName=settings.table,
            Key={"ModelName": item["ModelName"], "Version": item["Version"]},
            ConsistentRead=True,
        ).get("Item", {})
        if existing.get("ExecutionArn") != item["ExecutionArn"]:
            raise EventError(f"version {item['Version']['S']} is registered for another execution") from error
        log.info(json.dumps({"already_registered": item["Version"]["S"]}))
        return Registration(item["Version"]["S"], created=False, item=existing)
    log.info(json.dumps({"registered": item["Version"]["S"], "model": settings.model_name}))
    return Registration(item["Version"]["S"], created=True, item=item)


def registry_item(
    execution: Mapping[str, Any], approval: Approval, model_name: str, endpoint_name: str
) -> dict[str, Any]:
    """The DynamoDB item (attribute-value form) for a succeeded training execution that serves, once
    promoted, on the endpoint `endpoint_name`."""
    given = json.loads(execution.get("input") or "{}")
    output = json.loads(execution.get("output") or "{}")
    job = output.get("TrainingJob") or {}
    required = {
        "CommitId": given.get("CommitId"),
        "DataVersion": given.get("DataVersion"),
        "ImageUri": given.get("TrainingImage"),
        "ImageDigest": given.get("ImageDigest"),
        "ArtifactUri": job.get("ModelArtifacts"),
        "TrainingJobName": job.get("TrainingJobName"),
    }
    missing = sorted(name for name, value in required.items() if not isinstance(value, str) or not value)
    if missing:
        raise EventError(f"the execution's input/output lacks {missing}")
    metrics = {
        str(metric["MetricName"]): {"N": repr(float(metric["Value"]))}
        for metric in job.get("FinalMetricDataList") or []
    }
    if "accuracy" not in metrics:
        raise EventError("the execution's training job has no accuracy metric")
    name = execution["name"]
    item: dict[str, Any] = {
        "ModelName": {"S": model_name},
        "Version": {"S": name},
        "ExecutionArn": {"S": execution["executionArn"]},
        **{key: {"S": value} for key, value in required.items()},
        "Hyperparameters": {"M": {k: {"S": str(v)} for k, v in (given.get("Hyperparameters") or {}).items()}},
        "Metrics": {"M": metrics},
        "Accuracy": metrics["accuracy"],
        "SageMakerModelName": {"S": f"{name}-model"},
        "EndpointName": {"S": endpoint_name},
        "EndpointConfigName": {"S": f"{name}-config"},
        "Approver": {"S": approval.approver},
        "ApprovalComment": {"S": approval.comment},
        "ApprovedAt": {"S": approval.approved_at},
        "TrainingStartedAt": {"S": _iso(execution.get("startDate"))},
        "TrainingEndedAt": {"S": _iso(execution.get("stopDate"))},
        "RegisteredAt": {"S": _now()},
    }
    return item


def _iso(value: object) -> str:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value or "")


def _now() -> str:
    return datetime.now(UTC).isoformat()
