"""The Docker runtime: images run by id, training without network, serving on a loopback port.

Two images: the stand-in (tests/harness/standin.py, built here on the offline base image in seconds)
checks the runtime's contract; the real image, built by scripts/build-image.sh, runs a real training
job and endpoint through the SageMaker seams (slow).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.compute.container_runtime import ImageNotFound
from harness.compute.docker import DockerRuntime
from harness.datasets import clinc10_intents, clinc150_split
from tests.harness.planes import ROLE_ARN, Harness, running_harness, training_request, wait_until
from tests.harness.standin import write_standin_tree

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDIN_TAG = "mlops-harness-standin:test"
REAL_TAG = "byoc-gptneo:local"


@pytest.fixture(scope="module")
def standin_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    tree = write_standin_tree(tmp_path_factory.mktemp("standin"))
    subprocess.run(
        ["docker", "build", "-q", "-t", STANDIN_TAG, str(tree / "container")],
        check=True,
        capture_output=True,
        env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        timeout=300,
    )
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", STANDIN_TAG],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"123456789012.dkr.ecr.us-east-1.amazonaws.com/standin@{image_id}"


def _opt_ml(base: Path, rows: str) -> Path:
    (base / "input" / "config").mkdir(parents=True)
    for name, value in (
        ("hyperparameters.json", {}),
        ("inputdataconfig.json", {"training": {"TrainingInputMode": "File"}}),
        ("resourceconfig.json", {"current_host": "algo-1", "hosts": ["algo-1"]}),
    ):
        (base / "input" / "config" / name).write_text(json.dumps(value))
    (base / "input" / "data" / "training").mkdir(parents=True)
    (base / "input" / "data" / "training" / "part.csv").write_text(rows)
    (base / "model").mkdir()
    (base / "output").mkdir()
    return base


def test_the_image_resolves_by_its_digest(standin_image: str) -> None:
    runtime = DockerRuntime()
    resolved = runtime.resolve(standin_image)
    assert standin_image.endswith(resolved.digest)
    with pytest.raises(ImageNotFound):
        runtime.resolve("standin@sha256:" + "0" * 64)


def test_train_then_serve_in_containers(standin_image: str, tmp_path: Path) -> None:
    runtime = DockerRuntime()
    image = runtime.resolve(standin_image)
    base = _opt_ml(tmp_path / "opt" / "ml", "Query,Intent\nhi,greet\nyo,greet\nbye,leave\n")
    training = runtime.start_training(image, base, tmp_path / "train.log", {})
    assert training.wait(120) == 0, (tmp_path / "train.log").read_text()
    assert json.loads((base / "model" / "model.json").read_text())["intent"] == "greet"
    assert "accuracy=0.6667;" in (tmp_path / "train.log").read_text()

    serving = runtime.start_serving(image, base, tmp_path / "serve.log", {})
    try:
        wait_until(lambda: _ping(serving.url), lambda ok: ok, timeout=60, interval=0.25)
        answer = requests.post(f"{serving.url}/invocations", json={"inputs": "hey"}, timeout=10).json()
        assert answer["predictions"][0]["intent"] == "greet"
    finally:
        assert serving.process.stop(20) is not None
    assert not _ping(serving.url)


def test_the_training_container_has_no_network(standin_image: str, tmp_path: Path) -> None:
    runtime = DockerRuntime()
    image = runtime.resolve(standin_image)
    # The stand-in's `train` is replaced by a probe of the container's interfaces (the mount is real).
    base = _opt_ml(tmp_path / "opt" / "ml", "Query,Intent\nhi,greet\n")
    probe = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{base}:/opt/ml",
            image.reference,
            "python3",
            "-c",
            "import socket; s = socket.socket(); s.settimeout(2); s.connect(('1.1.1.1', 53))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()
    process = runtime.start_training(image, base, tmp_path / "train.log", {})
    process.wait(120)
    inspect = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"ancestor={image.reference}", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert inspect.stdout.strip() == "", "the training container is removed once it exits"


def _ping(url: str) -> bool:
    try:
        return requests.get(f"{url}/ping", timeout=2).status_code == 200
    except requests.RequestException:
        return False


# -- the real image through the SageMaker seams ------------------------------------------------------
@pytest.fixture(scope="module")
def real_image() -> str:
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "build-image.sh"), REAL_TAG],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", REAL_TAG],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"123456789012.dkr.ecr.us-east-1.amazonaws.com/byoc-gptneo@{image_id}"


@pytest.fixture(scope="module")
def docker_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_harness(
        tmp_path_factory.mktemp("plane"), startup_limit_s=120.0, runtime="docker"
    ) as running:
        yield running


@pytest.mark.slow
def test_the_real_image_trains_and_serves_through_sagemaker(docker_harness: Harness, real_image: str) -> None:
    s3 = docker_harness.client("s3")
    sagemaker = docker_harness.client("sagemaker")
    s3.create_bucket(Bucket="data")
    rows = ["Query,Intent"] + [f'"{e.query}",{e.intent}' for e in clinc150_split("train", clinc10_intents())]
    s3.put_object(Bucket="data", Key="clinc10/train.csv", Body="\n".join(rows).encode())
    request = training_request(
        "docker-job", real_image, "s3://data/clinc10/", "s3://data/models/", HyperParameters={"epochs": "8"}
    )
    started = time.monotonic()
    sagemaker.create_training_job(**request)
    job = wait_until(
        lambda: sagemaker.describe_training_job(TrainingJobName="docker-job"),
        lambda described: described["TrainingJobStatus"] not in ("InProgress", "Stopping"),
        timeout=900,
        interval=1.0,
    )
    training_s = time.monotonic() - started
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    sagemaker.create_model(
        ModelName="docker-model",
        ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": real_image, "ModelDataUrl": job["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="docker-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "docker-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    started = time.monotonic()
    sagemaker.create_endpoint(EndpointName="docker-intents", EndpointConfigName="docker-config")
    endpoint = wait_until(
        lambda: sagemaker.describe_endpoint(EndpointName="docker-intents"),
        lambda described: described["EndpointStatus"] != "Creating",
        timeout=180,
        interval=0.25,
    )
    endpoint_s = time.monotonic() - started
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    example = clinc150_split("test", clinc10_intents())[0]
    started = time.monotonic()
    answer = docker_harness.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="docker-intents",
        Body=json.dumps({"inputs": example.query}),
        ContentType="application/json",
    )
    invocation_s = time.monotonic() - started
    assert json.loads(answer["Body"].read())["predictions"][0]["intent"] == example.intent
    print(
        f"\ntimings (docker runtime): training job {training_s:.1f} s, endpoint start {endpoint_s:.1f} s, "
        f"one invocation {invocation_s * 1000:.0f} ms"
    )
