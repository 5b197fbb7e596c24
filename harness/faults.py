"""Injected faults: the one place that says what should go wrong, and the wrappers that make it so.

Each running harness has its own `FaultBoard` (`harness.context.HarnessContext.faults`); the scenario
harness (harness/scenarios/adapter.py) switches faults on there and clears it when the scenario ends.
The production code paths know nothing of faults: the board acts through wrappers and hooks that the
compute plane and the Lambda runtime take when they are built (`ComputePlane.create(faults=...)`,
`LambdaRuntime(error_for=...)`). Each fault acts on a real process, never on a faked answer:

- `fail_training(reason, exit_code)`: the training container runs a small program instead of `train`
  that writes `reason` to /opt/ml/output/failure and exits with `exit_code`, as a crashing algorithm
  does (`FaultInjectingRuntime`, which wraps the container runtime).
- `corrupt_data(problem)`: the training job's input channels are rewritten after the download, before
  the container starts (S3 keeps the good data): `missing_header` drops the `Query,Intent` header line,
  `empty` truncates each file, `single_intent` keeps the rows of one intent only
  (`corrupt_channels`, the training runner's `prepare_input` hook).
- `unhealthy_server()`: the serving container runs a server that accepts connections on its port and
  never answers, so `GET /ping` never passes (`FaultInjectingRuntime`).
- `raise_in_lambda(function_name, message)`: the named function's worker process raises
  `RuntimeError(message)` where its handler would run (`lambda_error`, the Lambda runtime's
  `error_for` hook, which passes it to bootstrap.py in the invocation request).
- `capacity_shortage(jobs)`: the next `jobs` training jobs fail while their instances are provisioned,
  before any data is downloaded, with SageMaker's FailureReason `CapacityError: Unable to provision
  requested ML compute capacity. ...` (`capacity_error`, the training runner's `provision` hook).
- `kill_server_after(after_s, times, serving_now)`: the serving containers in `serving_now` (those
  InService when the fault is switched on) and then each one that goes InService later, `times` of
  them in all, are sent SIGTERM `after_s` seconds after (`serving_started`, the endpoint manager's
  `on_in_service` hook). The endpoint manager replaces a dead container's instance, and that
  replacement is spared once `times` containers have died.
- `fail_api_calls(service, operation, error, times)`: the next `times` calls of one AWS API operation,
  from any caller, are answered with `error` (an `harness.aws_errors.AwsError`: throttling, a 5xx,
  a quota) at the emulator's boundary instead of being carried out (`api_failure`, read by
  harness/seams/api_faults.py on every request).

Replacement programs are Python source run by the image's own interpreter (`python -c CODE ARGS...`),
using only the standard library and SageMaker's container contract (SAGEMAKER_BASE_DIR, else /opt/ml;
SAGEMAKER_BIND_TO_PORT, else 8080).
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, Protocol

from harness.aws_errors import AwsError, check_call
from harness.compute.container_runtime import (
    ContainerProcess,
    ContainerRuntime,
    PythonProgram,
    ResolvedImage,
    RuntimeWrapper,
    ServingContainer,
)

LOG = logging.getLogger(__name__)

# SageMaker's FailureReason when no instance of the requested type can be had (as reported by users of
# DescribeTrainingJob; SageMaker API Reference, DescribeTrainingJob, FailureReason).
CAPACITY_ERROR: Final = (
    "CapacityError: Unable to provision requested ML compute capacity. "
    "Please retry using a different ML instance type."
)

DataProblem = Literal["missing_header", "empty", "single_intent"]
DATA_PROBLEMS: Final = ("missing_header", "empty", "single_intent")

_FAILING_TRAIN: Final = """\
import os, sys
base = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
os.makedirs(os.path.join(base, "output"), exist_ok=True)
with open(os.path.join(base, "output", "failure"), "w", encoding="utf-8") as handle:
    handle.write(sys.argv[1])
print("injected fault: training fails: " + sys.argv[1], file=sys.stderr, flush=True)
sys.exit(int(sys.argv[2]))
"""

_SILENT_SERVE: Final = """\
import os, socket, sys
port = os.environ.get("SAGEMAKER_BIND_TO_PORT")
host = "127.0.0.1" if port else "0.0.0.0"
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, int(port or 8080)))
server.listen(64)
print("injected fault: serve accepts connections and never answers", file=sys.stderr, flush=True)
held = []
while True:
    connection, _ = server.accept()
    held.append(connection)
"""


class Stoppable(Protocol):
    """What `serving_started` needs of a serving container
    (harness.compute.container_runtime.ContainerProcess)."""

    def terminate(self) -> None: ...

    def poll(self) -> int | None: ...


class FaultBoard:
    """The faults switched on now; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._replacements: dict[str, PythonProgram] = {}
        self._data_problem: DataProblem | None = None
        self._lambda_errors: dict[str, str] = {}
        self._kill_after_s: float | None = None
        self._kills_left = 0
        self._capacity_failures = 0
        self._api_failures: dict[tuple[str, str], tuple[AwsError, int]] = {}
        self._timers: list[threading.Timer] = []

    # -- switching faults on and off -----------------------------------------------------------------
    def fail_training(self, reason: str, exit_code: int = 1) -> None:
        if not 1 <= exit_code <= 255:
            raise ValueError(f"a failing exit code is 1..255, got {exit_code}")
        with self._lock:
            self._replacements["train"] = PythonProgram(_FAILING_TRAIN, (reason, str(exit_code)))

    def corrupt_data(self, problem: DataProblem) -> None:
        if problem not in DATA_PROBLEMS:
            raise ValueError(f"a data problem is one of {', '.join(DATA_PROBLEMS)}, not {problem!r}")
        with self._lock:
            self._data_problem = problem

    def unhealthy_server(self) -> None:
        with self._lock:
            self._replacements["serve"] = PythonProgram(_SILENT_SERVE)

    def raise_in_lambda(self, function_name: str, message: str) -> None:
        if not function_name:
            raise ValueError("raise_in_lambda needs the deployed function's name")
        with self._lock:
            self._lambda_errors[function_name] = message

    def capacity_shortage(self, jobs: int = 1) -> None:
        if jobs < 1:
            raise ValueError(f"capacity_shortage needs at least one job, got {jobs}")
        with self._lock:
            self._capacity_failures = jobs

    def kill_server_after(
        self, after_s: float, times: int = 1, serving_now: Sequence[Stoppable] = ()
    ) -> None:
        if after_s < 0:
            raise ValueError(f"after_s must not be negative, got {after_s}")
        if times < 1:
            raise ValueError(f"kill_server_after needs at least one server to stop, got {times}")
        with self._lock:
            self._kill_after_s = after_s
            self._kills_left = times
        for process in serving_now:
            self.serving_started(process)

    def fail_api_calls(self, service: str, operation: str, error: AwsError, times: int = 1) -> None:
        """The next `times` calls of `service`'s `operation` (botocore's names: `sagemaker`,
        `DescribeEndpoint`) are answered with `error`; a second call for the same operation replaces
        the first."""
        check_call(service, operation)
        if times < 1:
            raise ValueError(f"fail_api_calls needs at least one call to fail, got {times}")
        with self._lock:
            self._api_failures[(service, operation)] = (error, times)

    def clear(self) -> None:
        """Switches every fault off and cancels pending server kills."""
        with self._lock:
            self._api_failures.clear()
            timers, self._timers = self._timers, []
            self._replacements.clear()
            self._data_problem = None
            self._lambda_errors.clear()
            self._kill_after_s = None
            self._kills_left = 0
            self._capacity_failures = 0
        for timer in timers:
            timer.cancel()

    # -- hooks ---------------------------------------------------------------------------------------
    def wrap(self, runtime: ContainerRuntime) -> ContainerRuntime:
        """`runtime`, running what this board says in place of the image's `train` or `serve`."""
        return FaultInjectingRuntime(runtime, self)

    def replacement(self, program: str) -> PythonProgram | None:
        """What to run instead of the image's `train` or `serve`, or None to run it."""
        with self._lock:
            return self._replacements.get(program)

    def corrupt_channels(self, data_dir: Path) -> None:
        """Rewrites every file under a training job's `input/data/` as the data fault says (if any)."""
        with self._lock:
            problem = self._data_problem
        if problem is None:
            return
        for path in sorted(file for file in data_dir.rglob("*") if file.is_file()):
            text = path.read_text(encoding="utf-8", errors="replace")
            path.write_text(_corrupted(text, problem), encoding="utf-8")
            LOG.info("injected fault: %s in %s", problem, path)

    def capacity_error(self) -> str | None:
        """The FailureReason for a training job that gets no instance, or None (counts the job down)."""
        with self._lock:
            if self._capacity_failures == 0:
                return None
            self._capacity_failures -= 1
        return CAPACITY_ERROR

    def api_failure(self, service: str, operation: str) -> AwsError | None:
        """The error this call of `service`'s `operation` is answered with, or None (counts it down)."""
        key = (service, operation)
        with self._lock:
            failing = self._api_failures.get(key)
            if failing is None:
                return None
            error, left = failing
            if left <= 1:
                del self._api_failures[key]
            else:
                self._api_failures[key] = (error, left - 1)
        return error

    def api_failures_left(self, service: str, operation: str) -> int:
        """How many calls of `service`'s `operation` will still fail."""
        with self._lock:
            failing = self._api_failures.get((service, operation))
        return failing[1] if failing is not None else 0

    def lambda_error(self, function_name: str) -> str | None:
        """The message the function's worker raises instead of running its handler, or None."""
        with self._lock:
            return self._lambda_errors.get(function_name)

    def serving_started(self, process: Stoppable) -> None:
        """Told of every serving container that went InService: schedules its death if asked to."""
        with self._lock:
            after_s = self._kill_after_s
            if after_s is None or self._kills_left == 0:
                return
            self._kills_left -= 1
            timer = threading.Timer(after_s, _terminate, args=(process,))
            timer.daemon = True
            self._timers.append(timer)
        timer.start()


def _terminate(process: Stoppable) -> None:
    if process.poll() is None:
        LOG.info("injected fault: stopping a model server")
        process.terminate()


def _corrupted(text: str, problem: DataProblem) -> str:
    if problem == "empty":
        return ""
    lines = text.splitlines(keepends=True)
    if problem == "missing_header":
        return "".join(lines[1:])
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or "Intent" not in rows[0]:
        return text
    first = rows[0]["Intent"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(row for row in rows if row["Intent"] == first)
    return buffer.getvalue()


class FaultInjectingRuntime(RuntimeWrapper):
    """A container runtime that runs what `board` says in place of the image's `train` or `serve`,
    and otherwise hands every call to `inner` unchanged."""

    def __init__(self, inner: ContainerRuntime, board: FaultBoard) -> None:
        super().__init__(inner)
        self.board = board

    def start_training(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ContainerProcess:
        program = self.board.replacement("train") or program
        return self.inner.start_training(image, base_dir, log_path, environment, program)

    def start_serving(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ServingContainer:
        program = self.board.replacement("serve") or program
        return self.inner.start_serving(image, base_dir, log_path, environment, program)
