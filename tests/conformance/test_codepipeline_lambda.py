"""CodePipeline's Lambda invoke action: how the function is invoked and how the action learns its result
(CodePipeline User Guide, Lambda Developer Guide, CodePipeline quotas)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deployer.lambdas import publish_api, register_model, start_training
from deployer.lambdas.pipeline_job import PipelineJob
from harness.emulator import ACCOUNT_ID
from harness.pipeline.artifacts import ArtifactRef
from harness.pipeline.definition import Action, ActionType, Pipeline, Stage
from harness.pipeline.lambda_action import (
    ASYNC_RETRIES,
    EmulatorJobBoard,
    FunctionError,
    LambdaInvokeExecutor,
)
from harness.pipeline.model import ActionContext, ActionFailed
from tests.deployer.conftest import LambdaContext
from tests.harness.planes import Harness

TYPE_ID = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}


def _context(tmp_path: Path, progress: list[str]) -> ActionContext:
    configuration = {"FunctionName": "fn"}
    action = Action("Invoke", ActionType("Invoke", "AWS", "Lambda"), configuration)
    pipeline = Pipeline("p", (Stage("S", (action,)),), "bucket")
    source = ArtifactRef("In", tmp_path / "in.zip", "bucket", "p/In/abc", "c0ffee")
    return ActionContext(
        pipeline, "exec-1", "S", action, configuration, (source,), tmp_path, None, {}, progress.append
    )


def _executor(
    harness: Harness, function: Callable[[dict[str, Any]], None], **options: Any
) -> LambdaInvokeExecutor:
    board = EmulatorJobBoard(ACCOUNT_ID, harness.emulator.region)
    return LambdaInvokeExecutor(board, lambda name, event: function(event), **options)


def test_a_function_that_raises_is_retried_twice_then_the_action_waits_for_its_timeout(
    conformance_harness: Harness, tmp_path: Path
) -> None:
    """CodePipeline User Guide, "Invoke an AWS Lambda function in a pipeline": CodePipeline invokes the
    function asynchronously and learns the result only from PutJobSuccessResult/PutJobFailureResult.
    Lambda Developer Guide, "Asynchronous invocation": a function error is retried twice (three tries).
    CodePipeline quotas: an action that gets no result fails when its timeout passes (20 minutes for a
    Lambda action), with "The AWS Lambda function ... failed to return a result"."""
    calls: list[str] = []

    def function(event: dict[str, Any]) -> None:
        calls.append(PipelineJob.from_event(event).id)
        raise FunctionError("KeyError: 'STATE_MACHINE_ARN'")

    progress: list[str] = []
    with pytest.raises(ActionFailed, match="failed to return a result") as failed:
        _executor(conformance_harness, function, report_timeout_s=0.3)(_context(tmp_path, progress))
    assert len(calls) == 1 + ASYNC_RETRIES == 3
    assert len(set(calls)) == 1  # the same job each time
    assert "KeyError: 'STATE_MACHINE_ARN'" in str(failed.value)


def test_a_function_that_raises_once_and_then_reports_succeeds(
    conformance_harness: Harness, tmp_path: Path
) -> None:
    """Lambda Developer Guide, "Asynchronous invocation": the retry runs the function again with the same
    event; CodePipeline takes the result the retry reports."""
    codepipeline = conformance_harness.client("codepipeline")
    calls: list[str] = []

    def function(event: dict[str, Any]) -> None:
        job = PipelineJob.from_event(event)
        calls.append(job.id)
        if len(calls) == 1:
            raise FunctionError("a passing failure")
        codepipeline.put_job_success_result(jobId=job.id, executionDetails={"summary": "second try"})

    output = _executor(conformance_harness, function, report_timeout_s=5)(_context(tmp_path, []))
    assert output.summary == "second try" and len(calls) == 2


@pytest.mark.parametrize("module", [start_training, publish_api, register_model], ids=lambda m: m.__name__)
def test_a_handler_without_its_settings_reports_the_job_as_failed(
    conformance_harness: Harness, monkeypatch: pytest.MonkeyPatch, module: Any
) -> None:
    """Same sources: a handler that raises leaves the action waiting for CodePipeline's timeout, so each
    action handler reads its settings and its job inside the part that reports, and a missing setting
    reaches CodePipeline as PutJobFailureResult at once."""
    emulator = conformance_harness.emulator
    board = EmulatorJobBoard(ACCOUNT_ID, emulator.region)
    job_id = board.create_job(TYPE_ID, {"actionConfiguration": {"configuration": {"FunctionName": "fn"}}})
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", emulator.region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("STATE_MACHINE_ARN", "PROJECT_NAME", "REGISTRY_TABLE", "ENDPOINT_NAME"):
        monkeypatch.delenv(name, raising=False)
    result = module.handler(board.event(job_id), LambdaContext())
    assert result["status"] == "FAILED"
    outcome = board.wait(job_id, 5)
    assert outcome is not None and not outcome.succeeded
    assert outcome.failure_message is not None and "the action could not start" in outcome.failure_message
