"""The control plane: moto's server embedded in this process, or an external AWS-compatible endpoint.

`EmbeddedEmulator` starts moto's threaded server on 127.0.0.1 on a free port, turns Step Functions
execution on *before* any state machine exists (moto reads the switch per request and keeps machines
created before it in another backend), installs the harness's seams (see `harness.seams`), and stops
cleanly. Only one embedded emulator may run per process: moto's backends and the `MOTO_PORT` variable
that Step Functions uses to call back into the server are process-wide. A started emulator owns a
`HarnessContext` (harness/context.py: compute plane, Lambda runtime, faults, Step Functions timing,
pipeline states), which its seams read; stopping it closes the context and resets moto's state, so
the next emulator in this process finds nothing of this one.

`ExternalEmulator` names an endpoint that someone else runs (`--endpoint-url`); nothing is started.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import boto3

from harness.boto_sessions import client_config, new_session
from harness.context import HarnessContext, claim, release
from harness.identity import ACCOUNT_ID, FAKE_CREDENTIALS, REGION

__all__ = [
    "ACCOUNT_ID",
    "FAKE_CREDENTIALS",
    "REGION",
    "EmbeddedEmulator",
    "Emulator",
    "ExternalEmulator",
    "client_config",
]

# moto's Step Functions engine calls back into the server at localhost:$MOTO_PORT.
MOTO_PORT_ENV = "MOTO_PORT"


class Emulator(Protocol):
    """What the rest of the harness needs from a control plane."""

    @property
    def endpoint_url(self) -> str: ...

    def session(self) -> boto3.Session: ...


@dataclass(frozen=True)
class ExternalEmulator:
    """An AWS-compatible endpoint run elsewhere (e.g. `http://127.0.0.1:4566`)."""

    endpoint_url: str
    region: str = REGION

    def session(self) -> boto3.Session:
        return new_session(self.region, FAKE_CREDENTIALS)


class EmbeddedEmulator:
    """moto's server in this process, on 127.0.0.1 and a free port. Use as a context manager."""

    def __init__(
        self, port: int = 0, region: str = REGION, install_seams: bool = True, iam: bool = True
    ) -> None:
        self._requested_port = port
        self._iam = iam  # IAM enforcement on (harness/iam); its context's `iam.set_enabled` switches it later
        self.region = region
        self._install_seams = install_seams
        self._server: object | None = None
        self._port: int | None = None
        self._context: HarnessContext | None = None

    @property
    def context(self) -> HarnessContext:
        """What this emulator's seams read while it runs (a new one per start)."""
        if self._context is None:
            raise RuntimeError("the emulator is not started")
        return self._context

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session(self) -> boto3.Session:
        return new_session(self.region, FAKE_CREDENTIALS)

    def client(self, service: str):  # type: ignore[no-untyped-def]  # boto3 clients are untyped here
        return self.session().client(service, endpoint_url=self.endpoint_url, config=client_config())

    def start(self) -> EmbeddedEmulator:
        from moto.core.config import default_user_config
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        if self._context is not None:
            raise RuntimeError(f"this emulator already runs at {self.endpoint_url}")
        context = HarnessContext(iam=self._iam)
        claim(context)  # refuses while another embedded emulator runs in this process
        self._context = context
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
            context.open(self.endpoint_url)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Closes the context (containers, Lambda workers, faults), stops the server and resets moto's
        state (pipeline states and jobs included); safe to call twice."""
        server, self._server = self._server, None
        context, self._context = self._context, None
        try:
            if context is not None:
                context.close()
        finally:
            if server is not None:
                server.stop()  # type: ignore[attr-defined]
                # Drop every backend's state, so the next emulator in this process starts empty.
                from moto.moto_api._internal.models import moto_api_backend

                moto_api_backend.reset()
            if self._port is not None and os.environ.get(MOTO_PORT_ENV) == str(self._port):
                del os.environ[MOTO_PORT_ENV]
            self._port = None
            if context is not None:
                release(context)

    def __enter__(self) -> EmbeddedEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
