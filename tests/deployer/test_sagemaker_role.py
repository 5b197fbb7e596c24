"""The SageMaker execution role (SageMakerExecutionRole) without a permission the job or endpoint needs.

SageMaker reads a training job's input channels, writes its model and pulls its image with the job's
`RoleArn`, and fetches a model's data and image with the model's `ExecutionRoleArn` (SageMaker developer
guide, "How to use SageMaker execution roles": CreateTrainingJob API and CreateModel API execution role
permissions: s3:ListBucket, s3:GetObject, s3:PutObject, ecr:BatchGetImage, ...). Each test deploys the
platform's role as the template has it, takes one of those permissions out of the deployed role's policy,
runs the part of the flow that needs it on the compute plane (the stand-in image, real processes) and
sees it fail where SageMaker fails it: the job `Failed` with a "ClientError: ..." FailureReason, the
endpoint `Failed`, each naming the assumed role (session `SageMaker`) and the action the role lacks.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from harness.emulator import EmbeddedEmulator
from tests.deployer.conftest import Plane
from tests.deployer.roles import ACCOUNT, deployed_role, role_without


@pytest.fixture
def role(emulator: EmbeddedEmulator, platform: dict[str, str]) -> str:
    del platform  # deployed
    return deployed_role(emulator, "SageMakerExecutionRole")


@pytest.fixture
def image(plane: Plane, platform: dict[str, str]) -> str:
    """The stand-in image under the deployed repository's URI (the process runtime finds it by digest)."""
    return f"{platform['ImageRepositoryUri']}@{plane.image.partition('@')[2]}"


def _train(emulator: EmbeddedEmulator, platform: dict[str, str], role: str, image: str, name: str) -> Any:
    s3 = emulator.client("s3")
    data_bucket, artifact_bucket = platform["DataBucketName"], platform["ArtifactBucketName"]
    s3.put_object(Bucket=data_bucket, Key=f"role-tests/{name}/part.csv", Body=b"Query,Intent\nhi,greet\n")
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        RoleArn=role,
        InputDataConfig=[
            {
                "ChannelName": "training",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{data_bucket}/role-tests/{name}/",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{artifact_bucket}/models/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 120},
    )
    deadline = time.monotonic() + 60
    while (job := sagemaker.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] == "InProgress":
        assert time.monotonic() < deadline, f"training job {name} still runs after 60 s"
        time.sleep(0.1)
    return job


def _denied(role_name: str, action: str, resource: str) -> str:
    return (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/SageMaker is not authorized to perform: "
        f"{action} on resource: {resource} because no identity-based policy allows the {action} action"
    )


def test_the_template_role_trains_and_uploads_the_model(
    emulator: EmbeddedEmulator, platform: dict[str, str], role: str, image: str
) -> None:
    job = _train(emulator, platform, role, image, "role-ok")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ModelArtifacts"]["S3ModelArtifacts"].startswith(
        f"s3://{platform['ArtifactBucketName']}/models/"
    )


def test_without_list_bucket_the_input_channel_cannot_be_read(
    emulator: EmbeddedEmulator, platform: dict[str, str], role: str, image: str
) -> None:
    with role_without(emulator, role, "s3:ListBucket") as name:
        job = _train(emulator, platform, role, image, "role-no-list")
    assert job["TrainingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith("ClientError: Data download failed:")
    assert _denied(name, "s3:ListBucket", f"arn:aws:s3:::{platform['DataBucketName']}") in reason


def test_without_get_object_the_input_channel_cannot_be_downloaded(
    emulator: EmbeddedEmulator, platform: dict[str, str], role: str, image: str
) -> None:
    with role_without(emulator, role, "s3:GetObject") as name:
        job = _train(emulator, platform, role, image, "role-no-get")
    assert job["TrainingJobStatus"] == "Failed"
    key = f"arn:aws:s3:::{platform['DataBucketName']}/role-tests/role-no-get/part.csv"
    assert job["FailureReason"].startswith("ClientError: Data download failed:")
    assert _denied(name, "s3:GetObject", key) in job["FailureReason"]


def test_without_put_object_the_model_is_not_uploaded(
    emulator: EmbeddedEmulator, platform: dict[str, str], role: str, image: str
) -> None:
    with role_without(emulator, role, "s3:PutObject") as name:
        job = _train(emulator, platform, role, image, "role-no-put")
    assert job["TrainingJobStatus"] == "Failed"
    key = f"arn:aws:s3:::{platform['ArtifactBucketName']}/models/role-no-put/output/model.tar.gz"
    assert job["FailureReason"].startswith("ClientError: Failed to upload the model to ")
    assert _denied(name, "s3:PutObject", key) in job["FailureReason"]


def test_without_batch_get_image_the_training_image_is_not_pulled(
    emulator: EmbeddedEmulator, platform: dict[str, str], role: str, image: str
) -> None:
    with role_without(emulator, role, "ecr:BatchGetImage") as name:
        job = _train(emulator, platform, role, image, "role-no-pull")
    assert job["TrainingJobStatus"] == "Failed"
    reason = job["FailureReason"]
    assert reason.startswith(
        f"ClientError: The role '{role}' does not have BatchGetImage permission for the image"
    )
    repository = platform["ImageRepositoryUri"].split("/", 1)[1]
    assert (
        _denied(name, "ecr:BatchGetImage", f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{repository}")
        in reason
    )


def test_without_get_object_the_endpoint_cannot_fetch_its_model(
    emulator: EmbeddedEmulator, platform: dict[str, str], role: str, image: str
) -> None:
    job = _train(emulator, platform, role, image, "role-serve")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_model(
        ModelName="role-serve",
        ExecutionRoleArn=role,
        PrimaryContainer={"Image": image, "ModelDataUrl": artifact},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="role-serve",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "role-serve",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    with role_without(emulator, role, "s3:GetObject") as name:
        sagemaker.create_endpoint(EndpointName="role-serve", EndpointConfigName="role-serve")
        deadline = time.monotonic() + 60
        while (endpoint := sagemaker.describe_endpoint(EndpointName="role-serve"))[
            "EndpointStatus"
        ] == "Creating":
            assert time.monotonic() < deadline, "the endpoint is still Creating after 60 s"
            time.sleep(0.1)
    sagemaker.delete_endpoint(EndpointName="role-serve")
    assert endpoint["EndpointStatus"] == "Failed"
    reason = endpoint["FailureReason"]
    assert reason.startswith(
        f'Failed to download model data for container "container_1" from URL: "{artifact}".'
    )
    assert _denied(name, "s3:GetObject", artifact.replace("s3://", "arn:aws:s3:::")) in reason


def test_a_role_that_does_not_trust_sagemaker_is_refused_at_create_training_job(
    emulator: EmbeddedEmulator, platform: dict[str, str], image: str
) -> None:
    """SageMaker assumes the execution role (its trust policy must name sagemaker.amazonaws.com: IAM user
    guide, "Terms and concepts for roles"); CreateTrainingJob refuses a role it cannot assume with a
    ValidationException."""
    iam = emulator.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="not-for-sagemaker", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    with pytest.raises(ClientError) as raised:
        _train(emulator, platform, role["Arn"], image, "role-untrusted")
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith(
        f"Could not assume role {role['Arn']}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role."
    )
