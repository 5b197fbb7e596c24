"""A real `container/serve` process on a moved `/opt/ml`, for the serving tests (not a test module).

`ServeProcess.start` runs the executable as SageMaker's contract describes it, with `SAGEMAKER_BASE_DIR`
and `SAGEMAKER_BIND_TO_PORT`; `wait_healthy` waits for `/ping`; `stop` sends SIGTERM and returns the exit
code; `log_records` are the process's JSON log lines. `serving` wraps it all for a `with` block.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_SCRIPT = REPO_ROOT / "container" / "serve"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_file: IO[bytes]
    pings: list[tuple[float, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, opt_ml: Path, extra_env: dict[str, str] | None = None) -> ServeProcess:
        port = free_port()
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(opt_ml), "SAGEMAKER_BIND_TO_PORT": str(port)}
        env.update(extra_env or {})
        log_file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process; see close)
        process = subprocess.Popen(
            [sys.executable, str(SERVE_SCRIPT)], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        return cls(process, port, log_file)

    def wait_healthy(self, timeout: float = 30) -> float:
        """Pings until 200; records every ping's status and returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                status = requests.get(f"{self.url}/ping", timeout=2).status_code
            except requests.ConnectionError:
                status = 0  # not listening yet
            self.pings.append((time.monotonic() - started, status))
            if status == 200:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"serve was not healthy within {timeout} s:\n{self.log_text()}")

    def invoke(
        self, body: bytes | str, content_type: str | None = "application/json", **headers: str
    ) -> requests.Response:
        sent = dict(headers)
        if content_type is not None:
            sent["Content-Type"] = content_type
        data = body.encode("utf-8") if isinstance(body, str) else body
        return requests.post(f"{self.url}/invocations", data=data, headers=sent, timeout=60)

    def invoke_json(self, document: Any, **headers: str) -> requests.Response:
        return self.invoke(json.dumps(document), **headers)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def log_text(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read().decode("utf-8", "replace")

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log_file.close()


@contextmanager
def serving(opt_ml: Path, extra_env: dict[str, str] | None = None) -> Iterator[ServeProcess]:
    """A healthy `serve` process for the block; on leaving it, SIGTERM must end it with exit code 0."""
    process = ServeProcess.start(opt_ml, extra_env)
    try:
        process.wait_healthy(timeout=60)
        yield process
        assert process.stop() == 0, process.log_text()
    finally:
        process.close()
