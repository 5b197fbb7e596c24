"""`serve`: SageMaker's inference HTTP contract over a `Predictor`, on the standard library alone.

- The port (`SAGEMAKER_BIND_TO_PORT`, default 8080) is bound first; the model loads in a background
  thread. `GET /ping` answers 503 until it is loaded, then 200. A model that cannot be loaded ends the
  process with exit code 1 (SageMaker then fails the endpoint with the logged reason instead of waiting
  for pings that never succeed).
- `POST /invocations`: the wire format and its limits are `byoc.invocations`. Bad requests are 4xx with a
  JSON body `{"error": message, "status": code}`; a failing model is 500 with the same shape.
- `GET /execution-parameters` tells SageMaker batch transform the payload limit and batch strategy.
- SIGTERM (and SIGINT): stop accepting connections, finish the requests in flight, close idle keep-alive
  connections, exit 0.
- Logs: one JSON line per request on stderr (pings excepted), plus lifecycle events (listening,
  model_loaded, shutdown, stopped).

The standard library's threading server keeps the torch-free image small and starts in milliseconds;
each connection gets a thread and the predictor is thread-safe.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Final

from byoc import environment, invocations
from byoc.errors import UserError
from byoc.invocations import InvocationError
from byoc.predictor import Predictor, load_predictor

LOG: Final = logging.getLogger("byoc.serve")
CUSTOM_ATTRIBUTES_HEADER: Final = "X-Amzn-SageMaker-Custom-Attributes"
# An idle keep-alive connection is closed after this long; SageMaker's own invocation timeout is 60 s.
CONNECTION_TIMEOUT_S: Final = 75.0
# An oversized body is read and dropped up to this size, so that the client reads our 413 instead of a
# reset connection; anything bigger is cut off.
DISCARD_LIMIT_BYTES: Final = 64 * 1024 * 1024
_CHUNK: Final = 64 * 1024

PredictorLoader = Callable[[Path], Predictor]
_LENGTH: Final = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() also accepts "²"


def _parse_length(raw: str) -> int | None:
    """A `Content-Length` value, or None when it is not a plain decimal number."""
    value = raw.strip()
    return int(value) if _LENGTH.fullmatch(value) else None


class ModelState:
    """The predictor once loaded; read by request threads, written once by the loader thread."""

    def __init__(self) -> None:
        self._predictor: Predictor | None = None
        self._lock = threading.Lock()

    def set(self, predictor: Predictor) -> None:
        with self._lock:
            self._predictor = predictor

    def get(self) -> Predictor | None:
        with self._lock:
            return self._predictor


class InferenceServer(ThreadingHTTPServer):
    """A threading HTTP server that waits for its request threads on close and can drain on shutdown."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], model: ModelState) -> None:
        super().__init__(address, InvocationHandler)
        self.model = model
        self.draining = threading.Event()
        self.load_failed = False
        self._idle: set[socket.socket] = set()
        self._idle_lock = threading.Lock()

    def mark_idle(self, connection: socket.socket, idle: bool) -> None:
        with self._idle_lock:
            if idle:
                self._idle.add(connection)
            else:
                self._idle.discard(connection)

    def drain(self) -> None:
        """Stops accepting; wakes idle keep-alive connections so that their threads end."""
        self.draining.set()
        self.shutdown()
        with self._idle_lock:
            idle = list(self._idle)
        for connection in idle:
            # Shutting the read side ends a thread blocked waiting for a next request; a thread that is
            # answering can still write its answer.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)


class InvocationHandler(BaseHTTPRequestHandler):
    """One connection: `/ping`, `/invocations`, `/execution-parameters`."""

    server: InferenceServer
    protocol_version = "HTTP/1.1"
    server_version = "byoc-serve"
    timeout = CONNECTION_TIMEOUT_S
    error_content_type = "application/json"

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self._started = time.monotonic()
        self._log_fields: dict[str, Any] = {}

    def handle_one_request(self) -> None:
        self.server.mark_idle(self.connection, True)
        try:
            if self.server.draining.is_set():
                self.close_connection = True
                return
            super().handle_one_request()
        finally:
            self.server.mark_idle(self.connection, False)

    def parse_request(self) -> bool:
        self.server.mark_idle(self.connection, False)
        self._started = time.monotonic()
        self._log_fields = {}
        return super().parse_request()

    # -- routes -------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._discard_body()
        if self.path == "/ping":
            self._ping()
        elif self.path == "/execution-parameters":
            self._send_json(
                HTTPStatus.OK,
                {
                    "MaxConcurrentTransforms": 1,
                    "BatchStrategy": "MULTI_RECORD",
                    "MaxPayloadInMB": invocations.MAX_BODY_BYTES // (1024 * 1024),
                },
            )
        elif self.path == "/invocations":
            self._send_error_json(HTTPStatus.METHOD_NOT_ALLOWED, "use POST for /invocations")
        else:
            self._send_error_json(HTTPStatus.NOT_FOUND, f"no route {self.path!r}")

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._discard_body()
            if self.path in ("/ping", "/execution-parameters"):
                self._send_error_json(HTTPStatus.METHOD_NOT_ALLOWED, f"use GET for {self.path}")
            else:
                self._send_error_json(HTTPStatus.NOT_FOUND, f"no route {self.path!r}")
            return
        self._invocations()

    def _method_not_allowed(self) -> None:
        self._discard_body()
        self._send_error_json(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} is not allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _method_not_allowed

    def _ping(self) -> None:
        if self.server.model.get() is None:
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "loading"})
        else:
            self._send_json(HTTPStatus.OK, {"status": "healthy"})

    def _invocations(self) -> None:
        attributes: str | None = None
        try:
            body = self._read_body()
            attributes = invocations.check_custom_attributes(self.headers.get(CUSTOM_ATTRIBUTES_HEADER))
            content_type = invocations.check_content_type(self.headers.get("Content-Type"))
            accept = invocations.choose_accept(self.headers.get("Accept"))
            predictor = self.server.model.get()
            if predictor is None:
                raise InvocationError(HTTPStatus.SERVICE_UNAVAILABLE, "the model is still loading")
            request = invocations.parse_request(body, content_type, predictor.max_new_tokens_limit)
            self._log_fields["queries"] = len(request.queries)
            try:
                predictions = predictor.predict(request.queries, request.max_new_tokens)
            except ValueError as error:  # the Predictor protocol's signal for a query it cannot take
                raise InvocationError(HTTPStatus.BAD_REQUEST, str(error)) from None
            except Exception as error:
                LOG.exception("prediction failed")
                raise InvocationError(
                    HTTPStatus.INTERNAL_SERVER_ERROR, f"the model failed: {type(error).__name__}: {error}"
                ) from None
            if len(predictions) != len(request.queries):
                raise InvocationError(
                    HTTPStatus.INTERNAL_SERVER_ERROR,
                    f"the model answered {len(predictions)} predictions for {len(request.queries)} queries",
                )
            payload = invocations.encode_predictions(predictions, accept)
        except InvocationError as error:
            self._send_error_json(error.status, error.message, attributes)
            return
        except Exception as error:  # a bug of ours: answer 500 rather than drop the connection
            LOG.exception("invocation failed")
            self._send_error_json(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(error).__name__}", attributes
            )
            return
        self._send(HTTPStatus.OK, payload, f"{accept}; charset=utf-8", attributes)

    # -- bodies ---------------------------------------------------------------------------------------

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding") is not None:
            self.close_connection = True
            raise InvocationError(
                HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted; send Content-Length"
            )
        raw = self.headers.get("Content-Length")
        if raw is None:
            if self.command == "POST":
                self.close_connection = True
                raise InvocationError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length header")
            return 0
        length = _parse_length(raw)
        if length is None:
            self.close_connection = True
            raise InvocationError(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {raw!r}")
        return length

    def _read_body(self) -> bytes:
        length = self._content_length()
        self._log_fields["bytes_in"] = length
        if length > invocations.MAX_BODY_BYTES:
            self._drop(length)
            raise InvocationError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body has {length} bytes; the limit is {invocations.MAX_BODY_BYTES} (6 MB)",
            )
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise InvocationError(
                HTTPStatus.BAD_REQUEST, f"the body ended after {len(body)} of {length} bytes"
            )
        return body

    def _discard_body(self) -> None:
        try:
            length = self._content_length()
        except InvocationError:
            return
        self._drop(length)

    def _drop(self, length: int) -> None:
        """Reads and forgets `length` bytes in chunks; closes the connection instead when too many."""
        if length > DISCARD_LIMIT_BYTES:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(_CHUNK, remaining))
            if not chunk:
                self.close_connection = True
                return
            remaining -= len(chunk)

    def handle_expect_100(self) -> bool:
        """Refuses an oversized body before the client sends it, when the client asked first."""
        raw = self.headers.get("Content-Length", "")
        length = _parse_length(raw)
        if length is not None and length > invocations.MAX_BODY_BYTES:
            self.close_connection = True
            self._send_error_json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body has {raw} bytes; the limit is {invocations.MAX_BODY_BYTES} (6 MB)",
            )
            return False
        return super().handle_expect_100()

    # -- answers --------------------------------------------------------------------------------------

    def _send_json(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, json.dumps(document).encode("utf-8"), "application/json")

    def _send_error_json(self, status: int, message: str, attributes: str | None = None) -> None:
        self._log_fields["error"] = message
        self._send(status, invocations.encode_error(status, message), "application/json", attributes)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own rejections (bad request line, headers too long) as JSON too."""
        self.close_connection = True
        # An unknown method or HTTP version is the client's error: keep every such answer a 4xx.
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code = HTTPStatus.METHOD_NOT_ALLOWED
        elif code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            code = HTTPStatus.BAD_REQUEST
        self._send_error_json(code, message or HTTPStatus(code).phrase)

    def _send(self, status: int, payload: bytes, content_type: str, attributes: str | None = None) -> None:
        if self.server.draining.is_set():
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if attributes is not None:
            self.send_header(CUSTOM_ATTRIBUTES_HEADER, attributes)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self._log_request_line(status, len(payload))

    # -- logs -----------------------------------------------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Replaced by `_log_request_line`, which knows the size and the time taken."""

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug(format, *args)

    def _log_request_line(self, status: int, bytes_out: int) -> None:
        # The standard library answers a malformed request line before `command` and `path` exist.
        path = getattr(self, "path", None)
        if path == "/ping" and self.command == "GET":  # SageMaker pings every few seconds: not news
            return
        fields = {
            "event": "request",
            "method": getattr(self, "command", None),
            "path": path,
            "status": int(status),
            "ms": round((time.monotonic() - self._started) * 1000, 1),
            "bytes_out": bytes_out,
            **self._log_fields,
        }
        LOG.log(logging.WARNING if status >= 500 else logging.INFO, "%s", json.dumps(fields))


class JsonLineFormatter(logging.Formatter):
    """`{"ts", "level", "logger", ...}`; a message that is itself a JSON object is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            line.update(parsed)
        else:
            line["message"] = message
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger("byoc")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def _log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    LOG.log(level, "%s", json.dumps({"event": event, **fields}))


def start_loading(server: InferenceServer, model_dir: Path, loader: PredictorLoader) -> threading.Thread:
    """Loads the model in a background thread; a failure logs its reason and stops the server."""

    def load() -> None:
        started = time.monotonic()
        try:
            predictor = loader(model_dir)
        except Exception as error:
            _log_event("model_load_failed", logging.ERROR, error=f"{type(error).__name__}: {error}")
            server.load_failed = True
            threading.Thread(target=server.drain, daemon=True).start()
            return
        server.model.set(predictor)
        _log_event(
            "model_loaded",
            backend=predictor.backend,
            labels=len(predictor.labels),
            seconds=round(time.monotonic() - started, 3),
        )

    thread = threading.Thread(target=load, name="model-loader", daemon=True)
    thread.start()
    return thread


def serve(
    model_dir: Path,
    port: int,
    *,
    host: str = "0.0.0.0",
    loader: PredictorLoader = load_predictor,
    handle_signals: bool = True,
    on_listening: Callable[[InferenceServer], None] | None = None,
) -> int:
    """Serves until SIGTERM/SIGINT (or `drain()`); returns the exit code (1 when the model failed to load)."""
    server = InferenceServer((host, port), ModelState())
    if handle_signals:

        def on_signal(signum: int, frame: FrameType | None) -> None:
            _log_event("shutdown", signal=signal.Signals(signum).name)
            # shutdown() waits for serve_forever, which runs in this (the main) thread: call it from another.
            threading.Thread(target=server.drain, daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    _log_event("listening", host=host, port=server.server_address[1], model_dir=str(model_dir))
    start_loading(server, model_dir, loader)
    if on_listening is not None:
        on_listening(server)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()  # joins the request threads: in-flight requests finish first
    _log_event("stopped", exit_code=1 if server.load_failed else 0)
    return 1 if server.load_failed else 0


def main() -> int:
    """The `serve` executable: the model in `/opt/ml/model` (or under `SAGEMAKER_BASE_DIR`)."""
    configure_logging()
    try:
        port = environment.port()
    except UserError as error:
        _log_event("bad_configuration", logging.ERROR, error=str(error))
        return 2
    return serve(environment.paths().model_dir, port)
