"""The whole training flow on the Docker runtime, through `LocalAws`: the deployer's state machine
trains and serves the image that scripts/build-image.sh built, run by its id; `invoke_endpoint` answers.

The process-runtime twin, with the other must-shows, is test_stack_flow.py.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from harness.datasets import clinc10_intents, clinc150_split
from harness.local import REPO_ROOT, Image, LocalAws, LocalAwsOptions

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TAG = "byoc-gptneo:local"
PROJECT = "e3docker"
HYPERPARAMETERS = {"model_preset": "tiny", "epochs": "8", "seed": "42"}
QUALITY_THRESHOLD = 0.6


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    options = LocalAwsOptions(
        work_dir=tmp_path_factory.mktemp("stack-docker"),
        runtime="docker",
        stack_prefix=PROJECT,
        parameters={"ProjectName": PROJECT, "EndpointName": f"{PROJECT}-intents"},
        endpoint_startup_limit_s=180.0,
    )
    with LocalAws(options) as stack:
        stack.deploy()
        yield stack


@pytest.fixture(scope="module")
def image(aws: LocalAws) -> Image:
    """The image built by the project's script (Docker's layer cache makes a rebuild quick)."""
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "build-image.sh"), TAG],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return aws.docker_image(TAG)


def test_the_state_machine_trains_and_serves_the_built_image(aws: LocalAws, image: Image) -> None:
    data = aws.put_training_data(clinc150_split("train", clinc10_intents()), "runs/docker/train.csv")
    execution_input = aws.execution_input(
        image, f"s3://{data.bucket}/runs/docker/", HYPERPARAMETERS, QUALITY_THRESHOLD
    )
    started = time.monotonic()
    result = aws.wait_for_execution(aws.start_execution(f"{PROJECT}-docker", execution_input), timeout_s=1200)
    execution_s = time.monotonic() - started
    assert result.succeeded, result.cause
    job = aws.client("sagemaker").describe_training_job(TrainingJobName=f"{PROJECT}-docker-train")
    assert job["AlgorithmSpecification"]["TrainingImage"] == image.uri
    endpoint = aws.describe_endpoint()
    assert (
        endpoint["EndpointStatus"] == "InService"
        and endpoint["EndpointConfigName"] == f"{PROJECT}-docker-config"
    )

    held_out: dict[str, str] = {}
    for example in clinc150_split("test", clinc10_intents()):
        held_out.setdefault(example.intent, example.query)
    predicted = [p["intent"] for p in aws.invoke_endpoint(list(held_out.values()))["predictions"]]
    right = sum(p == i for p, i in zip(predicted, held_out, strict=True))
    assert right >= 7, list(zip(held_out.values(), predicted, strict=True))
    training_s = (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()
    print(
        f"\ntimings (docker runtime): execution {execution_s:.1f} s, training job {training_s:.1f} s, "
        f"held-out queries right {right}/{len(held_out)}"
    )
