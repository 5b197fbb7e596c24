"""The real container on the process runtime, driven by the deployer's own state machine.

Issue 4's "Must show" on the compute plane: the deployer's definitions are deployed into the embedded
emulator with the deployer's own code (`deployer.deploy.deploy`, as `mlops deploy` does); the stack's
state machine, started with a real CLINC150 subset in the stack's data bucket, runs a real training
job that passes the quality gate; the model and endpoint are created; `invoke_endpoint` answers
real held-out queries with sensible intents. Then a run on bad data fails with the container's own
reason, leaves nothing serving from it, and the endpoint from the good run keeps answering.

Timings of each step are printed (run pytest with -s to see them).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer import deploy as deployment
from deployer.client import AwsClient
from harness.datasets import clinc10_intents, clinc150_split
from harness.seams import stepfunctions as sfn_seam
from tests.harness.planes import Harness, running_harness, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYER_ASL = REPO_ROOT / "deployer" / "statemachine" / "training.asl.json"
HAS_CONTAINER = (REPO_ROOT / "container" / "train").is_file() and (
    REPO_ROOT / "container" / "serve"
).is_file()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (HAS_CONTAINER and DEPLOYER_ASL.exists()), reason="container or deployer ASL missing"
    ),
]

HYPERPARAMETERS = {"model_preset": "tiny", "epochs": "8", "seed": "42"}
PROJECT = "itest"
# Instance types as the harness passes them (moto's SageMaker lists no ml.g5 hosting type).
OVERRIDES = {
    "ProjectName": PROJECT,
    "EndpointName": f"{PROJECT}-intents",
    "TrainingInstanceType": "ml.m5.xlarge",
    "HostingInstanceType": "ml.m5.large",
}
QUALITY_THRESHOLD = 0.6


def _csv(rows: list[tuple[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Query", "Intent"])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_harness(tmp_path_factory.mktemp("plane"), startup_limit_s=120.0) as running:
        previous = sfn_seam.time_scale()
        sfn_seam.set_time_scale(0.01)
        try:
            yield running
        finally:
            sfn_seam.set_time_scale(previous)


@pytest.fixture(scope="module")
def outputs(harness: Harness) -> dict[str, str]:
    """The platform deployed by the deployer's own code; the stacks' outputs."""
    client = AwsClient(
        harness.emulator.session(), endpoint_url=harness.emulator.endpoint_url, poll_seconds=0.05
    )
    report = deployment.deploy(client, PROJECT, OVERRIDES)
    found = {**report.stacks[0].outputs, **report.stacks[1].outputs}
    intents = clinc10_intents()
    s3 = harness.client("s3")
    train = [(e.query, e.intent) for e in clinc150_split("train", intents)]
    s3.put_object(Bucket=found["DataBucketName"], Key="runs/clinc10/train.csv", Body=_csv(train))
    single = [(e.query, e.intent) for e in clinc150_split("train", intents[:1])]
    s3.put_object(Bucket=found["DataBucketName"], Key="runs/bad/train.csv", Body=_csv(single))
    return found


def _run(harness: Harness, outputs: dict[str, str], name: str, data: str) -> dict[str, Any]:
    sfn = harness.client("stepfunctions")
    # The execution input as the start-training Lambda builds it.
    payload = {
        "TrainingImage": harness.image_uri(REPO_ROOT),
        "TrainingData": f"s3://{outputs['DataBucketName']}/runs/{data}",
        "OutputPath": f"s3://{outputs['ArtifactBucketName']}/models/",
        "Hyperparameters": HYPERPARAMETERS,
        "QualityThreshold": QUALITY_THRESHOLD,
        "EndpointName": outputs["EndpointName"],
    }
    arn = sfn.start_execution(
        stateMachineArn=outputs["StateMachineArn"], name=name, input=json.dumps(payload)
    )["executionArn"]
    return dict(
        wait_until(
            lambda: sfn.describe_execution(executionArn=arn),
            lambda described: described["status"] != "RUNNING",
            timeout=600,
            interval=0.5,
        )
    )


def _step_seconds(harness: Harness, execution_arn: str) -> dict[str, float]:
    """Seconds spent in each state of an execution, from its history."""
    events = harness.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    entered: dict[str, Any] = {}
    spent: dict[str, float] = {}
    for event in events:
        if event["type"].endswith("StateEntered"):
            entered[event["stateEnteredEventDetails"]["name"]] = event["timestamp"]
        elif event["type"].endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            spent[name] = spent.get(name, 0.0) + (event["timestamp"] - entered[name]).total_seconds()
    return spent


def test_the_state_machine_trains_serves_and_survives_bad_data(
    harness: Harness, outputs: dict[str, str]
) -> None:
    endpoint_name = outputs["EndpointName"]
    sagemaker = harness.client("sagemaker")
    runtime = harness.client("sagemaker-runtime")

    started = time.monotonic()
    good = _run(harness, outputs, "good", "clinc10/")
    total = time.monotonic() - started
    assert good["status"] == "SUCCEEDED", good.get("cause")
    steps = _step_seconds(harness, good["executionArn"])
    job = sagemaker.describe_training_job(TrainingJobName="good-train")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics["accuracy"] >= QUALITY_THRESHOLD
    training_s = (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()
    endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    assert endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == "good-config"

    held_out: dict[str, str] = {}
    for example in clinc150_split("test", clinc10_intents()):
        held_out.setdefault(example.intent, example.query)
    queries = list(held_out.values())
    invoked = time.monotonic()
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint_name, Body=json.dumps({"inputs": queries[0]}), ContentType="application/json"
    )
    one_invocation = time.monotonic() - invoked
    first = json.loads(answer["Body"].read())["predictions"][0]
    assert first["query"] == queries[0] and first["intent"] == next(iter(held_out))
    batch = runtime.invoke_endpoint(
        EndpointName=endpoint_name, Body=json.dumps({"inputs": queries}), ContentType="application/json"
    )
    predicted = [p["intent"] for p in json.loads(batch["Body"].read())["predictions"]]
    correct = sum(p == intent for p, intent in zip(predicted, held_out, strict=True))
    assert correct >= 7, list(zip(queries, predicted, strict=True))

    bad = _run(harness, outputs, "bad", "bad/")
    assert bad["status"] == "FAILED"
    bad_job = sagemaker.describe_training_job(TrainingJobName="bad-train")
    assert bad_job["TrainingJobStatus"] == "Failed"
    assert bad_job["FailureReason"].startswith("AlgorithmError: ")
    failure_file = (
        harness.plane.work_dir / "training-jobs/123456789012/us-east-1/bad-train/opt/ml/output/failure"
    )
    assert failure_file.read_text(encoding="utf-8").strip() in bad["cause"].replace('\\"', '"')
    assert "bad-model" not in {m["ModelName"] for m in sagemaker.list_models()["Models"]}
    assert sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"] == "good-config"
    again = runtime.invoke_endpoint(
        EndpointName=endpoint_name, Body=json.dumps({"inputs": queries[0]}), ContentType="application/json"
    )
    assert json.loads(again["Body"].read())["predictions"][0]["intent"] == first["intent"]

    endpoint_s = sum(
        steps.get(state, 0.0) for state in ("CreateEndpoint", "WaitForEndpoint", "DescribeEndpoint")
    )
    print(
        "\ntimings (process runtime): "
        f"execution {total:.1f} s; training job {training_s:.1f} s "
        f"(Train state {steps.get('Train', 0):.1f} s); "
        f"endpoint start (create to InService, incl. scaled waits) {endpoint_s:.1f} s; "
        f"one invocation {one_invocation * 1000:.0f} ms; accuracy {metrics['accuracy']:.3f}; "
        f"held-out queries right {correct}/{len(queries)}; "
        f"bad-data execution failed with: {bad_job['FailureReason']}"
    )
