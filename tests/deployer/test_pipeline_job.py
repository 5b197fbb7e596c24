"""The CodePipeline job event view and the boto3 reporter.

moto 5.2.5 has no CodePipeline job API, so the reporter's requests are checked with botocore's Stubber,
which validates each request against the service's API model (names, types, required fields).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from deployer.lambdas.pipeline_job import MAX_FAILURE_MESSAGE, CodePipelineReporter, EventError, PipelineJob
from tests.deployer.conftest import load_event


def stubbed() -> tuple[CodePipelineReporter, Stubber]:
    client = boto3.client(
        "codepipeline", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.activate()
    return CodePipelineReporter(client), stubber


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


def test_success_sends_output_variables_or_a_continuation_token_never_both() -> None:
    reporter, stubber = stubbed()
    stubber.add_response(
        "put_job_success_result",
        {},
        {
            "jobId": "j1",
            "executionDetails": {"summary": "done"},
            "outputVariables": {"ExecutionArn": "arn:x"},
        },
    )
    stubber.add_response("put_job_success_result", {}, {"jobId": "j2", "continuationToken": "arn:x"})
    reporter.succeed("j1", summary="done", output_variables={"ExecutionArn": "arn:x"})
    reporter.succeed("j2", output_variables={"ignored": "yes"}, continuation_token="arn:x")
    stubber.assert_no_pending_responses()


def test_failure_is_a_job_failed_with_a_bounded_message() -> None:
    reporter, stubber = stubbed()
    message = "x" * (MAX_FAILURE_MESSAGE + 10)
    stubber.add_response(
        "put_job_failure_result",
        {},
        {"jobId": "j3", "failureDetails": {"type": "JobFailed", "message": "x" * MAX_FAILURE_MESSAGE}},
    )
    reporter.fail("j3", message)
    stubber.assert_no_pending_responses()
