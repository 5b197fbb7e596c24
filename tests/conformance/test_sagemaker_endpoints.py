"""SageMaker endpoints: statuses and their transitions, as the SageMaker API reference documents them."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.conformance.conftest import Target
from tests.conformance.sagemaker_helpers import deploy_config, invoke, train, wait_endpoint
from tests.harness.planes import Harness, wait_until
from tests.harness.standin import write_standin_tree

GREET_ROWS = b"Query,Intent\nhi,greet\nhello,greet\nbye,leave\n"


@pytest.fixture(scope="module")
def image(conformance_harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> str:
    return conformance_harness.image_uri(write_standin_tree(tmp_path_factory.mktemp("standin")))


@pytest.fixture(scope="module")
def greet_artifact(conformance_harness: Harness, image: str) -> str:
    s3 = conformance_harness.client("s3")
    s3.create_bucket(Bucket="conformance")
    s3.put_object(Bucket="conformance", Key="greet/part-1.csv", Body=GREET_ROWS)
    job = train(conformance_harness, image, "conformance-greet-job", "s3://conformance/greet/")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return str(job["ModelArtifacts"]["S3ModelArtifacts"])


def test_an_update_that_never_gets_healthy_rolls_back_to_the_previous_config(
    conformance_harness: Harness, image: str, greet_artifact: str
) -> None:
    """SageMaker API Reference, DescribeEndpoint, response element FailureReason: "If the status of the
    endpoint is Failed, or the status is InService but update operation fails, this provides the reason
    why it failed"; UpdateEndpoint: the endpoint is Updating, then InService. A failed update leaves the
    endpoint InService on its previous EndpointConfigName, still answering, with a FailureReason."""
    harness = conformance_harness
    sagemaker = harness.client("sagemaker")
    sagemaker.create_endpoint(
        EndpointName="rollback",
        EndpointConfigName=deploy_config(harness, image, "rollback-good", greet_artifact),
    )
    assert wait_endpoint(harness, "rollback")["EndpointStatus"] == "InService"
    broken = deploy_config(harness, image, "rollback-broken", "s3://conformance/models/missing/model.tar.gz")
    sagemaker.update_endpoint(EndpointName="rollback", EndpointConfigName=broken)
    assert sagemaker.describe_endpoint(EndpointName="rollback")["EndpointStatus"] == "Updating"
    endpoint = wait_endpoint(harness, "rollback")
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "rollback-good"
    # SageMaker's reason for model data it cannot fetch (seen in public reports of CreateEndpoint).
    assert endpoint["FailureReason"].startswith(
        'Failed to download model data for container "container_1" from URL: '
        '"s3://conformance/models/missing/model.tar.gz".'
    )
    assert (
        json.loads(invoke(harness, "rollback", "hey")["Body"].read())["predictions"][0]["intent"] == "greet"
    )
    # A rolled-back endpoint is InService, so it accepts the next update.
    sagemaker.update_endpoint(
        EndpointName="rollback",
        EndpointConfigName=deploy_config(harness, image, "rollback-again", greet_artifact),
    )
    again = wait_endpoint(harness, "rollback")
    assert (again["EndpointStatus"], again["EndpointConfigName"]) == ("InService", "rollback-again")
    assert "FailureReason" not in again


def test_a_failed_endpoint_accepts_only_delete(conformance_harness: Harness, image: str) -> None:
    """SageMaker API Reference, EndpointSummary / DescribeEndpoint, EndpointStatus `Failed`: "Endpoint
    could not be created, updated, or re-scaled ... DeleteEndpoint is the only operation that can be
    performed on a failed endpoint." UpdateEndpoint answers ValidationException."""
    harness = conformance_harness
    sagemaker = harness.client("sagemaker")
    config = deploy_config(harness, image, "failed-create", "s3://conformance/models/missing/model.tar.gz")
    sagemaker.create_endpoint(EndpointName="failed-create", EndpointConfigName=config)
    assert wait_endpoint(harness, "failed-create")["EndpointStatus"] == "Failed"
    with pytest.raises(ClientError) as refused:
        sagemaker.update_endpoint(EndpointName="failed-create", EndpointConfigName=config)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "failed endpoint" in refused.value.response["Error"]["Message"]
    sagemaker.delete_endpoint(EndpointName="failed-create")
    with pytest.raises(ClientError):
        sagemaker.describe_endpoint(EndpointName="failed-create")


@pytest.mark.aws_verified
def test_describing_a_missing_endpoint_is_a_validation_exception(target: Target) -> None:
    """SageMaker API Reference, DescribeEndpoint, Errors: the operation models no not-found error; a
    missing endpoint answers 400 ValidationException "Could not find endpoint ..." (the common error
    of SageMaker's Common Errors page), which is why Step Functions' aws-sdk integration names it
    `SageMaker.SageMakerException` (see test_stepfunctions_errors.py)."""
    with pytest.raises(ClientError) as missing:
        target.client("sagemaker").describe_endpoint(EndpointName="conformance-no-such-endpoint")
    error = missing.value.response
    assert error["Error"]["Code"] == "ValidationException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Could not find endpoint" in error["Error"]["Message"]


def test_a_containers_error_is_a_model_error_with_its_original_status(
    conformance_harness: Harness, image: str, greet_artifact: str
) -> None:
    """SageMaker Runtime API Reference, InvokeEndpoint, Errors: ModelError, HTTP 424, "Model (owned by
    the customer in the container) returned 4xx or 5xx error code", with OriginalStatusCode and
    OriginalMessage (the container's status and body) and LogStreamArn."""
    harness = conformance_harness
    harness.client("sagemaker").create_endpoint(
        EndpointName="model-errors",
        EndpointConfigName=deploy_config(harness, image, "model-errors", greet_artifact),
    )
    assert wait_endpoint(harness, "model-errors")["EndpointStatus"] == "InService"
    for inputs, status in (("reject", 400), ("boom", 500)):
        with pytest.raises(ClientError) as failed:
            invoke(harness, "model-errors", inputs)
        error = failed.value.response
        assert error["Error"]["Code"] == "ModelError"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
        assert error["OriginalStatusCode"] == status
        assert "error" in json.loads(error["OriginalMessage"])
        assert error["LogStreamArn"].endswith("/aws/sagemaker/Endpoints/model-errors")


def test_an_instance_whose_container_dies_is_replaced_and_the_endpoint_stays_in_service(
    conformance_harness: Harness, image: str, greet_artifact: str
) -> None:
    """SageMaker developer guide, "Best practices for deploying models on SageMaker AI Hosting
    Services": an instance that fails is replaced by SageMaker (more than one instance per variant
    keeps the variant answering meanwhile); "How your container should respond to health check (ping)
    requests": SageMaker pings `/ping` and expects 200 within 2 s. The endpoint's status does not
    change (DescribeEndpoint documents no status for an instance replacement: it stays InService on
    its config). While the only instance is down an invocation is answered `ServiceUnavailable`
    (InvokeEndpoint's 503; which error AWS answers then is not documented, see
    harness/compute/endpoints.py), and once the replacement passes its ping the endpoint answers again.
    A second death is handled the same way (the checker keeps watching the replacement)."""
    harness = conformance_harness
    sagemaker = harness.client("sagemaker")
    sagemaker.create_endpoint(
        EndpointName="replaced", EndpointConfigName=deploy_config(harness, image, "replaced", greet_artifact)
    )
    assert wait_endpoint(harness, "replaced")["EndpointStatus"] == "InService"
    key = ("123456789012", "us-east-1", "replaced")
    for death in (1, 2):
        (process,) = [p for p in harness.plane.endpoints.serving_processes() if "replaced" in str(p.log_path)]
        process.terminate()
        process.wait()
        answers: set[str] = set()

        def answered(answers: set[str] = answers) -> bool:
            try:
                body = json.loads(invoke(harness, "replaced", "hey")["Body"].read())
            except ClientError as error:
                answers.add(error.response["Error"]["Code"])
                assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503
                return False
            return bool(body["predictions"][0]["intent"] == "greet")

        wait_until(answered, bool, timeout=30)
        assert answers <= {"ServiceUnavailable"}
        described = sagemaker.describe_endpoint(EndpointName="replaced")
        assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "replaced")
        snapshot = harness.plane.endpoints.describe(key)
        assert snapshot is not None and snapshot.replaced_instances == death
