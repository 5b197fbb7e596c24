"""Seam: moto's Lambda runs the real handler, in its own process (harness.lambda_runtime).

Why: moto 5.2.5 runs a handler only inside a Docker image it pulls (impossible offline), or not at all
(`use_docker: false` answers canned text). Every trigger path reaches `LambdaFunction.invoke(body,
request_headers, response_headers)`: the Invoke API, Step Functions lambda tasks (which call the Invoke
API back over HTTP), S3 notifications, EventBridge targets (harness.seams.events) and the pipeline
runner's Lambda actions. Replacing `invoke` (and `_invoke_lambda`, its only callee, for any other caller)
gives them all real execution, with AWS's answers:
- RequestResponse: the handler's result, or `X-Amz-Function-Error: Unhandled` with AWS's error document
  (errorMessage, errorType, stackTrace); `LogResult` is the log's last 4 KB when the caller asks (moto's
  response code drops it otherwise);
- Event: 202 at once, the handler runs in a background thread (as AWS queues it; no retries here);
- DryRun: nothing runs.
Each invocation's log also goes to moto's CloudWatch Logs (group /aws/lambda/<name>, one stream per
worker process, i.e. per execution environment), so `logs.get_log_events` shows it as on AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.logs.exceptions import ResourceAlreadyExistsException

from deployer.iam_policy import Request
from harness.context import current
from harness.iam.credentials import find_role
from harness.iam.principals import role_session
from harness.lambda_runtime import FunctionSpec, Invocation, LambdaRuntimeError

logger = logging.getLogger(__name__)

# The moto API this seam replaces: (class path, attribute names). Checked at install.
REPLACED = ("moto.awslambda.models.LambdaFunction", ("invoke", "_invoke_lambda"))


class InvalidRequestContentException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidRequestContentException", message)


def _header(headers: Any, name: str, default: str) -> str:
    """Case-insensitive header lookup over werkzeug headers or the plain dicts moto passes internally."""
    if not headers:
        return default
    wanted = name.lower()
    for key, value in list(headers.items()):
        if str(key).lower() == wanted:
            return str(value)
    return default


def function_spec(fn: Any) -> FunctionSpec:
    """Reads what the runtime needs from moto's LambdaFunction."""
    code: bytes = getattr(fn, "code_bytes", b"") or b""
    if not code:
        raise LambdaRuntimeError(
            f"{fn.function_name}: no deployment package is stored (PackageType {fn.package_type}; an S3 "
            "package must exist when the function is created)"
        )
    environment: Mapping[str, Any] = fn.environment_vars or {}
    return FunctionSpec(
        name=str(fn.function_name),
        arn=str(fn.function_arn),
        handler=str(fn.handler or ""),
        runtime=str(fn.run_time or ""),
        code_zip=code,
        code_sha256_hex=hashlib.sha256(code).hexdigest(),
        region=str(fn.region),
        timeout_s=float(fn.timeout),
        memory_mb=int(fn.memory_size),
        version="$LATEST" if str(fn.version) in ("1", "$LATEST") else str(fn.version),
        environment={str(k): str(v) for k, v in environment.items()},
        role=str(fn.role or ""),
    )


def _parse_event(body: Any) -> Any:
    if body is None or body == "" or body == b"":
        return {}
    if isinstance(body, dict | list):
        return body  # moto's own callers sometimes pass the decoded event
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidRequestContentException(f"Could not parse request body into json: {exc}") from exc


def _save_logs(fn: Any, invocation: Invocation) -> None:
    """Copies the invocation's log into moto's CloudWatch Logs, one stream per invocation.

    Lambda writes the log with the function's execution role (Lambda developer guide, "Sending Lambda
    function logs to CloudWatch Logs": the role needs logs:CreateLogGroup, logs:CreateLogStream and
    logs:PutLogEvents, as AWSLambdaBasicExecutionRole grants); without them the function still runs and
    no log appears. So does it here, with the denial recorded (`context.iam.denials()`)."""
    backend = fn.logs_backend
    group = f"/aws/lambda/{fn.function_name}"
    if not _may_write_logs(fn, group, invocation.log_stream_name):
        return
    backend.ensure_log_group(group)
    # One stream per worker (execution environment), as on AWS: created by its first invocation.
    with contextlib.suppress(ResourceAlreadyExistsException):
        backend.create_log_stream(group, invocation.log_stream_name)
    stamp = int(invocation.started_at * 1000)
    events = [{"timestamp": stamp, "message": line} for line in invocation.log.splitlines()]
    backend.put_log_events(group, invocation.log_stream_name, events)


def _may_write_logs(fn: Any, group: str, stream: str) -> bool:
    context = current()
    role = str(fn.role or "")
    if context is None or not context.iam.enabled or not role or find_role(role) is None:
        return True
    region, account = str(fn.region), str(fn.account_id)
    group_arn = f"arn:aws:logs:{region}:{account}:log-group:{group}"
    requests = [
        Request("logs:CreateLogGroup", f"{group_arn}:*"),
        Request("logs:CreateLogStream", f"{group_arn}:*"),
        Request("logs:PutLogEvents", f"{group_arn}:log-stream:{stream}"),
    ]
    return context.iam.authorize(role_session(role, str(fn.function_name)), requests) is None


def run(fn: Any, event: Any) -> Invocation:
    """Runs one invocation of moto's function `fn` through the harness runtime and records its log."""
    try:
        spec = function_spec(fn)
        context = current()
        if context is None:
            raise LambdaRuntimeError("no harness context: functions run only while an EmbeddedEmulator runs")
        invocation = context.lambdas.invoke(spec, event)
    except LambdaRuntimeError as exc:
        logger.error("lambda %s could not run: %s", fn.function_name, exc)
        raise
    _save_logs(fn, invocation)
    return invocation


def _run_in_background(fn: Any, event: Any) -> None:
    def target() -> None:
        try:
            invocation = run(fn, event)
            if invocation.function_error:
                logger.warning("async invoke of %s failed: %s", fn.function_name, invocation.payload[:500])
        except Exception:
            logger.exception("async invoke of %s could not run", fn.function_name)

    threading.Thread(target=target, name=f"lambda-event-{fn.function_name}", daemon=True).start()


def _invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
    event = _parse_event(body)
    invocation_type = _header(request_headers, "X-Amz-Invocation-Type", "RequestResponse")
    if invocation_type == "DryRun":
        return b""
    if invocation_type == "Event":
        _run_in_background(self, event)
        return b""
    try:
        invocation = run(self, event)
    except LambdaRuntimeError as exc:
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorMessage": str(exc), "errorType": "Runtime.HarnessError"}).encode("utf-8")
    response_headers["x-amz-log-result"] = invocation.log_tail_base64
    response_headers["x-amz-executed-version"] = "$LATEST"
    if invocation.function_error:
        response_headers["x-amz-function-error"] = invocation.function_error
    return invocation.payload


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    invocation = run(self, _parse_event(event))
    return invocation.payload.decode("utf-8"), invocation.function_error is not None, invocation.log


def install() -> None:
    from moto.awslambda import models

    for name in REPLACED[1]:
        if not callable(getattr(models.LambdaFunction, name, None)):
            raise RuntimeError(f"moto moved: LambdaFunction.{name} is gone; port harness/seams/awslambda.py")
    models.LambdaFunction.invoke = _invoke  # type: ignore[method-assign,assignment]
    models.LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign,assignment]
