"""The parent side of the local Lambda runtime: warm worker processes, one invocation at a time each.

Like AWS's execution environments: a function's first invoke starts a worker process (the "cold start":
interpreter and handler import, AWS's init phase, limited to 10 s apart from the function's timeout and
reported as "Init Duration" in the first REPORT line); later invokes reuse an idle
worker of the same function, code and configuration (module state such as cached clients persists, as
in a warm sandbox); concurrent invokes get more workers. A worker is discarded after a timeout (its
process group is killed), after a crash or an init error, and after `idle_s` without work. Each worker
is its own process: the handler's code, environment and crashes never touch the harness.

An invocation:
- the function's deployment package (zip bytes) is unpacked once into `<cache_dir>/<sha256 hex>/`
  (the task root), shared by every worker of that code;
- a worker runs `bootstrap.py` with the venv's Python (boto3 is there, as in AWS's Python runtime) in
  an environment built from scratch: the function's variables, then what AWS reserves (AWS_REGION,
  AWS_LAMBDA_*, _HANDLER, LAMBDA_TASK_ROOT, credentials: the execution role's temporary ones from
  `sts:AssumeRole`, given by the context's `credentials_for`, else fake ones) and AWS_ENDPOINT_URL at the
  emulator, so the handler's boto3 calls reach it; HOME and TMPDIR are the worker's own scratch folder;
- the timeout is the function's: past it the worker's process group is killed and the result is AWS's
  `Sandbox.Timedout` error ("Task timed out after N.NN seconds");
- the handler's stdout/stderr are the log, framed by START/END/REPORT lines as in CloudWatch (one log
  stream per worker, as per sandbox on AWS); every invocation is kept (the last `keep_per_function` of
  each function), with its event, and retrievable by function or request id.

Not modelled: the memory limit (reported in the context and REPORT line, not enforced), layers,
extensions, a read-only task root, non-Python runtimes (an invoke answers `Runtime.Unsupported`).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.identity import FAKE_CREDENTIALS_ENV
from harness.lambda_runtime import bootstrap

BOOTSTRAP = Path(bootstrap.__file__).resolve()
# AWS returns at most the last 4 KB of the log in an invoke's LogResult.
LOG_TAIL_BYTES = 4096
# AWS gives a function's init phase (interpreter, handler import) 10 s, apart from its timeout.
INIT_TIMEOUT_S = 10.0
# How often an invoke also looks at every idle worker (idle timeouts, workers of another emulator, dead
# ones); in between it looks only at the workers of its own function and configuration.
SWEEP_INTERVAL_S = 1.0


class LambdaRuntimeError(RuntimeError):
    """The harness could not run an invocation at all (not a handler error)."""


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know about a function (read from moto's LambdaFunction by the seam)."""

    name: str
    arn: str
    handler: str
    runtime: str
    code_zip: bytes
    code_sha256_hex: str
    region: str
    timeout_s: float = 3.0
    memory_mb: int = 128
    version: str = "$LATEST"
    environment: Mapping[str, str] = field(default_factory=dict)
    role: str = ""  # the execution role's ARN: its credentials are the worker's (see LambdaRuntime)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a function needs a name")
        if self.timeout_s <= 0:
            raise ValueError(f"{self.name}: the timeout must be positive, not {self.timeout_s}")
        if not self.handler:
            raise ValueError(f"{self.name}: a Zip function needs a handler")


@dataclass(frozen=True)
class Invocation:
    """One finished invocation: the event, the payload (JSON text) or AWS's error document, the log."""

    request_id: str
    function_name: str
    event: Any
    payload: bytes
    function_error: str | None  # "Unhandled" when the handler failed, else None
    log: str
    log_stream_name: str
    started_at: float
    duration_ms: float
    init_ms: float | None = None  # set on a cold start: the worker's init phase

    @property
    def cold_start(self) -> bool:
        return self.init_ms is not None

    @property
    def log_tail_base64(self) -> str:
        """The LogResult header's value: the log's last 4 KB, base64."""
        return base64.b64encode(self.log.encode("utf-8")[-LOG_TAIL_BYTES:]).decode("ascii")


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode("utf-8")


def _moto_endpoint() -> str:
    port = os.environ.get("MOTO_PORT")
    if not port:
        raise LambdaRuntimeError(
            "no emulator endpoint for the Lambda runtime: MOTO_PORT is not set (start an EmbeddedEmulator "
            "or pass endpoint_url=)"
        )
    return f"http://127.0.0.1:{port}"


class _Worker:
    """One warm execution environment: a bootstrap process, its control pipe and scratch folder."""

    def __init__(
        self, key: tuple[Any, ...], process: subprocess.Popen[bytes], control: int, home: Path, stream: str
    ):
        self.key = key
        self.process = process
        self.control = control
        self.home = home
        self.stream = stream
        self.last_used = time.monotonic()
        # Set by the cold start, reported (then cleared) by the first invocation.
        self.init_ms: float | None = None
        self.init_log = ""
        self.init_failure: str | None = None  # "timeout" or "died" when the init phase failed

    def send(self, request: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
        self.process.stdin.flush()

    def wait(self, timeout_s: float) -> str | None:
        """The worker's answer line ("ready", "done <result>", "retire <result>"), "" when it died,
        None when `timeout_s` passed."""
        deadline = time.monotonic() + timeout_s
        chunks: list[bytes] = []
        while not chunks or not chunks[-1].endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([self.control], [], [], left)
            if not readable:
                return None
            chunk = os.read(self.control, 1 << 16)
            if not chunk:
                return ""
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8").rstrip("\n")

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.close_files()

    def close_files(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        with contextlib.suppress(OSError):
            os.close(self.control)
        shutil.rmtree(self.home, ignore_errors=True)


class LambdaRuntime:
    """Runs handlers in warm worker processes; thread-safe (moto's server calls it from many threads)."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        cache_dir: Path | None = None,
        python: str = sys.executable,
        keep_per_function: int = 50,
        idle_s: float = 300.0,
        error_for: Callable[[str], str | None] | None = None,
        credentials_for: Callable[[FunctionSpec], Mapping[str, str]] | None = None,
        min_cold_start_s: Callable[[], float] | None = None,
    ) -> None:
        # A function -> its worker's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN: the
        # execution role's temporary credentials, as Lambda gets them by AssumeRole (the context gives
        # harness.iam's); None: the harness's fake ones.
        self._credentials_for = credentials_for
        # The shortest init a cold start takes (a timing profile's figure, harness/timing.py); a worker
        # that started faster waits out the rest before its first invocation.
        self._min_cold_start_s = min_cold_start_s
        # A function name -> the message its worker raises instead of running the handler, or None
        # (the fault board's `lambda_error`, harness/faults.py).
        self._error_for = error_for
        self._endpoint_url = endpoint_url
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "mlops-harness-lambda-code"
        self._python = python
        self._lock = threading.Lock()
        self._history: dict[str, collections.deque[Invocation]] = {}
        self._keep = keep_per_function
        self._idle_s = idle_s
        self._idle: dict[tuple[Any, ...], list[_Worker]] = {}
        self._workers: set[_Worker] = set()
        self._next_sweep = 0.0

    @property
    def endpoint_url(self) -> str:
        """The endpoint handlers call: the one given, else the embedded emulator's (MOTO_PORT)."""
        return self._endpoint_url or _moto_endpoint()

    # -- code ----------------------------------------------------------------------------------------
    def task_root(self, spec: FunctionSpec) -> Path:
        """The unpacked deployment package, cached by its SHA-256."""
        target = self.cache_dir / spec.code_sha256_hex
        if target.is_dir():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.cache_dir))
        try:
            with zipfile.ZipFile(io.BytesIO(spec.code_zip)) as archive:
                archive.extractall(staging)
        except zipfile.BadZipFile as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise LambdaRuntimeError(
                f"{spec.name}: the deployment package is not a zip file ({exc})"
            ) from exc
        try:
            staging.rename(target)
        except OSError:
            # Another thread unpacked the same code first: theirs is identical.
            shutil.rmtree(staging, ignore_errors=True)
        return target

    # -- workers -------------------------------------------------------------------------------------
    def _key(self, spec: FunctionSpec) -> tuple[Any, ...]:
        return (
            spec.name,
            spec.code_sha256_hex,
            spec.handler,
            spec.runtime,
            spec.version,
            spec.memory_mb,
            spec.region,
            spec.role,
            tuple(sorted(spec.environment.items())),
            self.endpoint_url,
        )

    def _acquire(self, spec: FunctionSpec) -> _Worker:
        """An idle worker for this function and configuration, or a new one (cold start).

        The most recently released worker is taken (its caches are warm; the others may idle out). The
        worker taken is checked (alive, not idle too long); every idle worker is looked at only once per
        SWEEP_INTERVAL_S, so that an invoke costs the same with 1 or 256 idle workers."""
        key = self._key(spec)
        expired: list[_Worker] = []
        worker = None
        now = time.monotonic()
        with self._lock:
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP_INTERVAL_S
                expired = self._sweep(key[-1], now)
            workers = self._idle.get(key, [])
            while workers:
                candidate = workers.pop()
                if self._reusable(candidate, now):
                    worker = candidate
                    break
                expired.append(candidate)
                self._workers.discard(candidate)
        for stale in expired:
            stale.kill()
        if worker is not None:
            return worker
        return self._spawn(spec, key)

    def _reusable(self, worker: _Worker, now: float) -> bool:
        """Alive, and idle no longer than `idle_s`."""
        return now - worker.last_used <= self._idle_s and worker.process.poll() is None

    def _sweep(self, endpoint: str, now: float) -> list[_Worker]:
        """Takes out (under the lock) every idle worker that idled too long, died or calls another
        endpoint than `endpoint` (one emulator per process: such a worker is a stale one)."""
        expired = []
        for idle_key, workers in self._idle.items():
            for candidate in list(workers):
                if idle_key[-1] != endpoint or not self._reusable(candidate, now):
                    workers.remove(candidate)
                    expired.append(candidate)
                    self._workers.discard(candidate)
        return expired

    def _spawn(self, spec: FunctionSpec, key: tuple[Any, ...]) -> _Worker:
        root = self.task_root(spec)
        home = Path(tempfile.mkdtemp(prefix=f"mlops-lambda-{spec.name[:40]}-"))
        day = time.strftime("%Y/%m/%d", time.gmtime())
        stream = f"{day}/[{spec.version}]{uuid.uuid4().hex}"
        env = self._environment(spec, root, home, stream)
        read_end, write_end = os.pipe()
        env[bootstrap.CONTROL_FD_ENV] = str(write_end)
        try:
            with (home / "worker.log").open("wb") as boot_log:
                process = subprocess.Popen(
                    [self._python, "-I", str(BOOTSTRAP)],
                    env=env,
                    cwd=root,
                    stdin=subprocess.PIPE,
                    stdout=boot_log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_end,),
                    start_new_session=True,
                )
        except OSError:
            os.close(read_end)
            shutil.rmtree(home, ignore_errors=True)
            raise
        finally:
            os.close(write_end)
        worker = _Worker(key, process, read_end, home, stream)
        with self._lock:
            self._workers.add(worker)
        started = time.monotonic()
        ready = worker.wait(INIT_TIMEOUT_S)
        if ready == "ready" and self._min_cold_start_s is not None:
            left = self._min_cold_start_s() - (time.monotonic() - started)
            if left > 0:
                time.sleep(left)
        worker.init_ms = (time.monotonic() - started) * 1000
        worker.init_log = (home / "worker.log").read_text(encoding="utf-8", errors="replace")
        if ready != "ready":
            worker.init_failure = "timeout" if ready is None else "died"
        return worker

    def _release(self, worker: _Worker) -> None:
        worker.last_used = time.monotonic()
        with self._lock:
            if worker in self._workers:
                self._idle.setdefault(worker.key, []).append(worker)
                return
        worker.kill()  # the runtime was closed meanwhile

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._workers.discard(worker)
        worker.kill()

    def workers(self, function_name: str | None = None) -> int:
        """How many worker processes exist (busy or idle), of one function when named."""
        with self._lock:
            return sum(1 for w in self._workers if function_name is None or w.key[0] == function_name)

    def close(self) -> None:
        """Stops every worker; the runtime stays usable (the next invoke starts a new one)."""
        with self._lock:
            workers = list(self._workers)
            self._workers.clear()
            self._idle.clear()
        for worker in workers:
            worker.kill()

    # -- invoke --------------------------------------------------------------------------------------
    def invoke(self, spec: FunctionSpec, event: Any, invoked_arn: str | None = None) -> Invocation:
        """Runs the handler once with `event` (any JSON value) and returns the finished invocation."""
        request_id = str(uuid.uuid4())
        started = time.time()
        if not spec.runtime.startswith("python3"):
            payload = _error_payload(
                "Runtime.Unsupported", f"the harness runs python3.x handlers only, not {spec.runtime!r}"
            )
            stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{spec.version}]{uuid.uuid4().hex}"
            return self._record(spec, request_id, event, payload, "Unhandled", "", stream, started)

        worker = self._acquire(spec)
        init_ms, init_log = worker.init_ms, worker.init_log
        worker.init_ms, worker.init_log = None, ""
        if worker.init_failure is not None:
            payload, extra = self._init_failed(request_id, worker)
            self._discard(worker)
            return self._record(
                spec,
                request_id,
                event,
                payload,
                "Unhandled",
                init_log + extra,
                worker.stream,
                started,
                init_ms,
            )
        started = time.time()
        log_path = worker.home / "invocation.log"
        request = {
            "request_id": request_id,
            "deadline_ms": int((started + spec.timeout_s) * 1000),
            "invoked_arn": invoked_arn or spec.arn,
            "event": event,
            "log_file": str(log_path),
            "inject_error": self._error_for(spec.name) if self._error_for is not None else None,
        }
        try:
            worker.send(request)
            answer = worker.wait(max(0.0, started + spec.timeout_s - time.time()))
        except (BrokenPipeError, OSError):
            answer = ""
        # Read before the worker is released (its next request empties the file) or discarded (its
        # folder is removed).
        handler_log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
        status, _, result_text = (answer or "").partition(" ")
        if status in ("done", "retire"):
            result = json.loads(result_text)
            if status == "done":
                self._release(worker)
            else:
                self._discard(worker)
            if result["ok"]:
                payload, function_error, extra = str(result["payload"]).encode("utf-8"), None, ""
            else:
                payload, function_error, extra = json.dumps(result["error"]).encode("utf-8"), "Unhandled", ""
        else:
            payload, function_error, extra = self._lost(spec, request_id, worker, timed_out=answer is None)
            self._discard(worker)
        log = init_log + handler_log + extra
        return self._record(
            spec, request_id, event, payload, function_error, log, worker.stream, started, init_ms
        )

    @staticmethod
    def _init_failed(request_id: str, worker: _Worker) -> tuple[bytes, str]:
        if worker.init_failure == "timeout":
            message = f"RequestId: {request_id} Error: Init timed out after {INIT_TIMEOUT_S:.0f} seconds"
            return _error_payload("Runtime.InitTimeout", message), f"{message}\n"
        message = f"RequestId: {request_id} Error: Runtime exited during init"
        return _error_payload("Runtime.ExitError", message), f"{message}\n"

    @staticmethod
    def _lost(
        spec: FunctionSpec, request_id: str, worker: _Worker, timed_out: bool
    ) -> tuple[bytes, str, str]:
        """(payload, function error, log lines) for a worker that timed out or died."""
        if timed_out:
            message = f"Task timed out after {spec.timeout_s:.2f} seconds"
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            payload = _error_payload("Sandbox.Timedout", f"RequestId: {request_id} Error: {message}")
            return payload, "Unhandled", f"{stamp}Z {request_id} {message}\n"
        try:
            status: int | str = worker.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = "unknown (the worker closed its control pipe but kept running)"
        message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {status}"
        return _error_payload("Runtime.ExitError", message), "Unhandled", f"{message}\n"

    def _environment(self, spec: FunctionSpec, root: Path, home: Path, stream: str) -> dict[str, str]:
        env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "HOME": str(home),
            "TMPDIR": str(home),
            "PYTHONUNBUFFERED": "1",
            # Keep the host's AWS config and credentials away from the handler.
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
        }
        env.update({str(k): str(v) for k, v in spec.environment.items()})
        # What AWS reserves: a function's own variables cannot override these.
        env.update(
            {
                "_HANDLER": spec.handler,
                "LAMBDA_TASK_ROOT": str(root),
                "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": stream,
                "AWS_ENDPOINT_URL": self.endpoint_url,
                **self._credentials_env(spec),
            }
        )
        return env

    def _credentials_env(self, spec: FunctionSpec) -> dict[str, str]:
        if self._credentials_for is None:
            return dict(FAKE_CREDENTIALS_ENV)
        try:
            given = dict(self._credentials_for(spec))
        except PermissionError as error:  # the role cannot be assumed by Lambda (its trust policy)
            message = f"{spec.name}: no credentials for the execution role: {error}"
            raise LambdaRuntimeError(message) from error
        if "AWS_SESSION_TOKEN" not in given:  # the admin's key has none; a worker always gets a variable
            given["AWS_SESSION_TOKEN"] = FAKE_CREDENTIALS_ENV["AWS_SESSION_TOKEN"]
        return given

    def _record(
        self,
        spec: FunctionSpec,
        request_id: str,
        event: Any,
        payload: bytes,
        function_error: str | None,
        handler_log: str,
        stream: str,
        started: float,
        init_ms: float | None = None,
    ) -> Invocation:
        duration_ms = (time.time() - started) * 1000
        if handler_log and not handler_log.endswith("\n"):
            handler_log += "\n"
        init = "" if init_ms is None else f"\tInit Duration: {init_ms:.2f} ms"
        log = (
            f"START RequestId: {request_id} Version: {spec.version}\n"
            f"{handler_log}"
            f"END RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {spec.memory_mb} MB{init}\n"
        )
        invocation = Invocation(
            request_id=request_id,
            function_name=spec.name,
            event=event,
            payload=payload,
            function_error=function_error,
            log=log,
            log_stream_name=stream,
            started_at=started,
            duration_ms=duration_ms,
            init_ms=init_ms,
        )
        with self._lock:
            history = self._history.setdefault(spec.name, collections.deque(maxlen=self._keep))
            history.append(invocation)
        return invocation

    # -- logs ----------------------------------------------------------------------------------------
    def invocations(self, function_name: str | None = None) -> list[Invocation]:
        """The kept invocations, oldest first; of one function when named."""
        with self._lock:
            if function_name is not None:
                return list(self._history.get(function_name, ()))
            every = [item for history in self._history.values() for item in history]
        return sorted(every, key=lambda item: item.started_at)

    def invocation(self, request_id: str) -> Invocation:
        """One kept invocation by its request id."""
        for item in self.invocations():
            if item.request_id == request_id:
                return item
        raise KeyError(f"no kept invocation has request id {request_id}")

    def clear(self) -> None:
        with self._lock:
            self._history.clear()


def zip_sources(sources: Mapping[str, str]) -> bytes:
    """A deployment package (zip bytes) holding `sources` (archive path -> text)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in sorted(sources.items()):
            archive.writestr(name, text)
    return buffer.getvalue()
