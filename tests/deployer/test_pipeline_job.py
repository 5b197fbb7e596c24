"""The CodePipeline job event view, and the boto3 reporter against the emulator's job API.

The job API (PutJobSuccessResult, PutJobFailureResult) is the harness's CodePipeline seam
(harness/seams/codepipeline.py; moto alone answers 500): each test makes a job as CodePipeline does
for a Lambda action, reports through `CodePipelineReporter` with a real boto3 client (which validates
the request against the API's model) and reads what the emulator recorded for that job.
"""

from __future__ import annotations

import pytest

from deployer.lambdas.pipeline_job import MAX_FAILURE_MESSAGE, CodePipelineReporter, EventError, PipelineJob
from harness.emulator import ACCOUNT_ID, EmbeddedEmulator
from harness.seams import codepipeline
from tests.deployer.conftest import load_event


def lambda_job(emulator: EmbeddedEmulator) -> str:
    """A job handed to a Lambda action (InProgress, as CodePipeline hands it); its id."""
    data = load_event("codepipeline_job")["CodePipeline.job"]["data"]
    job = codepipeline.create_job(
        ACCOUNT_ID, emulator.region, codepipeline.LAMBDA_INVOKE_ACTION, data, dispatched_to_lambda=True
    )
    return job.id


def reported(emulator: EmbeddedEmulator, job_id: str) -> codepipeline.Job:
    job = codepipeline.get_job(ACCOUNT_ID, emulator.region, job_id)
    assert job.result is not None, f"job {job_id} got no result"
    return job


def test_the_sample_job_event_parses() -> None:
    job = PipelineJob.from_event(load_event("codepipeline_job"))
    assert job.id == "c0d9e8f7-1a2b-4c3d-9e8f-7a6b5c4d3e2f"
    assert job.user_parameters == {}
    assert job.continuation_token is None
    [artifact] = job.input_artifacts
    assert artifact.name == "BuildOutput" and artifact.key == "gptneo-intent-pipel/BuildOutpu/Xk3mQ9a"
    register = PipelineJob.from_event(load_event("codepipeline_job_register"))
    assert register.user_parameters["ExecutionArn"].startswith("arn:aws:states:")


def test_bad_user_parameters_are_rejected() -> None:
    event = load_event("codepipeline_job")
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = "{not json"
    with pytest.raises(EventError, match="UserParameters is not JSON"):
        PipelineJob.from_event(event)
    with pytest.raises(EventError, match="not a CodePipeline job event"):
        PipelineJob.from_event({"CodePipeline.job": {}})


def test_success_sends_output_variables_or_a_continuation_token_never_both(
    emulator: EmbeddedEmulator,
) -> None:
    reporter = CodePipelineReporter(emulator.client("codepipeline"))
    done, later = lambda_job(emulator), lambda_job(emulator)
    reporter.succeed(done, summary="done", output_variables={"ExecutionArn": "arn:x"})
    reporter.succeed(later, output_variables={"ignored": "yes"}, continuation_token="arn:x")

    first = reported(emulator, done)
    assert first.status == "Succeeded" and first.result is not None
    assert first.result.execution_details == {"summary": "done"}
    assert first.result.output_variables == {"ExecutionArn": "arn:x"}
    assert first.result.continuation_token is None
    second = reported(emulator, later)
    assert second.status == "Succeeded" and second.result is not None
    assert second.result.continuation_token == "arn:x"
    assert second.result.output_variables is None and second.result.execution_details is None


def test_failure_is_a_job_failed_with_a_bounded_message(emulator: EmbeddedEmulator) -> None:
    reporter = CodePipelineReporter(emulator.client("codepipeline"))
    job_id = lambda_job(emulator)
    reporter.fail(job_id, "x" * (MAX_FAILURE_MESSAGE + 10))
    job = reported(emulator, job_id)
    assert job.status == "Failed" and job.result is not None
    assert job.result.failure_type == "JobFailed"
    assert job.result.failure_message == "x" * MAX_FAILURE_MESSAGE
