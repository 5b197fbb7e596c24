"""The Step Functions seams: SageMaker service integrations (`.sync` included) and the time scale.

Training runs the stand-in source tree (tests/harness/standin.py) on the process runtime; the state
machines are small ones written here, plus the deployer's own definition
(deployer/statemachine/training.asl.json) with its CloudFormation placeholders filled in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.stepfunctions import models as stepfunctions_models
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback,
    state_task_service_factory,
    state_task_service_unsupported,
)
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from harness.context import StepFunctionsTiming
from harness.seams import stepfunctions as seam
from tests.harness.planes import ROLE_ARN, Harness, running_harness, training_request, wait_until
from tests.harness.standin import write_standin_tree

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYER_ASL = REPO_ROOT / "deployer" / "statemachine" / "training.asl.json"
SCALE = 0.01


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_harness(tmp_path_factory.mktemp("plane"), startup_limit_s=20.0) as running:
        running.emulator.context.step_functions.set_scale(SCALE)
        s3 = running.client("s3")
        s3.create_bucket(Bucket="data")
        s3.put_object(
            Bucket="data", Key="greet/part.csv", Body=b"Query,Intent\nhi,greet\nhello,greet\nbye,leave\n"
        )
        s3.put_object(
            Bucket="data", Key="leave/part.csv", Body=b"Query,Intent\nbye,leave\nciao,leave\nhi,greet\n"
        )
        yield running


@pytest.fixture(scope="module")
def image(harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> str:
    return harness.image_uri(write_standin_tree(tmp_path_factory.mktemp("standin")))


def _machine(harness: Harness, name: str, definition: dict[str, Any] | str) -> str:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    sfn = harness.client("stepfunctions")
    return str(sfn.create_state_machine(name=name, definition=text, roleArn=ROLE_ARN)["stateMachineArn"])


def _run(
    harness: Harness, machine: str, name: str, payload: dict[str, Any], timeout: float = 60
) -> dict[str, Any]:
    sfn = harness.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))[
        "executionArn"
    ]
    return dict(
        wait_until(
            lambda: sfn.describe_execution(executionArn=execution),
            lambda described: described["status"] != "RUNNING",
            timeout=timeout,
        )
    )


def _task_failure(harness: Harness, execution_arn: str) -> dict[str, Any]:
    events = harness.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    failures = [event["taskFailedEventDetails"] for event in events if event["type"] == "TaskFailed"]
    assert failures, "no TaskFailed event"
    return dict(failures[-1])


def _one_task(resource: str, parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "StartAt": "Task",
        "States": {
            "Task": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True, **extra}
        },
    }


# -- the seams' hold on moto -------------------------------------------------------------------------
def test_the_seams_are_in_place_where_moto_looks_for_them(harness: Harness) -> None:
    assert state_task_factory.state_task_service_for is seam._state_task_service_for  # type: ignore[attr-defined]
    assert isinstance(state_task_factory.state_task_service_for("sagemaker"), seam.StateTaskServiceSageMaker)  # type: ignore[attr-defined]
    assert WaitFunction._wait_interval is seam._scaled_wait_interval
    assert stepfunctions_models.stepfunctions_backends is stepfunctions_parser_backends
    assert vars(retrier_decl)["time"] is seam._ScaledTime
    # The `.sync` resolver polls at the scaled interval itself: moto's own poll delay stays as it is.
    assert vars(state_task_service_callback)["_DELAY_SECONDS_SYNC_CONDITION_CHECK"] == 0.5
    assert seam.time_scale() == SCALE


def test_moto_alone_still_lacks_the_sagemaker_integration() -> None:
    """If moto grows its own SageMaker integration, this seam should be revisited."""
    assert isinstance(
        state_task_service_factory.state_task_service_for("sagemaker"),
        state_task_service_unsupported.StateTaskServiceUnsupported,
    )
    assert "time.sleep(interval_seconds)" in Path(retrier_decl.__file__).read_text()


def test_set_time_scale_rejects_nonsense() -> None:
    for bad in (0.0, -1.0, 10_000.0):
        with pytest.raises(ValueError, match="time scale"):
            StepFunctionsTiming().set_scale(bad)


# -- the time scale --------------------------------------------------------------------------------
def test_a_wait_state_is_scaled(harness: Harness) -> None:
    machine = _machine(
        harness, "waits", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}}
    )
    started = time.monotonic()
    assert _run(harness, machine, "wait-1", {})["status"] == "SUCCEEDED"
    elapsed = time.monotonic() - started
    assert 30 * SCALE <= elapsed < 10


def test_retry_intervals_are_scaled_and_api_errors_are_named_as_aws(harness: Harness) -> None:
    definition = _one_task(
        "arn:aws:states:::sagemaker:createEndpointConfig",
        {
            "EndpointConfigName": "nothing",
            "ProductionVariants": [
                {"VariantName": "v", "ModelName": "no-such-model", "InstanceType": "ml.m5.large"}
            ],
        },
        Retry=[
            {
                "ErrorEquals": ["SageMaker.AmazonSageMakerException"],
                "IntervalSeconds": 20,
                "MaxAttempts": 2,
                "BackoffRate": 2.0,
            }
        ],
    )
    machine = _machine(harness, "retries", definition)
    started = time.monotonic()
    execution = _run(harness, machine, "retry-1", {})
    assert time.monotonic() - started < 10  # unscaled: 20 s + 40 s of retry sleeps
    assert execution["status"] == "FAILED"
    assert execution["error"] == "SageMaker.AmazonSageMakerException"
    failure = _task_failure(harness, execution["executionArn"])
    assert (
        "Could not find model" in failure["cause"] and "Error Code: ValidationException" in failure["cause"]
    )
    events = harness.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])[
        "events"
    ]
    assert sum(event["type"] == "TaskFailed" for event in events) == 3  # the first try and two retries


# -- SageMaker integrations -------------------------------------------------------------------------
def _training_parameters(image: str, data: str) -> dict[str, Any]:
    request = training_request("placeholder", image, f"s3://data/{data}", "s3://data/models/")
    del request["TrainingJobName"]
    return {"TrainingJobName.$": "$$.Execution.Name", **request, "HyperParameters.$": "$.hyperparameters"}


def test_create_training_job_sync_waits_for_the_job(harness: Harness, image: str) -> None:
    machine = _machine(
        harness,
        "train-sync",
        _one_task("arn:aws:states:::sagemaker:createTrainingJob.sync", _training_parameters(image, "greet/")),
    )
    execution = _run(harness, machine, "train-sync-ok", {"hyperparameters": {"sleep": "1"}})
    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert output["TrainingJobStatus"] == "Completed"
    assert (
        output["ModelArtifacts"]["S3ModelArtifacts"] == "s3://data/models/train-sync-ok/output/model.tar.gz"
    )
    assert {m["MetricName"] for m in output["FinalMetricDataList"]} == {"accuracy", "macro_f1"}
    # datetimes become epoch milliseconds, as Step Functions shows them
    assert isinstance(output["CreationTime"], int) and output["CreationTime"] > 1_600_000_000_000
    assert output["TrainingEndTime"] - output["TrainingStartTime"] >= 1000


def test_create_training_job_without_sync_returns_at_once(harness: Harness, image: str) -> None:
    machine = _machine(
        harness,
        "train-async",
        _one_task("arn:aws:states:::sagemaker:createTrainingJob", _training_parameters(image, "greet/")),
    )
    execution = _run(harness, machine, "train-async-1", {"hyperparameters": {"sleep": "2"}})
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == {
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/train-async-1"
    }
    described = harness.client("sagemaker").describe_training_job(TrainingJobName="train-async-1")
    assert described["TrainingJobStatus"] == "InProgress"


# A failed job's TaskFailed event, and which resources CreateStateMachine accepts, are conformance tests:
# tests/conformance/test_stepfunctions_sagemaker.py.


# -- the deployer's own definition ------------------------------------------------------------------
@pytest.mark.skipif(not DEPLOYER_ASL.exists(), reason="the deployer's state machine is not in the tree")
def test_the_deployers_state_machine_trains_deploys_and_survives_a_bad_run(
    harness: Harness, image: str
) -> None:
    text = DEPLOYER_ASL.read_text(encoding="utf-8")
    for placeholder, value in {
        "${SageMakerExecutionRole.Arn}": ROLE_ARN,
        "${TrainingInstanceType}": "ml.m5.large",
        "${HostingInstanceType}": "ml.m5.large",
        "${HostingDevice}": "cpu",  # platform.yaml's HostsOnGpu is false for a CPU type
        "${HostingAmiVersion}": "none",
    }.items():
        text = text.replace(placeholder, value)
    assert not re.search(r"\$\{[A-Za-z]", text), "a CloudFormation placeholder is left"
    machine = _machine(harness, "deployer-training", text)

    def payload(data: str, **hyperparameters: str) -> dict[str, Any]:
        return {
            "TrainingImage": image,
            "TrainingData": f"s3://data/{data}",
            "OutputPath": "s3://data/pipeline/",
            "Hyperparameters": hyperparameters,
            "QualityThreshold": 0.5,
            "EndpointName": "intents",
        }

    def ask() -> str:
        answer = harness.client("sagemaker-runtime").invoke_endpoint(
            EndpointName="intents", Body=json.dumps({"inputs": "hey"}), ContentType="application/json"
        )
        return str(json.loads(answer["Body"].read())["predictions"][0]["intent"])

    sagemaker = harness.client("sagemaker")
    first = _run(harness, machine, "first", payload("greet/"))
    assert first["status"] == "SUCCEEDED", first.get("cause")
    assert ask() == "greet"

    bad = _run(harness, machine, "bad", payload("greet/", fail="no usable rows"))
    assert bad["status"] == "FAILED"
    assert "AlgorithmError: bad data: no usable rows" in bad["cause"]
    assert sagemaker.describe_endpoint(EndpointName="intents")["EndpointConfigName"] == "first-config"
    assert ask() == "greet"
    models = {model["ModelName"] for model in sagemaker.list_models()["Models"]}
    assert "bad-model" not in models

    second = _run(harness, machine, "second", payload("leave/"))
    assert second["status"] == "SUCCEEDED", second.get("cause")
    assert sagemaker.describe_endpoint(EndpointName="intents")["EndpointConfigName"] == "second-config"
    assert ask() == "leave"


def test_a_state_machine_created_by_cloudformation_can_be_run(harness: Harness) -> None:
    definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}}
    template = {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": "from-a-stack",
                    "RoleArn": ROLE_ARN,
                    "DefinitionString": json.dumps(definition),
                },
            }
        },
        "Outputs": {"Arn": {"Value": {"Ref": "Machine"}}},
    }
    cloudformation = harness.client("cloudformation")
    cloudformation.create_stack(StackName="machine-stack", TemplateBody=json.dumps(template))
    stack = cloudformation.describe_stacks(StackName="machine-stack")["Stacks"][0]
    machine = stack["Outputs"][0]["OutputValue"]
    described = harness.client("stepfunctions").describe_state_machine(stateMachineArn=machine)
    assert json.loads(described["definition"]) == definition
    assert _run(harness, machine, "from-a-stack-1", {})["status"] == "SUCCEEDED"
