"""Throttling, transient 5xx and quota errors: what each service answers, what the SDK does with it, and
what the deployer's state machine does when its SageMaker calls meet them.

The errors are injected at the emulator's boundary (harness/seams/api_faults.py), so these tests need
the harness's fault board and are not `aws_verified`: on AWS one cannot make a service throttle on
purpose. Each names the document the answer was taken from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from harness.aws_errors import aws_error
from harness.faults import FaultBoard
from tests.conformance.sfn_helpers import (
    deployer_definition,
    deployer_state,
    machine,
    one_task,
    run,
    task_failures,
)
from tests.harness.planes import ROLE_ARN, Harness, training_request
from tests.harness.standin import write_standin_tree

SCALE = 0.01
NO_RETRIES = Config(retries={"total_max_attempts": 1})
ROWS = b"Query,Intent\nhi,greet\nhello,greet\nbye,leave\n"


@pytest.fixture(scope="module")
def harness(conformance_harness: Harness) -> Iterator[Harness]:
    timing = conformance_harness.emulator.context.step_functions
    previous = timing.scale
    timing.set_scale(SCALE)
    s3 = conformance_harness.client("s3")
    s3.create_bucket(Bucket="api-faults")
    s3.put_object(Bucket="api-faults", Key="greet/part.csv", Body=ROWS)
    try:
        yield conformance_harness
    finally:
        timing.set_scale(previous)


@pytest.fixture
def board(harness: Harness) -> Iterator[FaultBoard]:
    faults = harness.emulator.context.faults
    faults.clear()
    yield faults
    faults.clear()


def _raw_client(harness: Harness, service: str, config: Config = NO_RETRIES) -> Any:
    emulator = harness.emulator
    return emulator.session().client(service, endpoint_url=emulator.endpoint_url, config=config)


@pytest.mark.parametrize(
    ("service", "operation", "call", "code", "status"),
    [
        # SageMaker API Reference, Common Errors: ThrottlingException, HTTP 400.
        ("sagemaker", "ListEndpoints", lambda c: c.list_endpoints(), "ThrottlingException", 400),
        # AWS Step Functions API Reference, Common Errors: ThrottlingException, HTTP 400.
        ("stepfunctions", "ListStateMachines", lambda c: c.list_state_machines(), "ThrottlingException", 400),
        # Lambda API Reference, Invoke / ListFunctions, Errors: TooManyRequestsException, HTTP 429.
        ("lambda", "ListFunctions", lambda c: c.list_functions(), "TooManyRequestsException", 429),
        # DynamoDB Developer Guide, "Error handling with DynamoDB", 400 errors: a data-plane call over the
        # table's throughput is ProvisionedThroughputExceededException.
        (
            "dynamodb",
            "Scan",
            lambda c: c.scan(TableName="none"),
            "ProvisionedThroughputExceededException",
            400,
        ),
        # AWS CloudFormation API Reference, Common Errors (query protocol): the code is `Throttling`.
        ("cloudformation", "ListStacks", lambda c: c.list_stacks(), "Throttling", 400),
        # API Gateway API Reference, Common errors: TooManyRequestsException, HTTP 429.
        ("apigateway", "GetRestApis", lambda c: c.get_rest_apis(), "TooManyRequestsException", 429),
    ],
)
def test_a_throttled_call_answers_the_code_and_status_its_service_documents(
    harness: Harness, board: FaultBoard, service: str, operation: str, call: Any, code: str, status: int
) -> None:
    """Each service's own throttling answer, read through boto3 (sources per case above)."""
    board.fail_api_calls(service, operation, aws_error(service, operation, "throttling"))
    with pytest.raises(ClientError) as raised:
        call(_raw_client(harness, service))
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [("unavailable", "ServiceUnavailable", 503), ("internal", "InternalFailure", 500)],
)
def test_a_transient_5xx_answers_the_common_error(
    harness: Harness, board: FaultBoard, kind: Any, code: str, status: int
) -> None:
    """SageMaker API Reference, Common Errors: ServiceUnavailable (HTTP 503, "The request has failed due
    to a temporary failure of the server") and InternalFailure (HTTP 500)."""
    board.fail_api_calls("sagemaker", "ListModels", aws_error("sagemaker", "ListModels", kind))
    with pytest.raises(ClientError) as raised:
        _raw_client(harness, "sagemaker").list_models()
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_the_sdk_retries_throttling_and_5xx_as_it_does_against_aws(
    harness: Harness, board: FaultBoard
) -> None:
    """AWS SDKs and Tools Reference Guide, "Retry behavior", standard mode: throttling errors
    (ThrottlingException, ...) and transient errors (HTTP 500, 502, 503, 504) are retried, up to 3
    attempts by default. Two failed calls are absorbed by the SDK; the caller sees the third."""
    board.fail_api_calls(
        "sagemaker", "ListEndpoints", aws_error("sagemaker", "ListEndpoints", "throttling"), 2
    )
    standard = Config(retries={"mode": "standard", "total_max_attempts": 3})
    answer = _raw_client(harness, "sagemaker", standard).list_endpoints()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    board.fail_api_calls(
        "sagemaker", "ListEndpoints", aws_error("sagemaker", "ListEndpoints", "unavailable"), 3
    )
    with pytest.raises(ClientError) as raised:
        _raw_client(harness, "sagemaker", standard).list_endpoints()
    assert raised.value.response["Error"]["Code"] == "ServiceUnavailable"


@pytest.mark.parametrize(
    ("operation", "kind", "code", "status"),
    [
        ("GetObject", "throttling", "SlowDown", 503),
        ("PutObject", "unavailable", "ServiceUnavailable", 503),
        ("ListObjectsV2", "internal", "InternalError", 500),
    ],
)
def test_s3_answers_its_own_error_codes(
    harness: Harness, board: FaultBoard, operation: str, kind: Any, code: str, status: int
) -> None:
    """S3 API Reference, "Error responses", List of error codes: SlowDown ("Please reduce your request
    rate.", 503), ServiceUnavailable (503), InternalError (500), in S3's XML error document; moto's S3
    has a dispatch of its own, hooked where it names each request's action."""
    board.fail_api_calls("s3", operation, aws_error("s3", operation, kind))
    s3 = _raw_client(harness, "s3")
    calls = {
        "GetObject": lambda: s3.get_object(Bucket="api-faults", Key="greet/part.csv"),
        "PutObject": lambda: s3.put_object(Bucket="api-faults", Key="greet/other.csv", Body=b"x"),
        "ListObjectsV2": lambda: s3.list_objects_v2(Bucket="api-faults"),
    }
    with pytest.raises(ClientError) as raised:
        calls[operation]()
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert calls[operation]()["ResponseMetadata"]["HTTPStatusCode"] == 200  # once only


def test_the_sdk_retries_s3_slow_down(harness: Harness, board: FaultBoard) -> None:
    """AWS SDKs and Tools Reference Guide, "Retry behavior": SlowDown is one of the throttling errors the
    standard mode retries; a HeadObject (named apart from GetObject by moto) is failed and retried too."""
    board.fail_api_calls("s3", "HeadObject", aws_error("s3", "HeadObject", "throttling"), 2)
    standard = Config(retries={"mode": "standard", "total_max_attempts": 3})
    answer = _raw_client(harness, "s3", standard).head_object(Bucket="api-faults", Key="greet/part.csv")
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2


def test_resource_limit_exceeded_at_create_training_job(harness: Harness, board: FaultBoard) -> None:
    """SageMaker API Reference, CreateTrainingJob, Errors: ResourceLimitExceeded ("You have exceeded an
    SageMaker resource limit", HTTP 400), modeled, so boto3 raises its own class; the message names the
    account-level limit of the instance type, as SageMaker users report it (github.com/aws/
    sagemaker-python-sdk issue 35). No job is created."""
    board.fail_api_calls(
        "sagemaker",
        "CreateTrainingJob",
        aws_error("sagemaker", "CreateTrainingJob", "resource_limit_exceeded"),
    )
    sagemaker = _raw_client(harness, "sagemaker")
    request = training_request("limited-job", "image:latest", "s3://api-faults/greet/", "s3://api-faults/m/")
    with pytest.raises(sagemaker.exceptions.ResourceLimitExceeded) as raised:
        sagemaker.create_training_job(**request)
    message = raised.value.response["Error"]["Message"]
    instance_type = request["ResourceConfig"]["InstanceType"]
    assert message.startswith(f"The account-level service limit '{instance_type} for training job usage'")
    with pytest.raises(ClientError):
        sagemaker.describe_training_job(TrainingJobName="limited-job")


@pytest.fixture(scope="module")
def image(harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> str:
    return harness.image_uri(write_standin_tree(tmp_path_factory.mktemp("standin")))


def _payload(image: str, endpoint: str) -> dict[str, Any]:
    return {
        "TrainingImage": image,
        "TrainingData": "s3://api-faults/greet/",
        "OutputPath": "s3://api-faults/pipeline/",
        "Hyperparameters": {},
        "QualityThreshold": 0.5,
        "EndpointName": endpoint,
    }


def test_the_train_state_retries_resource_limit_exceeded_under_the_same_name(
    harness: Harness, board: FaultBoard, image: str
) -> None:
    """Step Functions developer guide, "Handling errors" (optimized integrations name a modeled error
    `SageMaker.<Name>Exception`): ResourceLimitExceeded reaches the Train state as
    `SageMaker.ResourceLimitExceededException`, which its Retry retries; the job was never created, so
    the retry keeps its name `N-train`."""
    board.fail_api_calls(
        "sagemaker",
        "CreateTrainingJob",
        aws_error("sagemaker", "CreateTrainingJob", "resource_limit_exceeded"),
    )
    arn = machine(harness, "deployer-limit-once", deployer_definition())
    execution = run(harness, arn, "limit-once", _payload(image, "limit-once-endpoint"), timeout=120)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    failures = [
        failure
        for failure in task_failures(harness, execution["executionArn"])
        if "createTrainingJob" in failure.get("resource", "")
    ]
    assert [failure["error"] for failure in failures] == ["SageMaker.ResourceLimitExceededException"]
    assert "Error Code: ResourceLimitExceeded" in failures[0]["cause"]
    assert json.loads(execution["output"])["TrainingJob"]["TrainingJobName"] == "limit-once-train"


def test_the_machine_fails_cleanly_once_the_train_retries_for_a_quota_are_spent(
    harness: Harness, board: FaultBoard
) -> None:
    """The Train state's Retry on `SageMaker.ResourceLimitExceededException` (60 s, 3 attempts, backoff 2)
    runs out: the error is caught (States.TaskFailed matches every error but States.Timeout, Step
    Functions developer guide, "Error names"), is not a capacity failure, and the execution fails with
    `TrainingPipelineFailed` naming the quota, having created nothing (a re-run starts a new execution)."""
    board.fail_api_calls(
        "sagemaker",
        "CreateTrainingJob",
        aws_error("sagemaker", "CreateTrainingJob", "resource_limit_exceeded"),
        times=4,
    )
    arn = machine(harness, "deployer-limit-spent", deployer_definition())
    execution = run(harness, arn, "limit-spent", _payload("image:none", "limit-spent-endpoint"), timeout=120)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "TrainingPipelineFailed"
    assert execution["cause"].startswith("SageMaker.ResourceLimitExceededException: ")
    assert len(task_failures(harness, execution["executionArn"])) == 4
    assert (
        harness.client("sagemaker").list_training_jobs(NameContains="limit-spent")["TrainingJobSummaries"]
        == []
    )


def test_a_throttled_describe_endpoint_poll_is_retried_not_cleaned_up(
    harness: Harness, board: FaultBoard
) -> None:
    """Step Functions developer guide, AWS SDK integrations: an aws-sdk task's unmodeled error (here
    ThrottlingException, whose cause carries its message "Rate exceeded" and the status, as the SDK v2
    formats it) is `SageMaker.SageMakerException`; the deployer's DescribeEndpoint Retry on it
    retries the poll, so throttling never reaches the clean-up that deletes the endpoint. Here two
    throttled polls are retried and the next ones reach SageMaker (the endpoint is missing)."""
    board.fail_api_calls(
        "sagemaker", "DescribeEndpoint", aws_error("sagemaker", "DescribeEndpoint", "throttling"), times=2
    )
    state = deployer_state("DescribeEndpoint")
    definition = one_task(
        "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
        {"EndpointName": "polled"},
        Retry=state["Retry"],
    )
    execution = run(harness, machine(harness, "throttled-poll", definition), "throttled-poll-1", {})
    failures = task_failures(harness, execution["executionArn"])
    attempts = 1 + state["Retry"][0]["MaxAttempts"]  # the poll's Retry also covers a missing endpoint
    assert [failure["error"] for failure in failures] == ["SageMaker.SageMakerException"] * attempts
    throttled = ["Rate exceeded" in failure["cause"] for failure in failures]
    assert throttled == [True, True] + [False] * (attempts - 2)
    assert all("Could not find endpoint" in failure["cause"] for failure in failures[2:])


def test_a_throttled_sync_poll_does_not_fail_the_training_task(
    harness: Harness, board: FaultBoard, image: str
) -> None:
    """`createTrainingJob.sync`: Step Functions itself polls DescribeTrainingJob until the job ends
    (Step Functions developer guide, "Run a Job (.sync)"); its polls are not the state machine's calls,
    and AWS documents no task error for a throttled poll. Taken from that: the harness polls again, and
    the task ends with the job, not with ThrottlingException."""
    board.fail_api_calls(
        "sagemaker",
        "DescribeTrainingJob",
        aws_error("sagemaker", "DescribeTrainingJob", "throttling"),
        times=3,
    )
    request = training_request("placeholder", image, "s3://api-faults/greet/", "s3://api-faults/sync/")
    del request["TrainingJobName"]
    definition = one_task(
        "arn:aws:states:::sagemaker:createTrainingJob.sync", {"TrainingJobName.$": "$.name", **request}
    )
    execution = run(
        harness, machine(harness, "throttled-sync", definition), "throttled-sync-1", {"name": "sync-job"}
    )
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert task_failures(harness, execution["executionArn"]) == []
    assert board.api_failures_left("sagemaker", "DescribeTrainingJob") == 0


def test_a_5xx_of_a_create_call_is_retried_by_the_deployers_machine(
    harness: Harness, board: FaultBoard
) -> None:
    """SageMaker API Reference, Common Errors: ServiceUnavailable (503) is transient. In an optimized
    task it is `SageMaker.AmazonSageMakerException` (the error is not modeled); the deployer's
    CreateEndpointConfig Retry on that name retries it before the clean-up."""
    board.fail_api_calls(
        "sagemaker",
        "CreateEndpointConfig",
        aws_error("sagemaker", "CreateEndpointConfig", "unavailable"),
        times=2,
    )
    harness.client("sagemaker").create_model(
        ModelName="retried-model", PrimaryContainer={"Image": "image:latest"}, ExecutionRoleArn=ROLE_ARN
    )
    state = deployer_state("CreateEndpointConfig")
    parameters = {
        "EndpointConfigName": "retried-config",
        "ProductionVariants": [
            {
                "VariantName": "AllTraffic",
                "ModelName": "retried-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    }
    definition = one_task("arn:aws:states:::sagemaker:createEndpointConfig", parameters, Retry=state["Retry"])
    execution = run(harness, machine(harness, "retried-config", definition), "retried-config-1", {})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    failures = task_failures(harness, execution["executionArn"])
    assert [failure["error"] for failure in failures] == ["SageMaker.AmazonSageMakerException"] * 2
    assert all("Status Code: 503; Error Code: ServiceUnavailable" in failure["cause"] for failure in failures)


def test_a_throttled_find_endpoint_looks_again_instead_of_failing_the_run(
    harness: Harness, board: FaultBoard, image: str
) -> None:
    """Step Functions developer guide, AWS SDK integrations: a throttled aws-sdk DescribeEndpoint is
    `SageMaker.SageMakerException`, the name a missing endpoint also gets, with the message ("Rate
    exceeded", as SageMaker answers it: github.com/aws/sagemaker-python-sdk issue 645) in the cause. The
    deployer's FindEndpoint waits and looks again, so a run is not failed by throttling before it has
    deployed anything; then it creates the endpoint as usual."""
    board.fail_api_calls(
        "sagemaker", "DescribeEndpoint", aws_error("sagemaker", "DescribeEndpoint", "throttling"), times=1
    )
    arn = machine(harness, "deployer-find-throttled", deployer_definition())
    execution = run(harness, arn, "find-throttled", _payload(image, "find-throttled-endpoint"), timeout=180)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    failures = task_failures(harness, execution["executionArn"])
    assert failures[0]["resource"] == "describeEndpoint" and failures[0]["cause"].startswith("Rate exceeded")
    assert any("Could not find endpoint" in failure["cause"] for failure in failures[1:])


def test_a_find_endpoint_that_stays_throttled_fails_the_run_after_ten_looks(
    harness: Harness, board: FaultBoard, image: str
) -> None:
    """The look-again loop above is bounded: a throttle (or a 5xx outage) that does not end fails the
    run with the last error after 10 looks a minute apart, instead of waiting for ever (an execution
    may run for a year: Step Functions developer guide, "Step Functions service quotas", Standard
    workflows' maximum execution time). The endpoint is never created and nothing is left behind."""
    board.fail_api_calls(
        "sagemaker", "DescribeEndpoint", aws_error("sagemaker", "DescribeEndpoint", "throttling"), times=40
    )
    arn = machine(harness, "deployer-find-throttled-for-ever", deployer_definition())
    execution = run(harness, arn, "find-throttled-for-ever", _payload(image, "never-created"), timeout=180)
    assert execution["status"] == "FAILED"
    failures = task_failures(harness, execution["executionArn"])
    looks = [f for f in failures if f["resource"] == "describeEndpoint"]
    assert len(looks) == 10 and all(f["cause"].startswith("Rate exceeded") for f in looks)
    assert board.api_failures_left("sagemaker", "DescribeEndpoint") == 30
    board.clear()
    with pytest.raises(ClientError) as missing:
        harness.client("sagemaker").describe_endpoint(EndpointName="never-created")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
