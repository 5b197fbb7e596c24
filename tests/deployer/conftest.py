"""Fixtures of the deployer's tests: one moto server for the package, AWS settings for handlers, events.

The emulator is `harness.emulator.EmbeddedEmulator` without the harness's seams (a real moto server on
127.0.0.1); `moto_fixes` repairs the two moto defects that change-set deploys hit (see its docstring).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from deployer import deploy as deployment
from deployer.client import AwsClient
from harness.emulator import EmbeddedEmulator
from tests.deployer import moto_fixes

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
# The stacks most tests share; test_deploy.py deploys its own under other names.
PREFIX = "dtest"
PROJECT = "dtest"


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return event


@pytest.fixture(scope="package")
def emulator() -> Iterator[EmbeddedEmulator]:
    undo = moto_fixes.install()
    try:
        with EmbeddedEmulator(install_seams=False) as running:
            yield running
    finally:
        undo()


@pytest.fixture(scope="package")
def aws_client(emulator: EmbeddedEmulator) -> AwsClient:
    return AwsClient(emulator.session(), endpoint_url=emulator.endpoint_url, poll_seconds=0.05)


@pytest.fixture(scope="package")
def platform(aws_client: AwsClient) -> dict[str, str]:
    """The platform deployed once for the Lambda and state machine tests; its outputs."""
    # Instance types as the harness passes them: moto's SageMaker rejects hosting types it does not list
    # (ml.g5.xlarge, the GPU default, is not in moto 5.2.5's list).
    overrides = {
        "ProjectName": PROJECT,
        "EndpointName": f"{PROJECT}-endpoint",
        "TrainingInstanceType": "ml.m5.xlarge",
        "HostingInstanceType": "ml.m5.large",
    }
    report = deployment.deploy(aws_client, PREFIX, overrides)
    outputs = {**report.stacks[0].outputs, **report.stacks[1].outputs}
    return outputs


@pytest.fixture
def aws_env(emulator: EmbeddedEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What a handler's boto3 finds on Lambda, pointed at the emulator (AWS_ENDPOINT_URL)."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", emulator.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


class LambdaContext:
    """The parts of the Lambda context object the handlers use."""

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.remaining_ms = remaining_ms
        self.aws_request_id = "8f4c2a1e-3b5d-4e6f-9a7b-1c2d3e4f5a6b"
        self.function_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def training_result(accuracy: float | None) -> dict[str, Any]:
    """A DescribeTrainingJob-shaped result, as the `.sync` integration returns it."""
    metrics = [{"MetricName": "train_loss", "Value": 0.21}]
    if accuracy is not None:
        metrics.append({"MetricName": "accuracy", "Value": accuracy})
    return {
        "TrainingJobName": "replaced-train",
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://artifacts/models/replaced-train/output/model.tar.gz"},
        "FinalMetricDataList": metrics,
    }


def training_machine(
    emulator: EmbeddedEmulator, platform: dict[str, str], name: str, train: dict[str, Any] | None
) -> str:
    """The deployed state machine, with Train (moto has no `.sync`) replaced by a Pass state returning
    `train`, and the endpoint poll's Wait at 0 s; everything else runs as deployed. Its ARN."""
    stepfunctions = emulator.client("stepfunctions")
    definition = json.loads(
        stepfunctions.describe_state_machine(stateMachineArn=platform["StateMachineArn"])["definition"]
    )
    if train is not None:
        definition["States"]["Train"] = {
            "Type": "Pass",
            "Result": train,
            "ResultPath": "$.TrainingJob",
            "Next": "HasMetrics",
        }
    definition["States"]["WaitForEndpoint"]["Seconds"] = 0
    arn: str = stepfunctions.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/test"
    )["stateMachineArn"]
    return arn


class RecordingReporter:
    """Records what an action reports. moto 5.2.5 has no CodePipeline job API (PutJobSuccessResult and
    PutJobFailureResult answer 500), so the pipeline paths report here; test_pipeline_job.py checks the
    boto3 reporter's requests against the API's model."""

    def __init__(self) -> None:
        self.successes: list[dict[str, Any]] = []
        self.failures: list[tuple[str, str]] = []

    def succeed(
        self,
        job_id: str,
        *,
        summary: str = "",
        output_variables: Mapping[str, str] | None = None,
        continuation_token: str | None = None,
    ) -> None:
        self.successes.append(
            {
                "job_id": job_id,
                "summary": summary,
                "output_variables": dict(output_variables or {}),
                "continuation_token": continuation_token,
            }
        )

    def fail(self, job_id: str, message: str) -> None:
        self.failures.append((job_id, message))


def wait_execution(emulator: EmbeddedEmulator, arn: str, timeout: float = 30) -> dict[str, Any]:
    stepfunctions = emulator.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution: dict[str, Any] = stepfunctions.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(0.05)
    raise AssertionError(f"{arn} still runs after {timeout} s")
