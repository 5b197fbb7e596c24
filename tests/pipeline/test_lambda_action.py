"""The Lambda invoke action against the emulator's real CodePipeline job API.

The functions are local Python callables standing in for deployed Lambdas (they get the job event and
answer through the emulator's job API with boto3, exactly as a deployed function does); the Lambda
runtime itself is tested by its own package.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deployer.lambdas.pipeline_job import PipelineJob
from harness.emulator import ACCOUNT_ID, EmbeddedEmulator
from harness.pipeline.artifacts import ArtifactRef
from harness.pipeline.definition import Action, ActionType, Pipeline, Stage
from harness.pipeline.lambda_action import EmulatorJobBoard, LambdaInvokeExecutor
from harness.pipeline.model import ActionContext, ActionFailed


def _context(tmp_path: Path, configuration: dict[str, str], progress: list[str]) -> ActionContext:
    action = Action("Invoke", ActionType("Invoke", "AWS", "Lambda"), configuration)
    pipeline = Pipeline("p", (Stage("S", (action,)),), "bucket")
    source = ArtifactRef("In", tmp_path / "in.zip", "bucket", "p/In/abc", "c0ffee")
    return ActionContext(
        pipeline, "exec-1", "S", action, configuration, (source,), tmp_path, None, {}, progress.append
    )


def _executor(
    emulator: EmbeddedEmulator, function: Callable[[dict[str, Any]], None], **options: Any
) -> LambdaInvokeExecutor:
    def invoke(name: str, event: dict[str, Any]) -> None:
        assert name == "fn"
        function(event)

    return LambdaInvokeExecutor(EmulatorJobBoard(ACCOUNT_ID, emulator.region), invoke, **options)


def test_continuation_tokens_reinvoke_until_success(emulator: EmbeddedEmulator, tmp_path: Path) -> None:
    codepipeline = emulator.client("codepipeline")
    tokens: list[str | None] = []

    def function(event: dict[str, Any]) -> None:
        job = PipelineJob.from_event(event)
        tokens.append(job.continuation_token)
        assert job.user_parameters == {"a": 1}
        assert job.input_artifacts[0].key == "p/In/abc"
        if len(tokens) < 3:
            codepipeline.put_job_success_result(
                jobId=job.id, continuationToken=f"t{len(tokens)}", executionDetails={"summary": "still going"}
            )
        else:
            codepipeline.put_job_success_result(
                jobId=job.id,
                outputVariables={"Result": "done"},
                executionDetails={"summary": "finished", "externalExecutionId": "ext-1"},
            )

    progress: list[str] = []
    output = _executor(emulator, function)(
        _context(tmp_path, {"FunctionName": "fn", "UserParameters": '{"a": 1}'}, progress)
    )

    assert tokens == [None, "t1", "t2"]
    assert output.variables == {"Result": "done"}
    assert output.summary == "finished" and output.external_execution_id == "ext-1"
    assert progress.count("still going") == 2


def test_a_reported_failure_fails_the_action(emulator: EmbeddedEmulator, tmp_path: Path) -> None:
    codepipeline = emulator.client("codepipeline")

    def function(event: dict[str, Any]) -> None:
        job_id = event["CodePipeline.job"]["id"]
        codepipeline.put_job_failure_result(
            jobId=job_id, failureDetails={"type": "JobFailed", "message": "training execution FAILED"}
        )

    with pytest.raises(ActionFailed, match="training execution FAILED"):
        _executor(emulator, function)(_context(tmp_path, {"FunctionName": "fn"}, []))


# A function that raises (Lambda's asynchronous retries) is a conformance test:
# tests/conformance/test_codepipeline_lambda.py.


def test_a_function_that_never_reports_fails_after_the_timeout(
    emulator: EmbeddedEmulator, tmp_path: Path
) -> None:
    with pytest.raises(ActionFailed, match="failed to return a result"):
        _executor(emulator, lambda event: None, report_timeout_s=0.3)(
            _context(tmp_path, {"FunctionName": "fn"}, [])
        )


def test_function_name_is_required(emulator: EmbeddedEmulator, tmp_path: Path) -> None:
    with pytest.raises(ActionFailed, match="needs FunctionName"):
        _executor(emulator, lambda event: None)(_context(tmp_path, {}, []))


HANDLER = """
import os
import boto3

def handler(event, context):
    job = event["CodePipeline.job"]
    token = job["data"].get("continuationToken")
    client = boto3.client("codepipeline")
    if token is None:
        client.put_job_success_result(jobId=job["id"], continuationToken="again")
    elif job["data"]["actionConfiguration"]["configuration"].get("UserParameters") == "fail":
        failure = {"type": "JobFailed", "message": "told to fail"}
        client.put_job_failure_result(jobId=job["id"], failureDetails=failure)
    else:
        client.put_job_success_result(
            jobId=job["id"], outputVariables={"Seen": token, "Function": context.function_name}
        )
    return {"ok": True}
"""


def test_a_real_lambda_function_through_the_emulators_runtime(
    emulator: EmbeddedEmulator, tmp_path: Path
) -> None:
    """The function is deployed to the emulator and run by the harness's Lambda runtime (a real process)."""
    import io
    import json as json_module
    import zipfile

    from harness.pipeline.lambda_action import boto3_invoker, invoke_client

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as opened:
        opened.writestr("app.py", HANDLER)
    iam = emulator.client("iam")
    role = iam.create_role(
        RoleName="pipeline-fn",
        AssumeRolePolicyDocument=json_module.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    # The job API has no resource-level permissions (as platform.yaml grants it to its Lambda roles).
    job_api = {"Effect": "Allow", "Action": "codepipeline:PutJob*", "Resource": "*"}
    iam.put_role_policy(
        RoleName="pipeline-fn",
        PolicyName="job-api",
        PolicyDocument=json_module.dumps({"Version": "2012-10-17", "Statement": [job_api]}),
    )
    lambda_client = emulator.client("lambda")
    lambda_client.create_function(
        FunctionName="fn",
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": archive.getvalue()},
        Timeout=30,
    )
    board = EmulatorJobBoard(ACCOUNT_ID, emulator.region)
    executor = LambdaInvokeExecutor(
        board, boto3_invoker(invoke_client(emulator.session(), emulator.endpoint_url)), report_timeout_s=30
    )

    output = executor(_context(tmp_path, {"FunctionName": "fn"}, []))
    assert output.variables == {"Seen": "again", "Function": "fn"}
    with pytest.raises(ActionFailed, match="told to fail"):
        executor(_context(tmp_path, {"FunctionName": "fn", "UserParameters": "fail"}, []))
