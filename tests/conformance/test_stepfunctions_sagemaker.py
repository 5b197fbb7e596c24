"""Step Functions' SageMaker integrations: which resources exist, and the error names and causes a state
machine sees, as the Step Functions developer guide documents them and real executions show them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from harness.faults import FaultBoard
from harness.seams import stepfunctions as sfn_seam
from tests.conformance.sfn_helpers import (
    deployer_definition,
    deployer_state,
    machine,
    one_task,
    run,
    task_failures,
)
from tests.harness.planes import Harness, training_request
from tests.harness.standin import write_standin_tree

SCALE = 0.01
ROWS = b"Query,Intent\nhi,greet\nhello,greet\nbye,leave\n"


@pytest.fixture(scope="module")
def harness(conformance_harness: Harness) -> Iterator[Harness]:
    timing = conformance_harness.emulator.context.step_functions
    previous = timing.scale
    timing.set_scale(SCALE)
    s3 = conformance_harness.client("s3")
    s3.create_bucket(Bucket="sfn-conformance")
    s3.put_object(Bucket="sfn-conformance", Key="greet/part.csv", Body=ROWS)
    try:
        yield conformance_harness
    finally:
        timing.set_scale(previous)


@pytest.fixture(scope="module")
def image(harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> str:
    return harness.image_uri(write_standin_tree(tmp_path_factory.mktemp("standin")))


@pytest.fixture
def fault_board(harness: Harness) -> Iterator[FaultBoard]:
    """The running emulator's fault board, cleared before and after the test."""
    board = harness.emulator.context.faults
    board.clear()
    yield board
    board.clear()


def _training(image: str, **changes: Any) -> dict[str, Any]:
    request = training_request("placeholder", image, "s3://sfn-conformance/greet/", "s3://sfn-conformance/m/")
    del request["TrainingJobName"]
    return {"TrainingJobName.$": "$.name", **request, **changes}


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:states:::sagemaker:describeEndpoint",
        "arn:aws:states:::sagemaker:deleteEndpoint",
        "arn:aws:states:::sagemaker:stopTrainingJob",
        "arn:aws:states:::sagemaker:createModel.sync",
        "arn:aws:states:::sagemaker:createTransformJob",
    ],
)
def test_create_state_machine_rejects_what_the_optimized_integration_lacks(
    harness: Harness, resource: str
) -> None:
    """Step Functions developer guide, "Create and manage Amazon SageMaker AI jobs with Step Functions",
    Optimized SageMaker AI APIs: CreateEndpoint, CreateEndpointConfig, CreateHyperParameterTuningJob,
    CreateLabelingJob, CreateModel, CreateProcessingJob, CreateTrainingJob, CreateTransformJob and
    UpdateEndpoint (`.sync` only for the jobs); anything else is an `aws-sdk:sagemaker:*` call, and
    CreateStateMachine answers InvalidDefinition ("The resource provided ... not recognized").
    createTransformJob exists on AWS but the harness does not run it: it is refused too, never faked."""
    name = "reject-" + resource.rsplit(":", 1)[1].replace(".", "-").lower()
    with pytest.raises(ClientError, match="not recognized") as refused:
        machine(harness, name, one_task(resource, {"EndpointName": "e"}))
    assert refused.value.response["Error"]["Code"] == "InvalidDefinition"


def test_the_deployers_definition_uses_aws_sdk_for_what_is_not_optimized() -> None:
    """Same source as above: every `arn:aws:states:::sagemaker:` resource of the deployer's machine is an
    optimized action; the describe and delete calls are `aws-sdk:sagemaker:*`."""
    states = json.loads(deployer_definition())["States"]
    resources = {state["Resource"] for state in states.values() if state.get("Resource")}
    optimized = {r.rsplit(":", 1)[1] for r in resources if r.startswith("arn:aws:states:::sagemaker:")}
    assert optimized <= sfn_seam.OPTIMIZED_SAGEMAKER_ACTIONS | {"createTrainingJob.sync"}
    assert "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint" in resources


def test_a_failed_sync_training_job_is_states_task_failed_with_its_description(
    harness: Harness, image: str, fault_board: FaultBoard
) -> None:
    """Step Functions developer guide, "Service integration patterns", Run a Job (.sync): a job that ends
    Failed fails the task; for SageMaker the error is `States.TaskFailed` and the cause is the job's
    DescribeTrainingJob output as compact JSON, FailureReason included (as real executions show, e.g.
    aws/aws-step-functions-data-science-sdk-python issue 191). No `SageMaker.CapacityError` name exists:
    a capacity failure is told apart only by its FailureReason, `CapacityError: ...` (SageMaker API
    Reference, DescribeTrainingJob, FailureReason)."""
    arn = machine(
        harness,
        "capacity-sync",
        one_task("arn:aws:states:::sagemaker:createTrainingJob.sync", _training(image)),
    )
    fault_board.capacity_shortage(1)
    execution = run(harness, arn, "capacity-sync-1", {"name": "capacity-sync-1"})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.TaskFailed"
    assert (
        '"FailureReason":"CapacityError: Unable to provision requested ML compute capacity.'
        in execution["cause"]
    )
    cause = json.loads(execution["cause"])
    assert cause["TrainingJobStatus"] == "Failed"
    assert cause["FailureReason"].startswith("CapacityError: ")


def test_a_duplicate_training_job_name_is_resource_in_use_and_not_retried(
    harness: Harness, image: str
) -> None:
    """SageMaker API Reference, CreateTrainingJob, Errors: ResourceInUse ("Resource being accessed is in
    use", 400) for a name that exists ("The name must be unique within an AWS Region in an AWS account").
    Step Functions developer guide, "Handling errors in Step Functions workflows": optimized integrations
    name an error `<Service>.<Exception>`; SageMaker's modeled errors arrive as
    `SageMaker.ResourceInUseException` / `SageMaker.ResourceLimitExceededException`, so the deployer's
    Train Retry (on `SageMaker.AmazonSageMakerException` and `SageMaker.ResourceLimitExceededException`)
    does not retry a duplicate."""
    train = deployer_state("Train")
    definition = one_task(
        "arn:aws:states:::sagemaker:createTrainingJob.sync", _training(image), Retry=train["Retry"]
    )
    arn = machine(harness, "duplicate-name", definition)
    assert run(harness, arn, "duplicate-1", {"name": "duplicate-job"})["status"] == "SUCCEEDED"
    second = run(harness, arn, "duplicate-2", {"name": "duplicate-job"})
    assert second["status"] == "FAILED"
    assert second["error"] == "SageMaker.ResourceInUseException"
    failures = task_failures(harness, second["executionArn"])
    assert len(failures) == 1  # not retried
    assert "Error Code: ResourceInUse" in failures[0]["cause"]


def test_an_unmodeled_error_of_an_optimized_task_is_amazon_sagemaker_exception(harness: Harness) -> None:
    """Step Functions developer guide, "Handling errors": an optimized integration's error that the
    service API does not model comes with the SDK's base name; for SageMaker
    `SageMaker.AmazonSageMakerException`, the error code in the cause ("... (Service: AmazonSageMaker;
    Status Code: 400; Error Code: ValidationException; ...)"), as real executions show
    (aws/aws-step-functions-data-science-sdk-python issue 191: a ThrottlingException named so)."""
    definition = one_task(
        "arn:aws:states:::sagemaker:updateEndpoint", {"EndpointName": "no-such", "EndpointConfigName": "none"}
    )
    execution = run(harness, machine(harness, "unmodeled", definition), "unmodeled-1", {})
    assert execution["error"] == "SageMaker.AmazonSageMakerException"
    cause = task_failures(harness, execution["executionArn"])[0]["cause"]
    assert "Service: AmazonSageMaker; Status Code: 400; Error Code: ValidationException" in cause


def test_an_aws_sdk_sagemaker_error_is_named_sagemaker_sagemakerexception(harness: Harness) -> None:
    """Step Functions developer guide, "Learning to use AWS service SDK integrations", Using AWS SDK
    service integrations: the error is `ServiceName.ErrorName`, both PascalCase, with the Exception
    suffix; an error the API does not model is the SDK's base exception, `SageMaker.SageMakerException`
    (DescribeEndpoint of a missing endpoint: ValidationException "Could not find endpoint"), as public
    state machines catch it (a CDK CallAwsService describeEndpoint catching SageMaker.SageMakerException)."""
    definition = one_task("arn:aws:states:::aws-sdk:sagemaker:describeEndpoint", {"EndpointName": "no-such"})
    execution = run(harness, machine(harness, "aws-sdk-missing", definition), "aws-sdk-missing-1", {})
    assert execution["error"] == "SageMaker.SageMakerException"
    cause = task_failures(harness, execution["executionArn"])[0]["cause"]
    assert "Could not find endpoint" in cause and "Service: SageMaker" in cause
    modeled = one_task(
        "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob", {"TrainingJobName": "no-such"}
    )
    described = run(harness, machine(harness, "aws-sdk-modeled", modeled), "aws-sdk-modeled-1", {})
    assert described["error"] in {"SageMaker.SageMakerException", "SageMaker.ResourceNotFoundException"}


def test_the_deployers_machine_retries_a_capacity_failure_under_a_new_job_name(
    harness: Harness, image: str, fault_board: FaultBoard
) -> None:
    """SageMaker API Reference, CreateTrainingJob, TrainingJobName: unique within an account and Region
    (a second job of the same name is ResourceInUse). A run whose job failed with `CapacityError:` waits
    and trains again as `N-train-2`, and succeeds; the failed job `N-train` stays as it ended."""
    arn = machine(harness, "deployer-capacity", deployer_definition())
    fault_board.capacity_shortage(1)
    payload = {
        "TrainingImage": image,
        "TrainingData": "s3://sfn-conformance/greet/",
        "OutputPath": "s3://sfn-conformance/pipeline/",
        "Hyperparameters": {},
        "QualityThreshold": 0.5,
        "EndpointName": "capacity-endpoint",
    }
    execution = run(harness, arn, "capacity", payload, timeout=120)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    sagemaker = harness.client("sagemaker")
    first = sagemaker.describe_training_job(TrainingJobName="capacity-train")
    assert first["TrainingJobStatus"] == "Failed" and first["FailureReason"].startswith("CapacityError:")
    assert (
        sagemaker.describe_training_job(TrainingJobName="capacity-train-2")["TrainingJobStatus"]
        == "Completed"
    )
    output = json.loads(execution["output"])
    assert output["TrainingJob"]["TrainingJobName"] == "capacity-train-2"


def _names_aws_can_raise(resource: str) -> set[str]:
    """Error names a SageMaker task can fail with: `SageMaker.<modeled error>Exception` (botocore's model
    of SageMaker's API lists the modeled errors), the SDK's base name for every other error, which
    differs between optimized (`SageMaker.AmazonSageMakerException`) and aws-sdk tasks
    (`SageMaker.SageMakerException`)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    modeled = {
        f"SageMaker.{shape.name}" if shape.name.endswith("Exception") else f"SageMaker.{shape.name}Exception"
        for shape in model.error_shapes
    }
    base = "SageMaker.SageMakerException" if ":aws-sdk:" in resource else "SageMaker.AmazonSageMakerException"
    return modeled | {base}


def test_every_retry_and_catch_of_the_deployers_machine_names_an_error_aws_raises() -> None:
    """Step Functions developer guide, "Handling errors in Step Functions workflows" (error names;
    `States.*` names such as States.TaskFailed and States.ALL) and the two sources above: a Retry or
    Catch on a name that never occurs (`SageMaker.CapacityError`, `SageMaker.ThrottlingException`,
    a bare `ThrottlingException`) silently does nothing on AWS."""
    states = json.loads(deployer_definition())["States"]
    wrong = []
    for name, state in states.items():
        resource = state.get("Resource", "")
        if ":sagemaker:" not in resource:
            continue
        allowed = _names_aws_can_raise(resource)
        for rule in state.get("Retry", []) + state.get("Catch", []):
            for error in rule["ErrorEquals"]:
                if not error.startswith("States.") and error not in allowed:
                    wrong.append(f"{name}: {error}")
    assert wrong == []
    # Transient errors of the endpoint poll are retried rather than sent to clean-up.
    describe = states["DescribeEndpoint"]
    assert "SageMaker.SageMakerException" in describe["Retry"][0]["ErrorEquals"]
