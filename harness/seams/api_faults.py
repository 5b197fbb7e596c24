"""Seam: injected API errors (throttling, 5xx, quotas) answered at the emulator's boundary.

Why: a fault such as "DescribeEndpoint is throttled three times" must reach every caller as it would
from AWS: the Lambdas' boto3 clients, the state machine's tasks (moto's engine calls back into the
server over HTTP), and the harness's own clients, each with its own SDK retries. Faking it inside one
caller would test that caller's fake, not the flow.

What (while installed): before moto carries out a request, the running emulator's fault board
(`HarnessContext.faults.api_failure(service, operation)`, harness/faults.py) is asked whether this
call fails; if so the request is answered with that error in the service's protocol
(harness/aws_errors.py: JSON `__type`, rest-json `x-amzn-ErrorType`, query `<ErrorResponse>`) and
its HTTP status, and nothing is done. Without a running emulator, or with no fault for the call,
moto's handling is untouched.

How: wraps `moto.core.responses.BaseResponse.call_action`, which every service handler but S3's
runs for each request, once it knows the service and the operation. The wrapper calls whatever
`call_action` was installed before it (another seam's wrapper included, e.g. an IAM check), so the
wrappers compose in either order.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any, Final

from moto.core.responses import BaseResponse

from harness.aws_errors import AwsError, render, request_protocol
from harness.context import current

LOG = logging.getLogger(__name__)

_MARKER: Final = "_harness_api_faults"


def injected_response(response: Any) -> tuple[int, dict[str, str], str] | None:
    """The error answer for this request when the fault board fails it, else None."""
    context = current()
    if context is None:
        return None
    service = response.boto3_service_name
    try:
        operation = response._get_action()
    except Exception:  # moto could not name the operation: nothing to match
        return None
    if not service or not operation:
        return None
    error = context.faults.api_failure(service, operation)
    if error is None:
        return None
    error = _with_request_details(error, response)
    request_id = str(uuid.uuid4())
    headers, body = render(
        service, error, request_id, request_protocol(service, response.headers.get("Content-Type"))
    )
    LOG.info("injected fault: %s %s answered %s %s", service, operation, error.status, error.code)
    return error.status, {**headers, "status": str(error.status)}, body


def _with_request_details(error: AwsError, response: Any) -> AwsError:
    """Fills the instance type into a quota message, as SageMaker names the limit it hit."""
    if "{instance_type}" not in error.message:
        return error
    instance_type = "the requested instance type"
    try:
        body = json.loads(response.body or "{}")
        instance_type = str(body.get("ResourceConfig", {}).get("InstanceType") or instance_type)
    except (ValueError, AttributeError):
        pass
    return AwsError(error.code, error.status, error.message.format(instance_type=instance_type), error.sender)


def install() -> None:
    previous: Callable[[BaseResponse], Any] = BaseResponse.call_action
    if getattr(previous, _MARKER, False):
        return

    # functools.wraps: inspect.getsource of the wrapper shows moto's code, which other seams' tests
    # read to check that moto still lacks what they add (docs/MOTO-SEAMS.md, IAM).
    @functools.wraps(previous)
    def call_action(self: BaseResponse) -> Any:
        answered = injected_response(self)
        if answered is not None:
            return answered
        return previous(self)

    setattr(call_action, _MARKER, True)
    BaseResponse.call_action = call_action  # type: ignore[method-assign]
