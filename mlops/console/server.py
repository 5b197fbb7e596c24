"""Serving the console: uvicorn on a loopback socket, in a thread of the stack's process.

`ConsoleServer(endpoint_url, region, api_url).start()` binds 127.0.0.1 on a free port (or the one
given), makes a fresh random token (one per stack: a new `mlops up` gets a new one), and serves until
`stop()`. `url` is the address to print: it carries `?token=`, which the first visit turns into a
cookie. `open_browser()` opens it where a browser exists (`webbrowser`; False where none does).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
import time
import webbrowser

import uvicorn

from mlops.console.app import ConsoleConfig, create_app
from mlops.console.aws import StackView

LOG = logging.getLogger(__name__)


class ConsoleServer:
    def __init__(
        self,
        endpoint_url: str | None,
        region: str,
        api_url: str | None = None,
        port: int = 0,
        approver: str = "console",
    ) -> None:
        self._endpoint_url = endpoint_url
        self._region = region
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port = int(self._socket.getsockname()[1])
        self.config = ConsoleConfig(
            token=secrets.token_urlsafe(24), port=self.port, api_url=api_url, approver=approver
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/pipeline?token={self.config.token}"

    def set_api_url(self, url: str | None) -> None:
        self.config.api_url = url

    def start(self, timeout_s: float = 10.0) -> ConsoleServer:
        app = create_app(StackView(self._endpoint_url, self._region), self.config)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[self._socket])), name="console", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the console did not start on 127.0.0.1:{self.port}")
            time.sleep(0.05)
        LOG.info("console serving on 127.0.0.1:%d", self.port)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
        self._socket.close()

    def open_browser(self) -> bool:
        try:
            return webbrowser.open(self.url)
        except webbrowser.Error:
            return False

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
