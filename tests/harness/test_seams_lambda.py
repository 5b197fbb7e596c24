"""The Lambda seam: moto's Lambda runs real handlers, for every trigger path AWS has."""

from __future__ import annotations

import base64
import inspect
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

import harness.seams as harness_seams
from harness.emulator import EmbeddedEmulator
from harness.lambda_runtime import zip_sources
from harness.seams import awslambda
from tests.harness.roles import service_role

HANDLER = """
import json, os, time, boto3

def handler(event, context):
    print("event", json.dumps(event, sort_keys=True))
    if isinstance(event, dict) and event.get("fail"):
        raise RuntimeError("asked to fail")
    if isinstance(event, dict) and "Records" in event:
        key = event["Records"][0]["s3"]["object"]["key"]
        event = {"marker": "seen/" + key}
    if isinstance(event, dict) and event.get("marker"):
        # Proves the handler's boto3 reaches the emulator (AWS_ENDPOINT_URL) with the fake credentials.
        s3 = boto3.client("s3")
        s3.put_object(Bucket=os.environ["BUCKET"], Key=event["marker"], Body=context.aws_request_id)
    if isinstance(event, dict) and event.get("sleep"):
        time.sleep(event["sleep"])
    remaining = context.get_remaining_time_in_millis()
    return {"echo": event, "function": context.function_name, "remaining": remaining}
"""
BUCKET = "lambda-seam-bucket"


@pytest.fixture(scope="module", autouse=True)
def bucket(emulator: EmbeddedEmulator) -> str:
    emulator.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture(scope="module")
def function(emulator: EmbeddedEmulator) -> str:
    role = service_role(emulator, "lambda-seam-role")
    emulator.client("lambda").create_function(
        FunctionName="seam-probe",
        Runtime="python3.11",
        Role=role["Role"]["Arn"],
        Handler="app.handler",
        Code={"ZipFile": zip_sources({"app.py": HANDLER})},
        Timeout=2,
        Environment={"Variables": {"BUCKET": BUCKET}},
    )
    return "seam-probe"


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"nothing happened within {timeout_s} s")


def object_body(emulator: EmbeddedEmulator, key: str) -> str | None:
    s3 = emulator.client("s3")
    try:
        return str(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode())
    except s3.exceptions.NoSuchKey:
        return None


def test_request_response_runs_the_handler(emulator: EmbeddedEmulator, function: str) -> None:
    answer = emulator.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"marker": "direct"}).encode(), LogType="Tail"
    )
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    result = json.loads(answer["Payload"].read())
    assert result["echo"] == {"marker": "direct"}
    assert result["function"] == function
    assert 0 < result["remaining"] <= 2000
    request_id = object_body(emulator, "direct")
    assert request_id
    log = base64.b64decode(answer["LogResult"]).decode()
    assert log.startswith(f"START RequestId: {request_id}")
    assert 'event {"marker": "direct"}' in log

    logs = emulator.client("logs")
    streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{function}")["logStreams"]
    messages = [
        event["message"]
        for stream in streams
        for event in logs.get_log_events(
            logGroupName=f"/aws/lambda/{function}", logStreamName=stream["logStreamName"]
        )["events"]
    ]
    assert f"END RequestId: {request_id}" in messages


def test_no_log_result_unless_asked(emulator: EmbeddedEmulator, function: str) -> None:
    answer = emulator.client("lambda").invoke(FunctionName=function, Payload=b"{}")
    assert "LogResult" not in answer


def test_unhandled_error(emulator: EmbeddedEmulator, function: str) -> None:
    answer = emulator.client("lambda").invoke(FunctionName=function, Payload=b'{"fail": true}')
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "asked to fail"
    assert error["stackTrace"]


def test_timeout(emulator: EmbeddedEmulator, function: str) -> None:
    answer = emulator.client("lambda").invoke(FunctionName=function, Payload=b'{"sleep": 5}')
    assert answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 2.00 seconds")


def test_event_invocation_returns_at_once_and_runs(emulator: EmbeddedEmulator, function: str) -> None:
    started = time.monotonic()
    answer = emulator.client("lambda").invoke(
        FunctionName=function,
        InvocationType="Event",
        Payload=json.dumps({"marker": "async", "sleep": 5}).encode(),
    )
    assert answer["StatusCode"] == 202
    # The handler writes its marker, then sleeps into its 2 s timeout: a caller that waited for it would
    # wait 2 s at least (the bound is that, not a speed goal: a loaded CI machine took 1.7 s to answer).
    assert time.monotonic() - started < 2.0, "an Event invoke must not wait for the handler"
    assert wait_for(lambda: object_body(emulator, "async"))


def test_malformed_payload_is_a_client_error(emulator: EmbeddedEmulator, function: str) -> None:
    client = emulator.client("lambda")
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName=function, Payload=b"{not json")


def test_step_functions_lambda_task(emulator: EmbeddedEmulator, function: str) -> None:
    arn = emulator.client("lambda").get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    definition = {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }
    sfn = emulator.client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/sfn"
    machine = sfn.create_state_machine(name="lambda-task", definition=json.dumps(definition), roleArn=role)
    good = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], name="good", input=json.dumps({"marker": "from-sfn"})
    )
    bad = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="bad", input='{"fail": true}')

    def finished(execution_arn: str) -> dict[str, Any] | None:
        described = sfn.describe_execution(executionArn=execution_arn)
        return None if described["status"] == "RUNNING" else dict(described)

    done = wait_for(lambda: finished(good["executionArn"]))
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"])["echo"] == {"marker": "from-sfn"}
    assert object_body(emulator, "from-sfn")
    failed = wait_for(lambda: finished(bad["executionArn"]))
    assert failed["status"] == "FAILED"
    assert failed["error"] == "RuntimeError"


def test_s3_notification_invokes_the_function(emulator: EmbeddedEmulator, function: str) -> None:
    s3 = emulator.client("s3")
    arn = emulator.client("lambda").get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    s3.create_bucket(Bucket="notifying-bucket")
    s3.put_bucket_notification_configuration(
        Bucket="notifying-bucket",
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    s3.put_object(Bucket="notifying-bucket", Key="incoming.csv", Body=b"a,b\n")
    assert wait_for(lambda: object_body(emulator, "seen/incoming.csv"))


def test_seam_is_installed_and_moto_still_routes_through_invoke() -> None:
    """Fails loudly when moto changes the code paths this seam relies on."""
    harness_seams.install()  # idempotent: this test may run on its own
    from moto.awslambda import models
    from moto.s3 import notifications

    assert models.LambdaFunction.invoke is awslambda._invoke
    assert models.LambdaFunction._invoke_lambda is awslambda._invoke_lambda
    # The backend's invoke (API, EventBridge, Step Functions) and S3's notifier call LambdaFunction.invoke.
    assert "fn.invoke(body, headers, response_headers)" in inspect.getsource(models.LambdaBackend.invoke)
    s3_invoke = getattr(notifications._invoke_awslambda, "__wrapped__", notifications._invoke_awslambda)
    assert "func.invoke(" in inspect.getsource(s3_invoke)
    # The attributes the seam reads from moto's function.
    source = inspect.getsource(models.LambdaFunction)
    for attribute in ("code_bytes", "environment_vars", "timeout", "memory_size", "handler", "run_time"):
        assert f"self.{attribute} =" in source or f"self.{attribute}," in source, attribute
