"""harness/faults.py and its hooks, on real processes: the replacement programs, the fault-injecting
runtime running them around the process (and Docker) runtime, the Lambda runtime's worker raising
through its `error_for` hook, the data rewrites and the delayed server stop. Each test has its own
board: no process-wide state."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.compute.container_runtime import ContainerProcess
from harness.compute.docker import DockerRuntime
from harness.compute.process import ProcessRuntime
from harness.faults import FaultBoard, FaultInjectingRuntime
from harness.lambda_runtime import FunctionSpec, LambdaRuntime, zip_sources


@pytest.fixture
def board() -> Iterator[FaultBoard]:
    board = FaultBoard()
    yield board
    board.clear()


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """A registered "image" whose own train and serve would succeed, so a failure can only be the fault."""
    tree = tmp_path / "tree"
    (tree / "container").mkdir(parents=True)
    (tree / "container" / "train").write_text("import sys; sys.exit(0)\n", encoding="utf-8")
    (tree / "container" / "serve").write_text("import sys; sys.exit(0)\n", encoding="utf-8")
    return tree


def test_a_failing_training_container_writes_its_reason_and_exits_with_the_code(
    board: FaultBoard, image_tree: Path, tmp_path: Path
) -> None:
    inner = ProcessRuntime()
    runtime = FaultInjectingRuntime(inner, board)
    image = runtime.resolve(f"repo@{inner.register(image_tree)}")
    board.fail_training("injected: out of memory", exit_code=3)
    base = tmp_path / "opt" / "ml"
    base.mkdir(parents=True)
    process = runtime.start_training(image, base, tmp_path / "train.log", {})
    assert process.wait(30) == 3
    assert (base / "output" / "failure").read_text(encoding="utf-8") == "injected: out of memory"

    board.clear()
    assert runtime.start_training(image, base, tmp_path / "again.log", {}).wait(30) == 0


def test_an_unhealthy_server_accepts_connections_and_never_answers(
    board: FaultBoard, image_tree: Path, tmp_path: Path
) -> None:
    inner = ProcessRuntime()
    runtime = FaultInjectingRuntime(inner, board)
    image = runtime.resolve(f"repo@{inner.register(image_tree)}")
    board.unhealthy_server()
    (tmp_path / "opt" / "ml").mkdir(parents=True)
    serving = runtime.start_serving(image, tmp_path / "opt" / "ml", tmp_path / "serve.log", {})
    try:
        deadline = time.monotonic() + 20
        while "never answers" not in (tmp_path / "serve.log").read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, "the replacement server did not start"
            time.sleep(0.1)
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"{serving.url}/ping", timeout=1.0)
        assert serving.process.poll() is None
    finally:
        serving.process.stop(5)


def test_the_lambda_worker_raises_the_injected_error_for_the_named_function_only(
    board: FaultBoard, tmp_path: Path
) -> None:
    code = zip_sources({"app.py": "def handler(event, context):\n    return {'ran': True}\n"})

    def spec(name: str) -> FunctionSpec:
        return FunctionSpec(
            name=name,
            arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
            handler="app.handler",
            runtime="python3.11",
            code_zip=code,
            code_sha256_hex=hashlib.sha256(code).hexdigest(),
            region="us-east-1",
            timeout_s=10.0,
            memory_mb=128,
        )

    runtime = LambdaRuntime(
        endpoint_url="http://127.0.0.1:9", cache_dir=tmp_path / "code", error_for=board.lambda_error
    )
    try:
        board.raise_in_lambda("broken", "injected registry outage")
        failed = runtime.invoke(spec("broken"), {})
        fine = runtime.invoke(spec("fine"), {})
    finally:
        runtime.close()
    assert failed.function_error == "Unhandled"
    assert b"injected registry outage" in failed.payload
    assert b"RuntimeError" in failed.payload
    assert fine.function_error is None and fine.payload == b'{"ran": true}'


CSV = "Query,Intent\nhello,greet\nbye,leave\nhi,greet\n"


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("missing_header", "hello,greet\nbye,leave\nhi,greet\n"),
        ("empty", ""),
        ("single_intent", "Query,Intent\nhello,greet\nhi,greet\n"),
    ],
)
def test_bad_data_rewrites_every_downloaded_file(
    board: FaultBoard, tmp_path: Path, problem: str, expected: str
) -> None:
    for name in ("train/a.csv", "train/more/b.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(CSV, encoding="utf-8")
    board.corrupt_channels(tmp_path)  # no fault yet: untouched
    assert (tmp_path / "train" / "a.csv").read_text(encoding="utf-8") == CSV
    board.corrupt_data(problem)  # type: ignore[arg-type]
    board.corrupt_channels(tmp_path)
    for name in ("train/a.csv", "train/more/b.csv"):
        assert (tmp_path / name).read_text(encoding="utf-8") == expected


def test_a_server_that_went_in_service_is_stopped_after_the_delay(board: FaultBoard, tmp_path: Path) -> None:
    def sleeper() -> ContainerProcess:
        log = (tmp_path / f"{time.monotonic_ns()}.log").open("ab")
        popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=log)
        return ContainerProcess(popen, tmp_path / "x.log", log)

    untouched = sleeper()
    board.serving_started(untouched)  # no fault: nothing scheduled
    board.kill_server_after(0.2)
    doomed = sleeper()
    board.serving_started(doomed)
    try:
        assert doomed.wait(20) != 0
        assert untouched.poll() is None
    finally:
        untouched.stop(5)
        doomed.stop(5)


def test_server_dies_stops_a_serving_container_now_and_then_only_times_containers(
    board: FaultBoard, tmp_path: Path
) -> None:
    """`times` bounds the deaths: the endpoint manager replaces a dead container's instance, and the
    replacement must not die again unless the scenario asked for more deaths."""

    def sleeper(name: str) -> ContainerProcess:
        log = (tmp_path / f"{name}.log").open("ab")
        popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=log)
        return ContainerProcess(popen, tmp_path / f"{name}.log", log)

    serving, first, spared = sleeper("serving"), sleeper("first"), sleeper("spared")
    try:
        board.kill_server_after(0.0, times=2, serving_now=[serving])
        board.serving_started(first)
        board.serving_started(spared)
        assert serving.wait(20) != 0
        assert first.wait(20) != 0
        time.sleep(0.5)
        assert spared.poll() is None
    finally:
        for process in (serving, first, spared):
            process.stop(5)
    with pytest.raises(ValueError, match="at least one"):
        board.kill_server_after(0.0, times=0)


def test_clearing_cancels_a_scheduled_stop(board: FaultBoard, tmp_path: Path) -> None:
    log = (tmp_path / "s.log").open("ab")
    process = ContainerProcess(
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=log),
        tmp_path / "s.log",
        log,
    )
    board.kill_server_after(0.5)
    board.serving_started(process)
    board.clear()
    time.sleep(1.0)
    try:
        assert process.poll() is None
    finally:
        process.stop(5)


def test_invalid_faults_are_refused(board: FaultBoard) -> None:
    with pytest.raises(ValueError, match=r"1\.\.255"):
        board.fail_training("x", exit_code=0)
    with pytest.raises(ValueError, match="missing_header"):
        board.corrupt_data("garbled")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        board.kill_server_after(-1)
    assert board.replacement("train") is None


@pytest.mark.docker
def test_a_failing_training_container_under_docker_runs_the_replacement_in_the_image(
    board: FaultBoard, tmp_path: Path
) -> None:
    """The Docker runtime's hook: the image's own interpreter runs the replacement (the offline base
    image, which has python3, stands for any image here)."""
    runtime = FaultInjectingRuntime(DockerRuntime(), board)
    base_image = "mlops-base:bookworm"
    image_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", base_image],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not image_id:
        pytest.skip(f"{base_image} is not built (scripts/docker-engine.sh makes it)")
    image = runtime.resolve(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/base@{image_id}")
    board.fail_training("injected under docker", exit_code=4)
    base = tmp_path / "opt" / "ml"
    base.mkdir(parents=True)
    process = runtime.start_training(image, base, tmp_path / "train.log", {})
    assert process.wait(120) == 4
    assert (base / "output" / "failure").read_text(encoding="utf-8") == "injected under docker"
