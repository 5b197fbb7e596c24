"""The control plane: moto's server embedded in this process, or an external AWS-compatible endpoint.

`EmbeddedEmulator` starts moto's threaded server on 127.0.0.1 on a free port, turns Step Functions
execution on *before* any state machine exists (moto reads the switch per request and keeps machines
created before it in another backend), installs the harness's seams (see `harness.seams`), and stops
cleanly. Only one embedded emulator may run per process: moto's backends and the `MOTO_PORT` variable
that Step Functions uses to call back into the server are process-wide.

`ExternalEmulator` names an endpoint that someone else runs (`--endpoint-url`); nothing is started.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import boto3
from botocore.config import Config

# The region and fake credentials every harness client uses; moto accepts any credentials.
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

# moto's Step Functions engine calls back into the server at localhost:$MOTO_PORT.
MOTO_PORT_ENV = "MOTO_PORT"

_running_lock = threading.Lock()
_running: EmbeddedEmulator | None = None


class Emulator(Protocol):
    """What the rest of the harness needs from a control plane."""

    @property
    def endpoint_url(self) -> str: ...

    def session(self) -> boto3.Session: ...


def client_config() -> Config:
    """Client settings for talking to a local endpoint: quick to fail, no long retry storms."""
    return Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=120)


@dataclass(frozen=True)
class ExternalEmulator:
    """An AWS-compatible endpoint run elsewhere (e.g. `http://127.0.0.1:4566`)."""

    endpoint_url: str
    region: str = REGION

    def session(self) -> boto3.Session:
        return boto3.Session(region_name=self.region, **FAKE_CREDENTIALS)


class EmbeddedEmulator:
    """moto's server in this process, on 127.0.0.1 and a free port. Use as a context manager."""

    def __init__(self, port: int = 0, region: str = REGION, install_seams: bool = True) -> None:
        self._requested_port = port
        self.region = region
        self._install_seams = install_seams
        self._server: object | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session(self) -> boto3.Session:
        return boto3.Session(region_name=self.region, **FAKE_CREDENTIALS)

    def client(self, service: str):  # type: ignore[no-untyped-def]  # boto3 clients are untyped here
        return self.session().client(service, endpoint_url=self.endpoint_url, config=client_config())

    def start(self) -> EmbeddedEmulator:
        global _running
        from moto.core.config import default_user_config
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        with _running_lock:
            if _running is not None:
                raise RuntimeError(
                    f"an embedded emulator already runs in this process at {_running.endpoint_url}; "
                    "moto's state is process-wide, so run a second harness in its own process"
                )
            _running = self
        try:
            # Before the first request: Step Functions reads this switch per request.
            default_user_config["stepfunctions"] = {"execute_state_machine": True}
            if self._install_seams:
                from harness import seams

                seams.install()
            # werkzeug logs every request at INFO: quiet by default, as all harness logs are.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._requested_port, verbose=False)
            server.start()
            self._server = server
            self._port = int(server.get_host_and_port()[1])
            os.environ[MOTO_PORT_ENV] = str(self._port)
        except BaseException:
            with _running_lock:
                _running = None
            raise
        return self

    def stop(self) -> None:
        global _running
        server = self._server
        self._server = None
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
            # Drop every backend's state, so the next emulator in this process starts empty.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
        if os.environ.get(MOTO_PORT_ENV) == str(self._port):
            del os.environ[MOTO_PORT_ENV]
        with _running_lock:
            if _running is self:
                _running = None

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
