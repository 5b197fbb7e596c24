"""register-model against the emulator: a real succeeded execution, the registry table, conditional writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from deployer.lambdas import register_model
from deployer.lambdas.pipeline_job import EventError, PipelineJob
from harness.emulator import REGION, EmbeddedEmulator
from tests.deployer.conftest import (
    PROJECT,
    LambdaContext,
    RecordingReporter,
    load_event,
    training_machine,
    training_result,
    wait_execution,
)

INPUT = {
    "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/dtest@sha256:" + "7c" * 32,
    "TrainingData": "s3://data/data/intents/",
    "OutputPath": "s3://artifacts/models/",
    "Hyperparameters": {"epochs": "8", "model_preset": "tiny"},
    "QualityThreshold": 0.85,
    # The pipeline's runs deploy to the candidate endpoint; the registry names the serving one.
    "EndpointName": "rm-endpoint-candidate",
    "CommitId": "1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e",
    "DataVersion": "0f1e2d3c4b5a6978",
    "ImageDigest": "sha256:" + "7c" * 32,
    "Trigger": "codepipeline",
}


@pytest.fixture(scope="module")
def executions(emulator: EmbeddedEmulator, platform: dict[str, str]) -> dict[str, str]:
    """One succeeded and one failed run of the deployed state machine (Train replaced, see conftest)."""
    stepfunctions = emulator.client("stepfunctions")
    good = training_machine(emulator, platform, "rm-good", training_result(0.91))
    poor = training_machine(emulator, platform, "rm-poor", training_result(0.2))
    arns = {}
    for label, machine in (("good", good), ("poor", poor)):
        arn = stepfunctions.start_execution(
            stateMachineArn=machine, name=f"{PROJECT}-rm-{label}", input=json.dumps(INPUT)
        )["executionArn"]
        assert wait_execution(emulator, arn)["status"] == ("SUCCEEDED" if label == "good" else "FAILED")
        arns[label] = arn
    return arns


@pytest.fixture
def handler_env(aws_env: None, monkeypatch: pytest.MonkeyPatch, platform: dict[str, str]) -> None:
    monkeypatch.setenv("REGISTRY_TABLE", platform["RegistryTableName"])
    monkeypatch.setenv("MODEL_NAME", PROJECT)
    monkeypatch.setenv("ENDPOINT_NAME", "rm-endpoint")


def items(emulator: EmbeddedEmulator, table: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = emulator.client("dynamodb").scan(TableName=table)["Items"]
    return found


def test_a_succeeded_execution_is_registered_with_its_provenance(
    emulator: EmbeddedEmulator, platform: dict[str, str], executions: dict[str, str], handler_env: None
) -> None:
    event = {"ExecutionArn": executions["good"], "Approver": "alice", "ApprovalComment": "looks right"}
    result = register_model.handler(event, LambdaContext())
    assert result == {"ModelVersion": f"{PROJECT}-rm-good", "Created": True}
    item = emulator.client("dynamodb").get_item(
        TableName=platform["RegistryTableName"],
        Key={"ModelName": {"S": PROJECT}, "Version": {"S": f"{PROJECT}-rm-good"}},
    )["Item"]
    assert item["CommitId"] == {"S": INPUT["CommitId"]}
    assert item["ImageDigest"] == {"S": INPUT["ImageDigest"]}
    assert item["ImageUri"] == {"S": INPUT["TrainingImage"]}
    assert item["DataVersion"] == {"S": INPUT["DataVersion"]}
    assert item["Hyperparameters"] == {"M": {"epochs": {"S": "8"}, "model_preset": {"S": "tiny"}}}
    assert item["Metrics"]["M"]["accuracy"] == {"N": "0.91"}
    assert item["Accuracy"] == {"N": "0.91"}
    assert item["ArtifactUri"]["S"].endswith("/output/model.tar.gz")
    assert item["EndpointName"] == {"S": "rm-endpoint"}
    assert item["SageMakerModelName"] == {"S": f"{PROJECT}-rm-good-model"}
    assert item["EndpointConfigName"] == {"S": f"{PROJECT}-rm-good-config"}
    assert item["Approver"] == {"S": "alice"} and item["ApprovalComment"] == {"S": "looks right"}
    assert item["ExecutionArn"] == {"S": executions["good"]}
    for stamp in ("RegisteredAt", "TrainingStartedAt", "TrainingEndedAt", "ApprovedAt"):
        assert datetime.fromisoformat(item[stamp]["S"]).tzinfo is not None, stamp


def test_registering_again_writes_no_second_item(
    emulator: EmbeddedEmulator, platform: dict[str, str], executions: dict[str, str], handler_env: None
) -> None:
    event = {"ExecutionArn": executions["good"], "Approver": "bob"}
    register_model.handler(event, LambdaContext())
    again = register_model.handler(event, LambdaContext())
    assert again == {"ModelVersion": f"{PROJECT}-rm-good", "Created": False}
    mine = [
        i for i in items(emulator, platform["RegistryTableName"]) if i["Version"]["S"] == f"{PROJECT}-rm-good"
    ]
    assert len(mine) == 1
    assert mine[0]["Approver"]["S"] in {"alice", "bob"}  # the first write stays


def test_a_failed_execution_is_not_registered(
    emulator: EmbeddedEmulator, platform: dict[str, str], executions: dict[str, str], handler_env: None
) -> None:
    with pytest.raises(EventError, match="is FAILED, not SUCCEEDED"):
        register_model.handler({"ExecutionArn": executions["poor"], "Approver": "alice"}, LambdaContext())
    versions = {i["Version"]["S"] for i in items(emulator, platform["RegistryTableName"])}
    assert f"{PROJECT}-rm-poor" not in versions


def approval_stub(job_id: str) -> tuple[Any, Stubber]:
    """A real codepipeline client whose answers Stubber checks against the API: the emulator answers
    GetPipelineState (who approved) only while the harness's pipeline runner runs the pipeline,
    and this test runs the action without a pipeline."""
    client = boto3.client(
        "codepipeline", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response(
        "get_job_details",
        {"jobDetails": {"id": job_id, "data": {"pipelineContext": {"pipelineName": f"{PROJECT}-pipeline"}}}},
        {"jobId": job_id},
    )
    stubber.add_response(
        "get_pipeline_state",
        {
            "pipelineName": f"{PROJECT}-pipeline",
            "stageStates": [
                {"stageName": "Train", "actionStates": [{"actionName": "StartTraining"}]},
                {
                    "stageName": "Approve",
                    "actionStates": [
                        {
                            "actionName": "Approve",
                            "latestExecution": {
                                "status": "Succeeded",
                                "summary": "accuracy is fine",
                                "lastStatusChange": datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC),
                                "lastUpdatedBy": "arn:aws:iam::123456789012:user/carol",
                            },
                        }
                    ],
                },
            ],
        },
        {"name": f"{PROJECT}-pipeline"},
    )
    stubber.activate()
    return client, stubber


def register_event(execution_arn: str) -> PipelineJob:
    event = load_event("codepipeline_job_register")
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = json.dumps(
        {"ExecutionArn": execution_arn}
    )
    return PipelineJob.from_event(event)


def test_the_register_action_records_the_approver_and_reports_the_version(
    emulator: EmbeddedEmulator, platform: dict[str, str], executions: dict[str, str]
) -> None:
    job = register_event(executions["good"])
    codepipeline, stubber = approval_stub(job.id)
    reporter = RecordingReporter()
    settings = register_model.Settings.from_env(
        {"REGISTRY_TABLE": platform["RegistryTableName"], "MODEL_NAME": "other", "ENDPOINT_NAME": "rm-other"}
    )
    register_model.run_pipeline_action(
        job, settings, emulator.client("dynamodb"), emulator.client("stepfunctions"), reporter, codepipeline
    )
    stubber.assert_no_pending_responses()
    assert reporter.failures == []
    assert reporter.successes[0]["output_variables"] == {
        "ModelVersion": f"{PROJECT}-rm-good",
        "ModelName": "other",
    }
    item = emulator.client("dynamodb").get_item(
        TableName=platform["RegistryTableName"],
        Key={"ModelName": {"S": "other"}, "Version": {"S": f"{PROJECT}-rm-good"}},
    )["Item"]
    assert item["Approver"] == {"S": "arn:aws:iam::123456789012:user/carol"}
    assert item["ApprovalComment"] == {"S": "accuracy is fine"}
    assert item["ApprovedAt"] == {"S": "2026-11-28T01:02:03+00:00"}
    assert item["EndpointName"] == {"S": "rm-other"}


def test_the_register_action_fails_without_an_execution_arn(
    platform: dict[str, str], emulator: EmbeddedEmulator
) -> None:
    job = register_event("#{TrainVariables.ExecutionArn}")  # a variable the pipeline did not resolve
    reporter = RecordingReporter()
    settings = register_model.Settings(platform["RegistryTableName"], PROJECT, "rm-endpoint")
    register_model.run_pipeline_action(
        job, settings, emulator.client("dynamodb"), emulator.client("stepfunctions"), reporter, None
    )
    [(job_id, message)] = reporter.failures
    assert job_id == job.id and "must be an execution ARN" in message
