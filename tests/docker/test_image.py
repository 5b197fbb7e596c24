"""The image, built by scripts/build-image.sh, running `train` and `serve` in real containers.

`train` runs without a network (as SageMaker's network isolation runs it) on an `/opt/ml` mounted from a
temporary directory holding the config and real CLINC150 data, as the host's user so that what it writes
belongs to whoever runs the tests. `serve` runs as the image's unprivileged `byoc` user with the trained
model mounted read-only and port 8080 published on 127.0.0.1, and is asked real held-out queries.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from docker.models.containers import Container
from testcontainers.core.container import DockerContainer

from harness.datasets import LabelledQuery, clinc10_intents, clinc150_split
from tests.container.conftest import make_opt_ml
from tests.container.serving import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-image.sh"
TAG = "byoc-gptneo:test"


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    docker_client = docker.from_env()
    yield docker_client
    docker_client.close()


@pytest.fixture(scope="session")
def image(client: docker.DockerClient) -> str:
    """Builds the image once per session with the project's own script; returns its id."""
    result = subprocess.run(
        [str(BUILD_SCRIPT), TAG], capture_output=True, text=True, timeout=1800, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert lines["image"] == TAG
    assert client.images.get(TAG).id == lines["id"]
    return lines["id"]


def run_to_end(container: Container, timeout: float) -> tuple[int, str]:
    try:
        status: dict[str, Any] = container.wait(timeout=timeout)
        logs = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    return int(status["StatusCode"]), logs


@pytest.fixture(scope="session")
def trained_in_a_container(
    client: docker.DockerClient, image: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """`docker run IMAGE train` with no network on the 10-intent CLINC150 subset; returns /opt/ml."""
    intents = clinc10_intents()
    opt_ml = make_opt_ml(
        tmp_path_factory.mktemp("docker_opt_ml"),
        clinc150_split("train", intents),
        clinc150_split("val", intents),
        hyperparameters={"model_preset": "tiny"},
    )
    container = client.containers.run(
        image,
        command="train",
        network_mode="none",
        volumes={str(opt_ml): {"bind": "/opt/ml", "mode": "rw"}},
        user=f"{os.getuid()}:{os.getgid()}",
        detach=True,
    )
    exit_code, logs = run_to_end(container, timeout=900)
    assert exit_code == 0, logs[-4000:]
    assert "accuracy=" in logs
    return opt_ml


def test_train_in_a_container_without_network_writes_the_model(trained_in_a_container: Path) -> None:
    model_dir = trained_in_a_container / "model"
    names = {path.name for path in model_dir.iterdir()}
    assert {"model.onnx", "model.safetensors", "tokenizer.json", "labels.json", "metrics.json"} <= names
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.85
    assert not (trained_in_a_container / "output" / "failure").exists()
    assert (model_dir / "model.onnx").stat().st_uid == os.getuid()


def test_serve_in_a_container_answers_real_queries(image: str, trained_in_a_container: Path) -> None:
    """`serve` in a container started by testcontainers, as SageMaker starts it: `docker run IMAGE serve`
    with the model mounted read-only and port 8080 published (here on a loopback port)."""
    port = free_port()
    serving = (
        DockerContainer(image)
        .with_command("serve")
        .with_bind_ports(8080, port)
        .with_volume_mapping(str(trained_in_a_container / "model"), "/opt/ml/model", "ro")
        .with_kwargs(user="byoc")
    )
    url = f"http://127.0.0.1:{port}"
    with serving:
        container = serving.get_wrapped_container()
        wait_for_ping(url, container)
        per_intent: dict[str, LabelledQuery] = {}
        for example in clinc150_split("test", clinc10_intents()):
            per_intent.setdefault(example.intent, example)
        examples = list(per_intent.values())
        response = requests.post(
            f"{url}/invocations",
            json={"inputs": [example.query for example in examples]},
            headers={"X-Amzn-SageMaker-Custom-Attributes": "run=docker-test"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.headers["X-Amzn-SageMaker-Custom-Attributes"] == "run=docker-test"
        predictions = response.json()["predictions"]
        assert [p["query"] for p in predictions] == [example.query for example in examples]
        correct = sum(p["intent"] == e.intent for p, e in zip(predictions, examples, strict=True))
        assert correct >= 8, predictions
        assert requests.post(f"{url}/invocations", data="x", timeout=10).status_code == 415
        container.stop(timeout=20)  # SIGTERM: serve drains and exits 0
        assert container.wait(timeout=30)["StatusCode"] == 0
        logs = container.logs().decode("utf-8", "replace")
        loaded = [json.loads(line) for line in logs.splitlines() if '"model_loaded"' in line]
        assert loaded and loaded[0]["backend"] == "onnx"


def wait_for_ping(url: str, container: Container, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        container.reload()
        if container.status == "exited":
            raise AssertionError(container.logs().decode("utf-8", "replace")[-4000:])
        time.sleep(0.2)
    raise AssertionError(f"serve did not answer /ping within {timeout} s")
