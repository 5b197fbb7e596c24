"""The child side of the Lambda runtime: one warm "execution environment" of one function.

Started by `harness.lambda_runtime.runtime` as `python -I bootstrap.py` (isolated: no user site, no
script directory on sys.path) with the function's environment, its task root as the working directory,
and a control pipe (fd number in `_HARNESS_CONTROL_FD`). It loops, as AWS's runtime does in a warm
sandbox: it reads one request per line on stdin (`{"request_id", "deadline_ms", "invoked_arn", "event",
"log_file", "inject_error"}`, the event inline), points its stdout/stderr at the log file (the worker's
own, emptied for each request), runs the handler with a context object shaped like AWS's Python
runtime's and answers one line on the control pipe: `done <result>` (or `retire <result>`, after an
init error: AWS discards such a sandbox), the result a JSON document (`{"ok": true, "payload": "<json
text>"}` or `{"ok": false, "error": {...}}`). Stdin at EOF (the parent is gone) ends it. Module state
persists between invokes of one worker, as on AWS.

The handler is imported at start (AWS's init phase), then `ready` goes to the control pipe. Only the
task root and the interpreter's third-party packages are importable: editable installs (this project's
own packages among them) are hidden, so a package that forgot a module fails as it would on AWS. This
module imports nothing from the project: it runs inside the "function".
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

CONTROL_FD_ENV = "_HARNESS_CONTROL_FD"


class LambdaContext:
    """The `context` argument, with the attributes and method AWS's Python runtime provides."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.aws_request_id = str(request["request_id"])
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = str(request["invoked_arn"])
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


class InitError(Exception):
    """The handler could not be loaded: (errorType, errorMessage)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _error(error_type: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "stackTrace": stack or []}


def _load_handler(spec: str) -> Any:
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise InitError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        message = f"Unable to import module '{module_name}': {exc}"
        raise InitError("Runtime.ImportModuleError", message) from exc
    except SyntaxError as exc:
        message = f"Syntax error in module '{module_name}': {exc}"
        raise InitError("Runtime.UserCodeSyntaxError", message) from exc
    except Exception as exc:
        raise InitError(type(exc).__name__, str(exc)) from exc
    handler = getattr(module, function_name, None)
    if handler is None:
        raise InitError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return handler


def _hide_editable_installs() -> None:
    def editable(hook: object) -> bool:
        return str(getattr(hook, "__module__", "")).startswith("__editable__")

    sys.meta_path[:] = [finder for finder in sys.meta_path if not editable(finder)]
    sys.path_hooks[:] = [hook for hook in sys.path_hooks if not editable(hook)]
    sys.path_importer_cache.clear()
    for name in [name for name in sys.modules if name.startswith("__editable__")]:
        del sys.modules[name]


def _redirect_output(path: str) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def _invoke(handler: Any, request: dict[str, Any]) -> dict[str, Any]:
    event = request["event"]
    try:
        if request.get("inject_error"):  # an injected fault (harness/faults.py): fail where the handler runs
            raise RuntimeError(request["inject_error"])
        value = handler(event, LambdaContext(request))
    except Exception as exc:
        frames = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
        error = _error(type(exc).__name__, str(exc), frames)
        error["requestId"] = request["request_id"]
        print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exc()
        return {"ok": False, "error": error}
    try:
        return {"ok": True, "payload": json.dumps(value)}
    except (TypeError, ValueError) as exc:
        error = _error("Runtime.MarshalError", f"Unable to marshal response: {exc}")
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
        return {"ok": False, "error": error}


def _answer(control: int, status: str, result: dict[str, Any]) -> None:
    """One line on the control pipe: the status word, a space, the result as JSON (which has no newline)."""
    line = memoryview(f"{status} {json.dumps(result)}\n".encode())
    while line:
        line = line[os.write(control, line) :]


def main() -> int:
    _hide_editable_installs()
    control = int(os.environ.pop(CONTROL_FD_ENV))
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    # The init phase: import the handler before the first request, as AWS does (its time is not the
    # invocation's; its output opens the first invocation's log).
    handler: Any = None
    init_error: InitError | None = None
    try:
        handler = _load_handler(os.environ["_HANDLER"])
    except InitError as exc:
        print(f"[ERROR] {exc.error_type}: {exc}", file=sys.stderr)
        init_error = exc
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(control, b"ready\n")
    for line in sys.stdin:
        request = json.loads(line)
        _redirect_output(request["log_file"])
        retire = init_error is not None
        if init_error is not None:
            result = {"ok": False, "error": _error(init_error.error_type, str(init_error))}
        else:
            result = _invoke(handler, request)
        sys.stdout.flush()
        sys.stderr.flush()
        _answer(control, "retire" if retire else "done", result)
        if retire:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
