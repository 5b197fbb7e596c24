"""The CodePipeline job API seam: Lambda actions and custom workers report as on AWS."""

from __future__ import annotations

import inspect
import json

import pytest
import requests

import harness.seams as harness_seams
from harness.emulator import ACCOUNT_ID, REGION, EmbeddedEmulator
from harness.lambda_runtime import zip_sources
from harness.seams import codepipeline
from tests.harness.pipelines import create_pipeline
from tests.harness.roles import service_role

# A real Lambda action in the shape AWS documents: it reads the job, and reports success (with a
# continuation token on the first pass) or failure through the job API.
ACTION_HANDLER = """
import json, boto3

def handler(event, context):
    job = event["CodePipeline.job"]
    pipeline = boto3.client("codepipeline")
    config = json.loads(job["data"]["actionConfiguration"]["configuration"]["UserParameters"])
    if config.get("fail"):
        pipeline.put_job_failure_result(jobId=job["id"], failureDetails={
            "type": "JobFailed", "message": "the action failed on purpose",
            "externalExecutionId": context.aws_request_id})
        return "failed"
    if "continuationToken" not in job["data"]:
        pipeline.put_job_success_result(jobId=job["id"], continuationToken="poll-again",
            executionDetails={"summary": "started", "percentComplete": 50})
        return "continue"
    token = job["data"]["continuationToken"]
    pipeline.put_job_success_result(jobId=job["id"], outputVariables={"token": token},
        executionDetails={"summary": "done", "percentComplete": 100})
    return "done"
"""
LAMBDA_ACTION = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}
CUSTOM_ACTION = {"category": "Build", "owner": "Custom", "provider": "HarnessWorker", "version": "1"}


@pytest.fixture(scope="module")
def action_function(emulator: EmbeddedEmulator) -> str:
    role = service_role(emulator, "action-role")
    emulator.client("lambda").create_function(
        FunctionName="pipeline-action",
        Runtime="python3.11",
        Role=role["Role"]["Arn"],
        Handler="app.handler",
        Code={"ZipFile": zip_sources({"app.py": ACTION_HANDLER})},
        Timeout=10,
    )
    return "pipeline-action"


def job_data(user_parameters: dict[str, object], token: str | None = None) -> dict[str, object]:
    data: dict[str, object] = {
        "actionConfiguration": {
            "configuration": {
                "FunctionName": "pipeline-action",
                "UserParameters": json.dumps(user_parameters),
            }
        },
        "pipelineContext": {
            "pipelineName": "p",
            "stage": {"name": "Train"},
            "action": {"name": "StartTraining"},
        },
        "inputArtifacts": [],
        "outputArtifacts": [],
    }
    if token is not None:
        data["continuationToken"] = token
    return data


def run_lambda_job(emulator: EmbeddedEmulator, function: str, data: dict[str, object]) -> codepipeline.Job:
    job = codepipeline.create_job(ACCOUNT_ID, REGION, LAMBDA_ACTION, data, dispatched_to_lambda=True)
    assert job.status == "InProgress"
    answer = emulator.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(codepipeline.lambda_event(job)).encode()
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    return codepipeline.wait_for_result(ACCOUNT_ID, REGION, job.id, timeout_s=10)


def test_lambda_action_with_continuation(emulator: EmbeddedEmulator, action_function: str) -> None:
    first = run_lambda_job(emulator, action_function, job_data({}))
    assert first.status == "Succeeded"
    assert first.result is not None
    assert first.result.continuation_token == "poll-again"
    assert first.result.execution_details == {"summary": "started", "percentComplete": 50}
    # CodePipeline runs the action again with the token; this time it finishes.
    second = run_lambda_job(emulator, action_function, job_data({}, token=first.result.continuation_token))
    assert second.result is not None
    assert second.result.continuation_token is None
    assert second.result.output_variables == {"token": "poll-again"}


def test_lambda_action_failure(emulator: EmbeddedEmulator, action_function: str) -> None:
    job = run_lambda_job(emulator, action_function, job_data({"fail": True}))
    assert job.status == "Failed"
    assert job.result is not None
    assert (job.result.failure_type, job.result.failure_message) == (
        "JobFailed",
        "the action failed on purpose",
    )
    assert job.result.external_execution_id


def test_run_lambda_action_follows_continuations(emulator: EmbeddedEmulator, action_function: str) -> None:
    run = codepipeline.run_lambda_action(ACCOUNT_ID, REGION, action_function, job_data({}))
    assert run.succeeded
    assert len(run.jobs) == 2
    assert "continuationToken" not in run.jobs[0].data
    assert run.jobs[1].data["continuationToken"] == "poll-again"
    assert run.final.result is not None
    assert run.final.result.output_variables == {"token": "poll-again"}


def test_run_lambda_action_reports_the_functions_failure(
    emulator: EmbeddedEmulator, action_function: str
) -> None:
    reported = codepipeline.run_lambda_action(ACCOUNT_ID, REGION, action_function, job_data({"fail": True}))
    assert not reported.succeeded
    assert reported.final.result is not None
    assert reported.final.result.failure_message == "the action failed on purpose"
    # UserParameters that are not JSON make the handler raise before it reports anything.
    broken = job_data({})
    broken["actionConfiguration"] = {"configuration": {"UserParameters": "{not json"}}
    crashed = codepipeline.run_lambda_action(ACCOUNT_ID, REGION, action_function, broken)
    assert not crashed.succeeded
    assert crashed.final.result is not None
    message = crashed.final.result.failure_message or ""
    assert message.startswith(f"the Lambda {action_function} failed: JSONDecodeError")


def test_custom_worker_round_trip(emulator: EmbeddedEmulator) -> None:
    client = emulator.client("codepipeline")
    job = codepipeline.create_job(ACCOUNT_ID, REGION, CUSTOM_ACTION, job_data({"n": 1}))
    other_type = dict(CUSTOM_ACTION, provider="SomeoneElse")
    assert client.poll_for_jobs(actionTypeId=other_type)["jobs"] == []
    polled = client.poll_for_jobs(actionTypeId=CUSTOM_ACTION, maxBatchSize=5)["jobs"]
    assert [j["id"] for j in polled] == [job.id]
    assert polled[0]["data"]["pipelineContext"]["stage"]["name"] == "Train"
    assert client.poll_for_jobs(actionTypeId=CUSTOM_ACTION)["jobs"] == [], (
        "a dispatched job is not polled twice"
    )
    with pytest.raises(client.exceptions.InvalidNonceException):
        client.acknowledge_job(jobId=job.id, nonce="wrong")
    assert client.acknowledge_job(jobId=job.id, nonce=polled[0]["nonce"])["status"] == "InProgress"
    details = client.get_job_details(jobId=job.id)["jobDetails"]
    assert details["id"] == job.id and details["accountId"] == ACCOUNT_ID
    client.put_job_success_result(jobId=job.id, currentRevision={"revision": "abc", "changeIdentifier": "c1"})
    assert codepipeline.get_job(ACCOUNT_ID, REGION, job.id).status == "Succeeded"
    with pytest.raises(client.exceptions.InvalidJobStateException):
        client.put_job_failure_result(jobId=job.id, failureDetails={"type": "JobFailed", "message": "late"})
    with pytest.raises(client.exceptions.ValidationException):
        client.put_job_failure_result(jobId=job.id, failureDetails={"type": "Oops", "message": "bad type"})


def test_unknown_job_and_bad_input(emulator: EmbeddedEmulator) -> None:
    client = emulator.client("codepipeline")
    with pytest.raises(client.exceptions.JobNotFoundException):
        client.get_job_details(jobId="00000000-0000-0000-0000-000000000000")
    with pytest.raises(client.exceptions.JobNotFoundException):
        client.put_job_success_result(jobId="00000000-0000-0000-0000-000000000000")
    with pytest.raises(ValueError, match="actionTypeId lacks"):
        codepipeline.create_job(ACCOUNT_ID, REGION, {"category": "Invoke"}, {})


def test_wait_times_out(emulator: EmbeddedEmulator) -> None:
    job = codepipeline.create_job(ACCOUNT_ID, REGION, CUSTOM_ACTION, job_data({}))
    with pytest.raises(TimeoutError, match="got no result"):
        codepipeline.wait_for_result(ACCOUNT_ID, REGION, job.id, timeout_s=0.2)


def test_jobs_are_cleared_with_moto_state(emulator: EmbeddedEmulator) -> None:
    job = codepipeline.create_job(ACCOUNT_ID, REGION, CUSTOM_ACTION, job_data({}))
    requests.post(f"{emulator.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
    with pytest.raises(codepipeline.JobNotFoundException):
        codepipeline.get_job(ACCOUNT_ID, REGION, job.id)


def test_seam_is_installed_and_moto_still_lacks_the_job_api() -> None:
    """Fails loudly when moto moves, or implements these operations itself (then drop the seam)."""
    harness_seams.install()  # idempotent: this test may run on its own
    from moto.codepipeline import models, responses
    from moto.core.responses import BaseResponse

    for name, method in codepipeline.API_METHODS.items():
        assert getattr(responses.CodePipelineResponse, name) is method
    assert "harness_jobs" not in inspect.getsource(models)
    for name in codepipeline.API_METHODS:
        assert f"def {name}" not in inspect.getsource(models), f"moto now has {name}"
    # moto still dispatches X-Amz-Target actions to snake_case response methods.
    assert "camelcase_to_underscores(self._get_action())" in inspect.getsource(BaseResponse.call_action)


# -- StartPipelineExecution ----------------------------------------------------------------------------
def test_start_pipeline_execution_reaches_the_registered_runner(emulator: EmbeddedEmulator) -> None:
    """CodePipeline API reference, StartPipelineExecution (returns pipelineExecutionId; an unknown name
    is PipelineNotFoundException) and ExecutionTrigger (triggerType's valid values)."""
    create_pipeline(emulator, "started")
    client = emulator.client("codepipeline")
    # No runner registered: moto's own answer (an execution it records and never runs).
    assert client.start_pipeline_execution(name="started")["pipelineExecutionId"]
    calls: list[tuple[str, dict[str, str]]] = []

    def start(execution_id: str, trigger: dict[str, str]) -> None:
        calls.append((execution_id, trigger))

    starts = codepipeline.pipeline_starts(ACCOUNT_ID, REGION)
    starts.register("started", start)
    try:
        execution_id = client.start_pipeline_execution(name="started")["pipelineExecutionId"]
        assert calls == [(execution_id, {"triggerType": "StartPipelineExecution", "triggerDetail": ""})]
        rule = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/r"
        on_behalf = codepipeline.start_pipeline_as(
            None,
            f"arn:aws:codepipeline:{REGION}:{ACCOUNT_ID}:started",
            {"triggerType": "CloudWatchEvent", "triggerDetail": rule},
            emulator.endpoint_url,
        )
        assert calls[-1] == (on_behalf, {"triggerType": "CloudWatchEvent", "triggerDetail": rule})
        with pytest.raises(client.exceptions.PipelineNotFoundException):
            client.start_pipeline_execution(name="no-such-pipeline")
        # The pipeline exists and has not run in the runner: its stages, with no latest execution.
        state = client.get_pipeline_state(name="started")
        assert [stage["stageName"] for stage in state["stageStates"]] == ["One", "Two"]
        assert all("latestExecution" not in stage for stage in state["stageStates"])
        assert state["pipelineVersion"] == 1
        with pytest.raises(ValueError, match="not a CodePipeline pipeline ARN"):
            codepipeline.start_pipeline_as(None, "arn:aws:s3:::bucket", {}, emulator.endpoint_url)
    finally:
        starts.unregister("started", start)
    assert starts.get("started") is None
