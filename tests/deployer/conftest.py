"""Fixtures of the deployer's tests: one emulator for the package, AWS settings for handlers, events.

The emulator is the project's: `harness.emulator.EmbeddedEmulator` as the harness runs it, a real moto
server on 127.0.0.1 with the harness's seams installed (harness/seams: change sets keep their outputs,
stacks' state machines run, API keys and usage plans come from templates, UpdateEndpoint exists, Lambda
handlers really run, S3 events reach EventBridge targets...). No compute plane is attached unless a
test asks for the `plane` fixture (test_statemachine.py and test_api_proxy.py do, where real containers
must run); without one, the emulator's SageMaker keeps moto's canned jobs and endpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deployer import deploy as deployment
from deployer.client import AwsClient
from harness.compute.plane import ComputePlane
from harness.compute.process import ProcessRuntime
from harness.emulator import EmbeddedEmulator
from tests.harness.standin import write_standin_tree

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
# The stacks most tests share; test_deploy.py deploys its own under other names.
PREFIX = "dtest"
PROJECT = "dtest"


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return event


@pytest.fixture(scope="package")
def emulator() -> Iterator[EmbeddedEmulator]:
    """tests/conftest.py's emulator, held for the whole package: the platform (`platform`) is deployed
    once for every module here."""
    with EmbeddedEmulator() as running:
        yield running


@dataclass
class Plane:
    plane: ComputePlane
    image: str


@pytest.fixture
def plane(emulator: EmbeddedEmulator, tmp_path: Path) -> Iterator[Plane]:
    """A compute plane attached for one test: training jobs and endpoints run for real, as child
    processes (the process runtime) of the small stand-in image of tests/harness/standin.py, which
    honours the container's interface with a trivial model (the most common intent). Step Functions'
    waits run at 1/100 (the deployed machine polls its endpoint every 30 s)."""
    compute = ComputePlane.create(
        "process",
        emulator.endpoint_url,
        tmp_path / "plane",
        endpoint_startup_limit_s=30.0,
        iam=emulator.context.iam,
    )
    runtime = compute.runtime
    assert isinstance(runtime, ProcessRuntime)
    digest = runtime.register(write_standin_tree(tmp_path / "standin"))
    # In the platform's image repository (named after the project): its SageMaker execution role may
    # pull only from there, and IAM refuses a pull from another repository before asking if it exists.
    image = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{PROJECT}@{digest}"
    context = emulator.context
    previous = context.step_functions.scale
    context.step_functions.set_scale(0.01)
    context.attach(compute)
    try:
        yield Plane(compute, image)
    finally:
        context.detach()
        context.step_functions.set_scale(previous)


def train_standin(emulator: EmbeddedEmulator, image: str, name: str, **hyperparameters: str) -> str:
    """Trains the stand-in on the plane (a one-intent CSV put under s3://standin-data/<name>/); the
    model artifact's S3 URI."""
    s3 = emulator.client("s3")
    if "standin-data" not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket="standin-data")
    s3.put_object(Bucket="standin-data", Key=f"{name}/part.csv", Body=b"Query,Intent\nhi,greet\n")
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": image, "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/test",
        HyperParameters=hyperparameters,
        InputDataConfig=[
            {
                "ChannelName": "training",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://standin-data/{name}/"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://standin-data/models/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 120},
    )
    deadline = time.monotonic() + 60
    while (job := sagemaker.describe_training_job(TrainingJobName=name))["TrainingJobStatus"] == "InProgress":
        if time.monotonic() > deadline:
            raise AssertionError(f"training job {name} still runs after 60 s")
        time.sleep(0.1)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    artifact: str = job["ModelArtifacts"]["S3ModelArtifacts"]
    return artifact


def serve_standin(emulator: EmbeddedEmulator, image: str, endpoint: str, artifact: str) -> None:
    """Creates an endpoint serving `artifact` with the stand-in image; returns once it is InService."""
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_model(
        ModelName=endpoint,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
        PrimaryContainer={"Image": image, "ModelDataUrl": artifact},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=endpoint,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": endpoint,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    deadline = time.monotonic() + 60
    while (status := sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]) == "Creating":
        if time.monotonic() > deadline:
            raise AssertionError(f"endpoint {endpoint} still Creating after 60 s")
        time.sleep(0.1)
    assert status == "InService", sagemaker.describe_endpoint(EndpointName=endpoint).get("FailureReason")


@pytest.fixture(scope="package")
def aws_client(emulator: EmbeddedEmulator) -> AwsClient:
    return AwsClient(emulator.session(), endpoint_url=emulator.endpoint_url, poll_seconds=0.05)


@pytest.fixture(scope="package")
def platform(aws_client: AwsClient) -> dict[str, str]:
    """The platform deployed once for the Lambda and state machine tests; its outputs."""
    # Instance types as the harness passes them: the emulator's SageMaker (moto's validation) rejects
    # hosting types it does not list (ml.g5.xlarge, the GPU default, is not in moto 5.2.5's list).
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
    emulator: EmbeddedEmulator,
    platform: dict[str, str],
    name: str,
    train: dict[str, Any] | None,
    hosting: tuple[dict[str, str], str] | None = None,
    described: dict[str, str] | None = None,
) -> str:
    """A copy of the deployed state machine, with Train replaced by a Pass state returning `train` (for
    tests that need no real training job; with a compute plane the deployed machine trains for real, see
    test_statemachine.py), and the endpoint poll's Wait at 0 s; everything else runs as deployed. With
    `hosting` (the hosting plan, a GPU instance type), the hosting as CloudFormation renders it for a GPU
    HostingInstanceType. With `described`, the endpoint poll's DescribeEndpoint answers that status and
    config name (a Pass state). Its ARN."""
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
    if described is not None:
        poll = definition["States"]["DescribeEndpoint"]
        selector = {**poll["ResultSelector"]}
        selector.pop("EndpointStatus.$")
        selector.pop("EndpointConfigName.$")
        definition["States"]["DescribeEndpoint"] = {
            "Type": "Pass",
            "Parameters": {**described, **selector},
            "ResultPath": poll["ResultPath"],
            "Next": poll["Next"],
        }
    if hosting is not None:
        plan, instance_type = hosting
        definition["States"]["PlanHosting"]["Result"] = plan
        for state in ("CreateEndpointConfig", "CreateGpuEndpointConfig"):
            variant = definition["States"][state]["Parameters"]["ProductionVariants"][0]
            variant["InstanceType"] = instance_type
    arn: str = stepfunctions.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/test"
    )["stateMachineArn"]
    return arn


class RecordingReporter:
    """Records what an action reports, so that a test of a handler's pipeline path reads the outcome
    directly; test_pipeline_job.py checks the boto3 reporter (`CodePipelineReporter`) against the
    emulator's job API (harness/seams/codepipeline.py)."""

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


def publish_api_environment(
    emulator: EmbeddedEmulator, platform: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """publish-api's environment exactly as the platform stack deployed it, set in this process (plus a
    quick poll), for tests that call the handler in process; returns the deployed variables."""
    configuration = emulator.client("lambda").get_function_configuration(
        FunctionName=platform["PublishApiFunctionName"]
    )
    variables: dict[str, str] = configuration["Environment"]["Variables"]
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("POLL_SECONDS", "0.05")
    return variables
