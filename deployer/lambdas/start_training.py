"""Start the training state machine: the pipeline's Train action, and new data under the data prefix.

Two events, one execution input (the contract in deployer/README.md):
- a CodePipeline job (Train action): the image, commit and hyperparameters come from `build.json` in the
  Build stage's output artifact. The execution deploys to the candidate endpoint
  (CANDIDATE_ENDPOINT_NAME), which the approver can call; the serving endpoint changes only when the
  PublishApi action promotes the approved config. The action waits for the execution's result: it
  polls while the Lambda has time left, then hands CodePipeline a continuation token (the execution
  ARN) and is invoked again; a failed execution fails the action with the state machine's error and
  cause. Output variables: ExecutionArn, EndpointName (the candidate), EndpointConfigName, ModelName,
  Accuracy.
- an EventBridge S3 "Object Created" event under the data prefix: the image, commit and hyperparameters
  come from `s3://<ARTIFACT_BUCKET>/builds/latest.json`, the build record that the Train action last
  started (it copies it there); the execution deploys to the serving endpoint (ENDPOINT_NAME: no
  approval stands between new data and the API) and is started, not waited for. S3 sends one event
  per object, so a multi-file upload invokes the function once per file: each invocation waits until
  the data under the prefix has not changed for POLL_SECONDS (while the Lambda has time), so that they
  all name the same execution instead of starting racing ones on partial data.

The execution's name is derived from what it trains (commit, data version, image digest and
hyperparameters) and where it deploys, so a retried action or a repeated event follows the existing
execution instead of training twice. A name that belongs to a closed execution cannot be used again
(StartExecution answers ExecutionAlreadyExists): after a run that failed, timed out or was aborted
(a capacity failure, say), the same inputs start `<name>-r2`, `-r3`, ... up to `-r9`; a succeeded
or running one is followed.

Environment (read in `Settings.from_env` only): STATE_MACHINE_ARN, NAME_PREFIX, DATA_BUCKET, DATA_PREFIX,
ARTIFACT_BUCKET, ENDPOINT_NAME, CANDIDATE_ENDPOINT_NAME, QUALITY_THRESHOLD, and optionally POLL_SECONDS
(default 10).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from deployer.lambdas.contracts import (
    BUILD_RECORD_FILE,
    LATEST_BUILD_KEY,
    TERMINAL_STATUSES,
    BuildRecord,
)
from deployer.lambdas.contracts import execution_input as state_machine_input
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

# Leave this much of the Lambda's time to report the result before it is stopped.
REPORT_MARGIN_MS = 15_000
# A re-run adds "-r9" at most (3), and the names of the training job, model and endpoint config add at
# most "-train-3" (8) to that, within SageMaker's 63 characters.
_EXECUTION_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,51}$")
FOLLOWED_STATUSES = frozenset({"RUNNING", "SUCCEEDED", "PENDING_REDRIVE"})
MAX_RERUNS = 9


@dataclass(frozen=True)
class Settings:
    state_machine_arn: str
    name_prefix: str
    data_bucket: str
    data_prefix: str
    artifact_bucket: str
    endpoint_name: str
    candidate_endpoint_name: str
    quality_threshold: float
    poll_seconds: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        names = (
            "STATE_MACHINE_ARN",
            "NAME_PREFIX",
            "DATA_BUCKET",
            "DATA_PREFIX",
            "ARTIFACT_BUCKET",
            "ENDPOINT_NAME",
            "CANDIDATE_ENDPOINT_NAME",
            "QUALITY_THRESHOLD",
        )
        require_env(environ, names)
        if environ["CANDIDATE_ENDPOINT_NAME"] == environ["ENDPOINT_NAME"]:
            raise RuntimeError("CANDIDATE_ENDPOINT_NAME must differ from ENDPOINT_NAME (the serving one)")
        try:
            threshold = float(environ["QUALITY_THRESHOLD"])
            poll = float(environ.get("POLL_SECONDS", "10"))
        except ValueError as error:
            raise RuntimeError(f"QUALITY_THRESHOLD and POLL_SECONDS must be numbers: {error}") from error
        return cls(
            state_machine_arn=environ["STATE_MACHINE_ARN"],
            name_prefix=environ["NAME_PREFIX"],
            data_bucket=environ["DATA_BUCKET"],
            data_prefix=environ["DATA_PREFIX"],
            artifact_bucket=environ["ARTIFACT_BUCKET"],
            endpoint_name=environ["ENDPOINT_NAME"],
            candidate_endpoint_name=environ["CANDIDATE_ENDPOINT_NAME"],
            quality_threshold=threshold,
            poll_seconds=poll,
        )


@dataclass(frozen=True)
class Clients:
    stepfunctions: Any
    s3: Any


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    if PipelineJob.is_job_event(event):
        reporter = CodePipelineReporter(boto3.client("codepipeline"))
        try:  # a Lambda action reports, never raises (see fail_unstarted_job)
            settings = Settings.from_env()
            clients = Clients(stepfunctions=boto3.client("stepfunctions"), s3=boto3.client("s3"))
            job = PipelineJob.from_event(event)
        except Exception as error:
            return fail_unstarted_job(event, reporter, error)
        return run_pipeline_action(job, settings, clients, reporter, context.get_remaining_time_in_millis)
    settings = Settings.from_env()
    clients = Clients(stepfunctions=boto3.client("stepfunctions"), s3=boto3.client("s3"))
    return start_for_new_data(event, settings, clients, context.get_remaining_time_in_millis)


def run_pipeline_action(
    job: PipelineJob,
    settings: Settings,
    clients: Clients,
    reporter: JobReporter,
    remaining_ms: Callable[[], int],
) -> dict[str, Any]:
    """Start (or follow) the execution for this job and report its result; never raises."""
    try:
        if job.continuation_token:
            execution_arn = job.continuation_token
        else:
            artifacts_s3 = _artifact_s3_client(job, clients.s3)
            record = job.read_artifact_file(artifacts_s3, None, BUILD_RECORD_FILE)
            build = BuildRecord.from_json(record)
            # New data retrains what the pipeline last sent to training.
            clients.s3.put_object(Bucket=settings.artifact_bucket, Key=LATEST_BUILD_KEY, Body=record)
            candidate = settings.candidate_endpoint_name
            execution_arn = start_execution(
                build, settings, clients, trigger="codepipeline", endpoint_name=candidate
            )
        execution = wait_for_execution(
            clients.stepfunctions, execution_arn, settings.poll_seconds, remaining_ms
        )
    # Broad on purpose: an action that raises leaves the pipeline waiting until it times out.
    except Exception as error:
        reporter.fail(job.id, f"could not start or follow the training execution: {error}")
        log.exception("start-training failed")
        return {"status": "FAILED", "reason": str(error)}
    status = execution["status"]
    if status == "RUNNING":
        reporter.succeed(job.id, summary=f"training runs: {execution_arn}", continuation_token=execution_arn)
        return {"status": "RUNNING", "executionArn": execution_arn}
    if status != "SUCCEEDED":
        reason = f"training execution {status}: {execution.get('error', '')}: {execution.get('cause', '')}"
        reporter.fail(job.id, f"{reason} ({execution_arn})")
        return {"status": status, "executionArn": execution_arn, "reason": reason}
    output = json.loads(execution.get("output") or "{}")
    variables = {
        "ExecutionArn": execution_arn,
        "EndpointName": str(output.get("EndpointName", settings.candidate_endpoint_name)),
        "EndpointConfigName": f"{execution['name']}-config",
        "ModelName": f"{execution['name']}-model",
        "Accuracy": _accuracy(output),
    }
    reporter.succeed(
        job.id,
        summary=f"model {variables['ModelName']} accuracy {variables['Accuracy']}",
        output_variables=variables,
    )
    return {"status": status, **variables}


def start_for_new_data(
    event: Mapping[str, Any],
    settings: Settings,
    clients: Clients,
    remaining_ms: Callable[[], int] = lambda: REPORT_MARGIN_MS,
) -> dict[str, Any]:
    """EventBridge S3 'Object Created': start a run on the last build with the new data."""
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        raise EventError("expected a CodePipeline job or an EventBridge S3 'Object Created' event")
    detail = event.get("detail") or {}
    bucket = (detail.get("bucket") or {}).get("name")
    key = (detail.get("object") or {}).get("key", "")
    if bucket != settings.data_bucket or not key.startswith(settings.data_prefix):
        log.info(json.dumps({"skipped": f"s3://{bucket}/{key} is not under the data prefix"}))
        return {"status": "SKIPPED", "reason": f"s3://{bucket}/{key} is not under the data prefix"}
    try:
        record = clients.s3.get_object(Bucket=settings.artifact_bucket, Key=LATEST_BUILD_KEY)["Body"].read()
    except ClientError as error:
        raise EventError(
            f"no build to train: s3://{settings.artifact_bucket}/{LATEST_BUILD_KEY} cannot be read "
            f"({error}); run the pipeline once first"
        ) from error
    build = BuildRecord.from_json(record)
    version = settled_data_version(
        clients.s3, settings.data_bucket, settings.data_prefix, settings.poll_seconds, remaining_ms
    )
    execution_arn = start_execution(
        build, settings, clients, trigger="s3", endpoint_name=settings.endpoint_name, version=version
    )
    return {"status": "STARTED", "executionArn": execution_arn}


def settled_data_version(
    s3: Any, bucket: str, prefix: str, quiet_seconds: float, remaining_ms: Callable[[], int]
) -> str:
    """The data version once it has not changed for `quiet_seconds` (or when the Lambda must return)."""
    version = data_version(s3, bucket, prefix)
    while remaining_ms() - quiet_seconds * 1000 >= REPORT_MARGIN_MS:
        time.sleep(quiet_seconds)
        latest = data_version(s3, bucket, prefix)
        if latest == version:
            break
        version = latest
    return version


def data_version(s3: Any, bucket: str, prefix: str) -> str:
    """A fingerprint of the data under the prefix: sha256 of every object's key, size and ETag."""
    digest = hashlib.sha256()
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            digest.update(f"{item['Key']}\0{item['Size']}\0{item['ETag']}\n".encode())
            count += 1
    if count == 0:
        raise EventError(f"no training data under s3://{bucket}/{prefix}")
    return digest.hexdigest()[:16]


def execution_input(
    build: BuildRecord, version: str, settings: Settings, trigger: str, endpoint_name: str
) -> dict[str, Any]:
    return state_machine_input(
        training_image=build.image_uri,
        training_data=f"s3://{settings.data_bucket}/{settings.data_prefix}",
        output_path=f"s3://{settings.artifact_bucket}/models/",
        hyperparameters=build.hyperparameters,
        quality_threshold=settings.quality_threshold,
        endpoint_name=endpoint_name,
        image_digest=build.image_digest,
        travelling={"CommitId": build.commit_id, "DataVersion": version, "Trigger": trigger},
    )


def execution_name(
    prefix: str, build: BuildRecord, version: str, threshold: float, endpoint_name: str
) -> str:
    # The endpoint is part of what an execution does: a pipeline run (candidate endpoint) never follows
    # a data-triggered run of the same build (serving endpoint), nor the other way round.
    what = json.dumps(
        [build.image_digest, build.hyperparameters, threshold, endpoint_name],
        sort_keys=True,
        separators=(",", ":"),
    )
    name = f"{prefix}-{build.commit_id[:8]}-{version[:8]}-{hashlib.sha256(what.encode()).hexdigest()[:8]}"
    if not _EXECUTION_NAME.match(name):
        raise EventError(f"execution name {name!r} is not valid for SageMaker resource names")
    return name


def start_execution(
    build: BuildRecord,
    settings: Settings,
    clients: Clients,
    trigger: str,
    endpoint_name: str,
    version: str | None = None,
) -> str:
    """Starts the execution that trains `build` on the current data and deploys it to `endpoint_name`
    (or finds the one that does already); its ARN."""
    version = version or data_version(clients.s3, settings.data_bucket, settings.data_prefix)
    base = execution_name(settings.name_prefix, build, version, settings.quality_threshold, endpoint_name)
    payload = json.dumps(execution_input(build, version, settings, trigger, endpoint_name), sort_keys=True)
    for attempt in range(1, MAX_RERUNS + 1):
        name = base if attempt == 1 else f"{base}-r{attempt}"
        try:
            started = clients.stepfunctions.start_execution(
                stateMachineArn=settings.state_machine_arn, name=name, input=payload
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            # Same name = same commit, data, image and hyperparameters: follow the run that exists,
            # unless it ended without success (then the next name runs it again).
            arn = settings.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
            status = clients.stepfunctions.describe_execution(executionArn=arn)["status"]
            if status in FOLLOWED_STATUSES:
                log.info(json.dumps({"following": arn, "status": status}))
                return arn
            log.info(json.dumps({"not_following": arn, "status": status}))
            continue
        log.info(json.dumps({"started": started["executionArn"], "trigger": trigger}))
        return str(started["executionArn"])
    raise EventError(f"{base} has run {MAX_RERUNS} times without success; change the inputs to run it again")


def wait_for_execution(
    stepfunctions: Any, execution_arn: str, poll_seconds: float, remaining_ms: Callable[[], int]
) -> dict[str, Any]:
    """Poll until the execution ends or the Lambda must report; the last description is returned."""
    while True:
        execution: dict[str, Any] = stepfunctions.describe_execution(executionArn=execution_arn)
        if execution["status"] in TERMINAL_STATUSES:
            return execution
        if remaining_ms() - poll_seconds * 1000 < REPORT_MARGIN_MS:
            return execution
        time.sleep(poll_seconds)


def _accuracy(output: Mapping[str, Any]) -> str:
    values = (output.get("TrainingJob") or {}).get("Accuracy") or []
    return str(values[0]) if values else ""


def _artifact_s3_client(job: PipelineJob, default: Any) -> Any:
    """On AWS, input artifacts are read with the job's own temporary credentials."""
    credentials = job.artifact_credentials
    if not credentials or not credentials.get("accessKeyId"):
        return default
    return boto3.client(
        "s3",
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=credentials.get("sessionToken"),
    )
