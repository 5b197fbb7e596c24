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
runs for each request, once it knows the service and the operation; for S3, the hook its own dispatch
calls once it has named a request's action (`S3Response._authenticate_and_authorize_s3_action`), where
a fault raises `S3ErrorResponse` (S3's XML error document: SlowDown, ServiceUnavailable, InternalError).
The wrapper calls whatever
`call_action` was installed before it (another seam's wrapper included, e.g. an IAM check), so the
wrappers compose in either order.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from moto.core.responses import BaseResponse

from harness.aws_errors import AwsError, S3ErrorResponse, render, request_protocol
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


def s3_operation(moto_action: str, method: str, headers: Mapping[str, str], query: Mapping[str, Any]) -> str:
    """The S3 API operation of a request moto's S3 dispatch named `moto_action` (ACTION_MAP's names
    are mostly the operations' own; HEAD of an object, a copy and a bucket GET are named apart)."""
    if moto_action == "GetObject" and method == "HEAD":
        return "HeadObject"
    if moto_action == "PutObject" and (headers.get("x-amz-copy-source") or headers.get("X-Amz-Copy-Source")):
        return "CopyObject"
    if moto_action == "ListBucket":  # a bucket's GET: `list-type=2` is ListObjectsV2 (S3 API reference)
        return "ListObjectsV2" if "2" in (query.get("list-type") or []) else "ListObjects"
    return moto_action


def _install_s3() -> None:
    from moto.s3.responses import S3Response

    previous = S3Response._authenticate_and_authorize_s3_action
    if getattr(previous, _MARKER, False):
        return

    @functools.wraps(previous)
    def authorize(self: S3Response, bucket_name: str | None = None, key_name: str | None = None) -> None:
        context = current()
        if context is not None:
            operation = s3_operation(
                str(self.data.get("Action", "")), str(self.method), self.headers, self.querystring
            )
            error = context.faults.api_failure("s3", operation)
            if error is not None:
                LOG.info("injected fault: s3 %s answered %s %s", operation, error.status, error.code)
                raise S3ErrorResponse(error)
        previous(self, bucket_name=bucket_name, key_name=key_name)

    setattr(authorize, _MARKER, True)
    S3Response._authenticate_and_authorize_s3_action = authorize  # type: ignore[method-assign,assignment]


def install() -> None:
    _install_s3()
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
