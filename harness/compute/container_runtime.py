"""The one interface every container runtime implements, and the explicit table of runtimes.

SageMaker runs an image two ways: `docker run IMAGE train` with `/opt/ml` mounted, and
`docker run IMAGE serve` with the model under `/opt/ml/model` and port 8080 published. A runtime
does exactly that for one `base_dir` (the host directory that stands for `/opt/ml`) and hands back a
`ContainerProcess`: a running child whose stdout and stderr go to a log file, which can be sent
SIGTERM and waited for. The training job runner and the endpoint manager use only this interface, so
they do not know whether Docker or a plain process runs the code.

An image is named the way SageMaker names it, by a URI (`<registry>/<repo>@sha256:<digest>` or
`<registry>/<repo>:<tag>`); `resolve()` turns it into what the runtime runs, or raises
`ImageNotFound` with a reason a person can act on.

The runtimes themselves (`docker`, `process`) and the table that names them are in
harness/compute/runtimes.py, above this module: they import it, it imports none of them.
"""

from __future__ import annotations

import abc
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# The environment variables of SageMaker's container contract (the image's fixed interface).
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
BIND_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
CONTAINER_PORT = 8080

_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


class ImageNotFound(LookupError):
    """The image URI names nothing this runtime can run."""


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot run anything here (e.g. no Docker engine answers)."""


def digest_of(image_uri: str) -> str | None:
    """The `sha256:<hex>` digest named by an image URI (`repo@sha256:..` or a bare digest), if any."""
    match = _DIGEST_RE.search(image_uri)
    return match.group(0) if match else None


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the usual bind-to-0 trick; the caller binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PythonProgram:
    """A program run in an image instead of its `train` or `serve`: `python -c code *args`, with the
    image's own interpreter (as `docker run --entrypoint python3 IMAGE -c ...` does)."""

    code: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvedImage:
    """An image the runtime can run: its digest and the runtime's own reference to it."""

    digest: str
    reference: str


class ContainerProcess:
    """A running `train` or `serve`: a child process (the program itself, or the `docker run` client
    that proxies signals to its container) whose output is appended to `log_path`."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        log_path: Path,
        log_handle: IO[bytes],
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self._popen = popen
        self.log_path = log_path
        self._log_handle = log_handle
        self._cleanup = cleanup
        self._cleaned = threading.RLock()  # a hook that polls its own process must not deadlock
        self._cleaned_up = False
        self._exit_hooks: list[Callable[[int], None]] = []

    def add_exit_hook(self, hook: Callable[[int], None]) -> None:
        """`hook(exit_status)` runs once, when the process is first seen to have exited (before `wait`
        or `poll` returns, in every thread)."""
        self._exit_hooks.append(hook)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        code = self._popen.poll()
        if code is not None:
            self._finish(code)
        return code

    def wait(self, timeout: float | None = None) -> int:
        """The exit status; raises subprocess.TimeoutExpired when it runs past `timeout`."""
        code = self._popen.wait(timeout)
        self._finish(code)
        return code

    def terminate(self) -> None:
        """SIGTERM, as SageMaker sends it on StopTrainingJob or when it stops an endpoint."""
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)

    def stop(self, grace_seconds: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `grace_seconds`; returns the exit status."""
        self.terminate()
        try:
            return self.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            return self.wait(grace_seconds)

    def _finish(self, code: int) -> None:
        # Held through the hooks: a second thread's poll or wait returns only once they have run (a
        # reader of the endpoint's CloudWatch stream or of the training cache sees their work done).
        with self._cleaned:
            if self._cleaned_up:
                return
            self._cleaned_up = True
            self._log_handle.close()
            if self._cleanup is not None:
                self._cleanup()
            for hook in self._exit_hooks:
                hook(code)


@dataclass(frozen=True)
class ServingContainer:
    """A started `serve`: the process and the loopback URL its HTTP server listens on."""

    process: ContainerProcess
    url: str


class ContainerRuntime(abc.ABC):
    """Runs an image's `train` and `serve` under SageMaker's contract."""

    name: str

    @abc.abstractmethod
    def available(self) -> bool:
        """Whether this runtime can run containers on this machine now."""

    @abc.abstractmethod
    def resolve(self, image_uri: str) -> ResolvedImage:
        """What to run for an image URI; raises ImageNotFound."""

    @abc.abstractmethod
    def start_training(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ContainerProcess:
        """Starts `train` (or `program` in its place) with `base_dir` as /opt/ml and no network (where
        the runtime can enforce it)."""

    @abc.abstractmethod
    def start_serving(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ServingContainer:
        """Starts `serve` (or `program` in its place) with `base_dir/model` as /opt/ml/model, on a
        loopback port."""


class RuntimeWrapper(ContainerRuntime):
    """A runtime around another (`inner`) that hands it every call; a subclass overrides what it
    changes (faults that replace a program, the training cache)."""

    def __init__(self, inner: ContainerRuntime) -> None:
        self.inner = inner
        self.name = inner.name

    def available(self) -> bool:
        return self.inner.available()

    def resolve(self, image_uri: str) -> ResolvedImage:
        return self.inner.resolve(image_uri)

    def start_training(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ContainerProcess:
        return self.inner.start_training(image, base_dir, log_path, environment, program)

    def start_serving(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ServingContainer:
        return self.inner.start_serving(image, base_dir, log_path, environment, program)


def open_log(log_path: Path) -> IO[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return log_path.open("ab")


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a child process: this one's, without AWS credentials or emulator settings
    (a SageMaker container gets none), plus `extra`."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MOTO_"))}
    return {**inherited, **extra}
