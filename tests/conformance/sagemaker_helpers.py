"""Small helpers for the SageMaker conformance tests (stand-in image, configs, waits)."""

from __future__ import annotations

import json
from typing import Any

from tests.harness.planes import ROLE_ARN, Harness, training_request, wait_until


def train(harness: Harness, image: str, name: str, data: str, **hyperparameters: str) -> dict[str, Any]:
    sagemaker = harness.client("sagemaker")
    request = training_request(name, image, data, "s3://conformance/models/", HyperParameters=hyperparameters)
    sagemaker.create_training_job(**request)
    return dict(
        wait_until(
            lambda: sagemaker.describe_training_job(TrainingJobName=name),
            lambda job: job["TrainingJobStatus"] not in ("InProgress", "Stopping"),
            timeout=60,
        )
    )


def deploy_config(harness: Harness, image: str, name: str, artifact: str) -> str:
    sagemaker = harness.client("sagemaker")
    sagemaker.create_model(
        ModelName=name, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": image, "ModelDataUrl": artifact}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    return name


def wait_endpoint(harness: Harness, name: str) -> dict[str, Any]:
    sagemaker = harness.client("sagemaker")
    return dict(
        wait_until(
            lambda: sagemaker.describe_endpoint(EndpointName=name),
            lambda endpoint: endpoint["EndpointStatus"] not in ("Creating", "Updating"),
            timeout=30,
        )
    )


def invoke(harness: Harness, name: str, inputs: object) -> Any:
    return harness.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, Body=json.dumps({"inputs": inputs}), ContentType="application/json"
    )
