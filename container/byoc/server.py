"""`serve`: SageMaker's inference HTTP contract over a `Predictor`, on uvicorn (ASGI, h11 parser).

- The port (`SAGEMAKER_BIND_TO_PORT`, default 8080) is bound first (backlog 2048); the model loads in a
  background thread of each worker. `GET /ping` answers 503 until every worker has loaded it, then 200.
  A model that cannot be loaded ends the process with exit code 1 (SageMaker then fails the endpoint
  with the logged reason instead of waiting for pings that never succeed).
- Workers: `SAGEMAKER_MODEL_SERVER_WORKERS` processes (the variable SageMaker's inference toolkits read;
  default one per core, one for the torch back end), forked after the socket is bound, all accepting
  on it. One worker runs in the process itself. onnxruntime gets cores / workers threads in each, so
  that workers do not fight.
- `POST /invocations`: the wire format and its limits are `byoc.invocations`; the concurrent requests of
  a worker are decoded together (`byoc.batching`, `BYOC_BATCHING=off` turns it off). Bad requests are 4xx
  with a JSON body `{"error": message, "status": code}`; a failing model is 500 with the same shape.
- `GET /execution-parameters` tells SageMaker batch transform the payload limit and batch strategy.
- SIGTERM (and SIGINT): stop accepting connections, finish the requests in flight, close idle keep-alive
  connections, exit 0.
- Logs: one JSON line per request on stderr (pings excepted), plus lifecycle events (listening,
  model_loaded, shutdown, stopped).

Why uvicorn: a maintained, widely deployed HTTP/1.1 server on asyncio's transports, which set
TCP_NODELAY on every accepted socket (no Nagle stall between an answer's head and body) and serve
thousands of keep-alive connections without a thread each; its graceful shutdown is the drain SageMaker
expects. Its h11 parser (pure Python) rather than httptools: h11 accepts every method token, so an
unknown method is our JSON 405, where llhttp's fixed method list answers a bare 400. The app is a plain ASGI
callable: the contract is four routes with exact status codes, so a framework would add a layer of
routing and error pages to override, not remove one. Forking workers over one bound socket (rather than
uvicorn's own supervisor, which restarts a dead worker) lets a model that cannot load end the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable
from functools import partial
from http import HTTPStatus
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from types import FrameType
from typing import Any, Final

import uvicorn

from byoc import environment, invocations
from byoc.batching import Batcher, ModelFailure
from byoc.environment import ServingSettings
from byoc.errors import UserError
from byoc.invocations import InvocationError
from byoc.predictor import Predictor, load_predictor, resolve_backend

LOG: Final = logging.getLogger("byoc.serve")
CUSTOM_ATTRIBUTES_HEADER: Final = "x-amzn-sagemaker-custom-attributes"
# An idle keep-alive connection is closed after this long; SageMaker's own invocation timeout is 60 s.
CONNECTION_TIMEOUT_S: Final = 75
BACKLOG: Final = 2048
MAX_HEADERS: Final = 100  # what the standard library's server allowed; more is 431
_LENGTH: Final = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() also accepts "²"

PredictorLoader = Callable[[Path], Predictor]
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


def _parse_length(raw: str) -> int | None:
    """A `Content-Length` value, or None when it is not a plain decimal number."""
    value = raw.strip()
    return int(value) if _LENGTH.fullmatch(value) else None


class Readiness:
    """Which workers have their model loaded: shared memory that every forked worker writes its slot of."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("fork")
        self._loaded = context.RawArray("b", workers)
        self._failed: Synchronized[int] = context.Value("b", 0)

    def set_loaded(self, worker: int) -> None:
        self._loaded[worker] = 1

    def all_loaded(self) -> bool:
        return all(self._loaded)

    def set_failed(self) -> bool:
        """Marks the model as failed; True for the first worker to say so (the one that logs why)."""
        with self._failed.get_lock():
            first = not self._failed.value
            self._failed.value = 1
        return first

    @property
    def failed(self) -> bool:
        return bool(self._failed.value)


class ModelState:
    """One worker's predictor once loaded, and its batcher; written once by the loader thread."""

    def __init__(self, readiness: Readiness, worker: int, settings: ServingSettings) -> None:
        self.readiness = readiness
        self.worker = worker
        self.settings = settings
        self.batcher: Batcher | None = None
        self._lock = threading.Lock()

    def set(self, predictor: Predictor) -> None:
        batcher = Batcher(predictor, self.settings.batching, self.settings.batch_wait_s)
        with self._lock:
            self.batcher = batcher
        self.readiness.set_loaded(self.worker)

    def get(self) -> Batcher | None:
        with self._lock:
            return self.batcher


class Answer:
    """A response to send: status, body, content type, the custom attributes to echo."""

    def __init__(
        self, status: int, body: bytes, content_type: str = "application/json", attributes: str | None = None
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.attributes = attributes
        self.close = False
        self.allow: str | None = None  # the `Allow` header of a 405
        self.log_fields: dict[str, Any] = {}


def _error(status: int, message: str, attributes: str | None = None) -> Answer:
    answer = Answer(status, invocations.encode_error(status, message), attributes=attributes)
    answer.log_fields["error"] = message
    return answer


def _json(status: int, document: dict[str, Any]) -> Answer:
    return Answer(status, json.dumps(document).encode("utf-8"))


class InvocationApp:
    """The ASGI application: `/ping`, `/invocations`, `/execution-parameters`."""

    def __init__(self, model: ModelState, draining: threading.Event) -> None:
        self.model = model
        self.draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off; nothing else is served
            return
        started = time.monotonic()
        method: str = scope["method"]
        path: str = scope["path"]
        try:
            answer = _refusal(scope) or await self._route(method, path, _headers(scope["headers"]), receive)
        except Exception as error:  # a bug of ours: answer 500 rather than drop the connection
            LOG.exception("request failed")
            answer = _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(error).__name__}")
        if answer is None:  # the client went away before its body arrived
            return
        await self._send(send, method, answer)
        if not (path == "/ping" and method == "GET"):  # SageMaker pings every few seconds: not news
            fields = {
                "event": "request",
                "method": method,
                "path": path,
                "status": answer.status,
                "ms": round((time.monotonic() - started) * 1000, 1),
                "bytes_out": len(answer.body),
                **answer.log_fields,
            }
            LOG.log(logging.WARNING if answer.status >= 500 else logging.INFO, "%s", json.dumps(fields))

    async def _route(
        self, method: str, path: str, headers: dict[str, str], receive: Receive
    ) -> Answer | None:
        if path == "/invocations" and method == "POST":
            return await self._invocations(headers, receive)
        if path == "/ping" and method == "GET":
            if self.model.get() is None or not self.model.readiness.all_loaded():
                return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "loading"})
            return _json(HTTPStatus.OK, {"status": "healthy"})
        if path == "/execution-parameters" and method == "GET":
            return _json(
                HTTPStatus.OK,
                {
                    "MaxConcurrentTransforms": 1,
                    "BatchStrategy": "MULTI_RECORD",
                    "MaxPayloadInMB": invocations.MAX_BODY_BYTES // (1024 * 1024),
                },
            )
        if path == "/invocations":
            answer = _error(HTTPStatus.METHOD_NOT_ALLOWED, "use POST for /invocations")
            answer.allow = "POST"
            return answer
        if path in ("/ping", "/execution-parameters"):
            answer = _error(HTTPStatus.METHOD_NOT_ALLOWED, f"use GET for {path}")
            answer.allow = "GET"
            return answer
        return _error(HTTPStatus.NOT_FOUND, f"no route {path!r}")

    async def _invocations(self, headers: dict[str, str], receive: Receive) -> Answer | None:
        attributes: str | None = None
        log_fields: dict[str, Any] = {}
        try:
            body = await _read_body(headers, receive, log_fields)
            if body is None:
                return None
            attributes = invocations.check_custom_attributes(headers.get(CUSTOM_ATTRIBUTES_HEADER))
            content_type = invocations.check_content_type(headers.get("content-type"))
            accept = invocations.choose_accept(headers.get("accept"))
            batcher = self.model.get()
            if batcher is None:
                raise InvocationError(HTTPStatus.SERVICE_UNAVAILABLE, "the model is still loading")
            request = invocations.parse_request(body, content_type, batcher.max_new_tokens_limit)
            log_fields["queries"] = len(request.queries)
            try:
                predictions = await batcher.predict(request.queries, request.max_new_tokens)
            except ValueError as error:  # the Predictor protocol's signal for a query it cannot take
                raise InvocationError(HTTPStatus.BAD_REQUEST, str(error)) from None
            except ModelFailure as failure:
                raise InvocationError(HTTPStatus.INTERNAL_SERVER_ERROR, str(failure)) from None
            payload = invocations.encode_predictions(predictions, accept)
        except InvocationError as error:
            answer = _error(error.status, error.message, attributes)
            answer.close = error.status in (HTTPStatus.LENGTH_REQUIRED, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            answer.log_fields = {**log_fields, **answer.log_fields}
            return answer
        answer = Answer(HTTPStatus.OK, payload, f"{accept}; charset=utf-8", attributes)
        answer.log_fields = log_fields
        return answer

    async def _send(self, send: Send, method: str, answer: Answer) -> None:
        head = [
            (b"content-type", answer.content_type.encode("latin-1")),
            (b"content-length", str(len(answer.body)).encode("ascii")),
        ]
        if answer.attributes is not None:
            head.append((CUSTOM_ATTRIBUTES_HEADER.encode("ascii"), answer.attributes.encode("ascii")))
        if answer.allow is not None:
            head.append((b"allow", answer.allow.encode("ascii")))
        if answer.close or self.draining.is_set():
            head.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": int(answer.status), "headers": head})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else answer.body})


def _refusal(scope: Scope) -> Answer | None:
    """The answer to a request this server does not read at all: another HTTP version, too many headers."""
    answer: Answer | None = None
    if scope.get("http_version") not in ("1.0", "1.1"):
        answer = _error(HTTPStatus.BAD_REQUEST, f"HTTP/{scope.get('http_version')} is not served")
    elif len(scope["headers"]) > MAX_HEADERS:
        answer = _error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_HEADERS} headers")
    if answer is not None:
        answer.close = True
    return answer


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-cased names; a repeated header keeps its first value (what `email.message` returned)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def _read_body(headers: dict[str, str], receive: Receive, log_fields: dict[str, Any]) -> bytes | None:
    """The whole body, checked against its declared length and the 6 MB limit; None if the client left."""
    if "transfer-encoding" in headers:
        raise InvocationError(
            HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted; send Content-Length"
        )
    raw = headers.get("content-length")
    if raw is None:
        raise InvocationError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length header")
    length = _parse_length(raw)
    if length is None:
        raise InvocationError(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {raw!r}")
    log_fields["bytes_in"] = length
    if length > invocations.MAX_BODY_BYTES:
        # Answered before reading: uvicorn then sends no `100 Continue` to a client that asked first.
        raise InvocationError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body has {length} bytes; the limit is {invocations.MAX_BODY_BYTES} (6 MB)",
        )
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body", False))
    return b"".join(chunks)


class WorkerServer(uvicorn.Server):
    """uvicorn's server with the signal handling of `serve`: SIGTERM drains and the exit code stays 0."""

    def __init__(
        self, config: uvicorn.Config, draining: threading.Event, port: int, *, supervised: bool
    ) -> None:
        super().__init__(config)
        self.draining = draining
        self.port = port
        self.supervised = supervised

    def drain(self) -> None:
        self.draining.set()
        self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the signal after its shutdown, which would make the exit code -15, not 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if not self.supervised and not self.draining.is_set():
                _log_event("shutdown", signal=signal.Signals(signum).name)
            self.drain()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _uvicorn_config(app: InvocationApp, settings: ServingSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        log_config=None,
        server_header=False,
        backlog=BACKLOG,
        timeout_keep_alive=CONNECTION_TIMEOUT_S,
        timeout_graceful_shutdown=120,
    )


def run_worker(
    sock: socket.socket,
    model_dir: Path,
    loader: PredictorLoader,
    readiness: Readiness,
    worker: int,
    settings: ServingSettings,
    *,
    supervised: bool,
    on_listening: Callable[[WorkerServer], None] | None = None,
) -> int:
    """One worker: load the model in a thread, serve on `sock` until drained; 1 if the model failed."""
    draining = threading.Event()
    model = ModelState(readiness, worker, settings)
    app = InvocationApp(model, draining)
    port = sock.getsockname()[1]
    server = WorkerServer(_uvicorn_config(app, settings), draining, port, supervised=supervised)

    async def main() -> None:
        threading.Thread(
            target=_load, args=(server, model, model_dir, loader), name="model-loader", daemon=True
        ).start()
        if on_listening is not None:
            on_listening(server)
        await server.serve(sockets=[sock])

    asyncio.run(main())
    return 1 if readiness.failed else 0


def _load(
    server: WorkerServer,
    model: ModelState,
    model_dir: Path,
    loader: PredictorLoader,
) -> None:
    started = time.monotonic()
    try:
        predictor = loader(model_dir)
    except Exception as error:
        if model.readiness.set_failed():
            _log_event("model_load_failed", logging.ERROR, error=f"{type(error).__name__}: {error}")
        server.drain()
        return
    model.set(predictor)
    _log_event(
        "model_loaded",
        backend=predictor.backend,
        device=predictor.device,
        labels=len(predictor.labels),
        worker=model.worker,
        seconds=round(time.monotonic() - started, 3),
    )


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it (Linux); asyncio also sets it, but only on sockets whose protocol is
    # IPPROTO_TCP: with Nagle on, an answer's body waits for the client's delayed ACK of its head (40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve(
    model_dir: Path,
    port: int,
    *,
    host: str = "0.0.0.0",
    loader: PredictorLoader | None = None,
    settings: ServingSettings | None = None,
    on_listening: Callable[[WorkerServer], None] | None = None,
) -> int:
    """Serves until SIGTERM/SIGINT (or `drain()`); returns the exit code (1 when the model failed to load).

    With one worker (and always when called with `on_listening`, as the in-process tests do) the worker
    runs in this thread; otherwise this process forks the workers and supervises them.
    """
    settings = settings or ServingSettings(workers=1, batching=True, batch_wait_s=0.002)
    if loader is None:
        loader = partial(
            load_predictor,
            threads=settings.threads_per_worker,
            batched=settings.batching,
            device=settings.device,
        )
    sock = bind(host, port)
    _log_event(
        "listening", host=host, port=sock.getsockname()[1], model_dir=str(model_dir), workers=settings.workers
    )
    try:
        if settings.workers == 1 or on_listening is not None:
            readiness = Readiness(1)
            code = run_worker(
                sock, model_dir, loader, readiness, 0, settings, supervised=False, on_listening=on_listening
            )
        else:
            code = _supervise(sock, model_dir, loader, settings)
    finally:
        sock.close()
    _log_event("stopped", exit_code=code)
    return code


def _supervise(
    sock: socket.socket, model_dir: Path, loader: PredictorLoader, settings: ServingSettings
) -> int:
    """Forks the workers, forwards SIGTERM/SIGINT to them, waits; 1 when a worker's model failed."""
    context = multiprocessing.get_context("fork")
    readiness = Readiness(settings.workers)
    workers = [
        context.Process(
            target=_worker_main,
            args=(sock, model_dir, loader, readiness, index, settings),
            name=f"serve-worker-{index}",
        )
        for index in range(settings.workers)
    ]
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            _log_event("shutdown", signal=signal.Signals(signum).name)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    for process in workers:
        process.start()
    sock.close()  # the workers hold it; closing ours lets the port refuse connections once they stop
    while not stopping.is_set() and not readiness.failed and all(p.is_alive() for p in workers):
        stopping.wait(0.1)
    for process in workers:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in workers:
        process.join()
    if readiness.failed:
        return 1
    return 0 if all(p.exitcode == 0 for p in workers) or stopping.is_set() else 1


def _worker_main(
    sock: socket.socket,
    model_dir: Path,
    loader: PredictorLoader,
    readiness: Readiness,
    index: int,
    settings: ServingSettings,
) -> None:
    # Ctrl-C reaches every process of the group: the supervisor alone decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(run_worker(sock, model_dir, loader, readiness, index, settings, supervised=True))


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
    for name, level in (("byoc", logging.INFO), ("uvicorn", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def _log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    LOG.log(level, "%s", json.dumps({"event": event, **fields}))


def main() -> int:
    """The `serve` executable: the model in `/opt/ml/model` (or under `SAGEMAKER_BASE_DIR`)."""
    configure_logging()
    model_dir = environment.paths().model_dir
    try:
        port = environment.port()
        device = environment.inference_device()
        settings = environment.serving_settings(default_workers=_default_workers(model_dir, device))
    except UserError as error:
        _log_event("bad_configuration", logging.ERROR, error=str(error))
        return 2
    return serve(model_dir, port, settings=settings)


def _default_workers(model_dir: Path, device: str) -> int | None:
    """One worker for the torch back end, else None (one per core).

    torch already spreads one generation over every core and holds a lock around it, so more processes
    would only multiply its memory and its import time (tens of seconds on a busy machine); on a GPU, one
    process holds one copy of the model on it and its batches fill the GPU.
    """
    try:
        backend = resolve_backend(model_dir, device=device)
    except ValueError:  # an unknown backend: the loader reports it as the reason the model cannot load
        return None
    return 1 if backend == "torch" else None
