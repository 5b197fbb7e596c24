"""The errors AWS services answer when they throttle, fail for a while or refuse for a quota, as each
service and protocol gives them: the code, the HTTP status, the message, and the response's shape.

The fault board (harness/faults.py) holds which API calls should fail; the emulator's boundary
(harness/seams/api_faults.py) answers them with `render(...)`, so every caller (the Lambdas, the
state machine's tasks, the harness) reads the error through its own SDK as it would from AWS, and
botocore's retries apply as they do there.

Sources, per figure:
- Common errors of the AWS JSON and query APIs (e.g. SageMaker API Reference, "Common Errors"; the
  same page in the Step Functions, CloudWatch Logs and CodePipeline references): ThrottlingException
  HTTP 400 "The request was denied due to request throttling.", ServiceUnavailable HTTP 503,
  InternalFailure HTTP 500. Query-protocol services (CloudFormation, IAM, STS) send the code
  `Throttling` with the message "Rate exceeded" (as botocore's retry handler lists it, and as their
  users report it).
- Lambda API Reference, Invoke, Errors: TooManyRequestsException HTTP 429, ServiceException HTTP 500.
- API Gateway API Reference, Common errors: TooManyRequestsException HTTP 429,
  ServiceUnavailableException HTTP 503.
- DynamoDB Developer Guide, "Error handling with DynamoDB": ProvisionedThroughputExceededException
  and ThrottlingException HTTP 400, InternalServerError HTTP 500, ServiceUnavailable HTTP 503.
- S3 API Reference, "Error responses", List of error codes: SlowDown HTTP 503, ServiceUnavailable
  HTTP 503, InternalError HTTP 500 (S3 has no quota error of this kind).
- SageMaker API Reference, CreateTrainingJob, Errors: ResourceLimitExceeded HTTP 400; the message as
  SageMaker users report it ("The account-level service limit 'ml.p3.2xlarge for training job usage'
  is 0 Instances, ...", e.g. github.com/aws/sagemaker-python-sdk issue 35).
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass
from typing import Final, Literal
from xml.sax.saxutils import escape

import botocore.session
from botocore.model import ServiceModel
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

ErrorKind = Literal["throttling", "unavailable", "internal", "resource_limit_exceeded"]
ERROR_KINDS: Final = ("throttling", "unavailable", "internal", "resource_limit_exceeded")

# Services whose API calls the boundary can answer: moto's generic request handling
# (BaseResponse.call_action) for all but S3, whose own dispatch is hooked where it authorizes a request.
SERVICES: Final = frozenset(
    {
        "apigateway",
        "s3",
        "cloudformation",
        "codebuild",
        "codepipeline",
        "dynamodb",
        "ecr",
        "events",
        "iam",
        "lambda",
        "logs",
        "sagemaker",
        "sagemaker-runtime",
        "stepfunctions",
        "sts",
    }
)
# DynamoDB's data plane throttles with ProvisionedThroughputExceededException, its control plane
# with ThrottlingException (DynamoDB Developer Guide, "Error handling with DynamoDB").
_DYNAMODB_DATA_PLANE: Final = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
TRAINING_LIMIT_MESSAGE: Final = (
    "The account-level service limit '{instance_type} for training job usage' is 0 Instances, with "
    "current utilization of 0 Instances and a request delta of 1 Instances. Please use AWS Service "
    "Quotas to request an increase for this quota. If AWS Service Quotas is not available, contact "
    "AWS support to request an increase for this quota."
)


@dataclass(frozen=True)
class AwsError:
    """One error answer: its code, HTTP status and message; `sender` is the query protocol's fault."""

    code: str
    status: int
    message: str
    sender: bool = True


@functools.cache
def service_model(service: str) -> ServiceModel:
    """botocore's model of `service`, parsed once per process (a new botocore session parses it from disk
    again: SageMaker's takes 0.1 s of CPU)."""
    return botocore.session.get_session().get_service_model(service)


def protocol(service: str) -> str:
    """The service's wire protocol from botocore's model: json, rest-json, query or rest-xml."""
    return str(service_model(service).metadata["protocol"])


def check_call(service: str, operation: str) -> None:
    """Raises ValueError unless `operation` is an operation of `service` that the boundary can fail."""
    if service not in SERVICES:
        raise ValueError(
            f"API errors can be injected for the services {', '.join(sorted(SERVICES))}, not {service!r}"
        )
    names = service_model(service).operation_names
    if operation not in names:
        raise ValueError(
            f"{service} has no operation {operation!r} (the API reference's name, e.g. {names[0]})"
        )


def aws_error(service: str, operation: str, kind: ErrorKind) -> AwsError:
    """The error `service` answers `operation` with for `kind`, as AWS documents it."""
    check_call(service, operation)
    wire = protocol(service)
    if kind == "resource_limit_exceeded":
        if service != "sagemaker" or not operation.startswith("Create"):
            raise ValueError("resource_limit_exceeded is SageMaker's answer to a Create* call")
        return AwsError("ResourceLimitExceeded", 400, TRAINING_LIMIT_MESSAGE)
    if service == "s3":
        return _s3_error(kind)
    if kind == "throttling":
        if service in ("lambda", "apigateway"):
            return AwsError("TooManyRequestsException", 429, "Rate exceeded")
        if service == "dynamodb" and operation in _DYNAMODB_DATA_PLANE:
            return AwsError(
                "ProvisionedThroughputExceededException",
                400,
                "The level of configured provisioned throughput for the table was exceeded. "
                "Consider increasing your provisioning level with the UpdateTable API.",
            )
        if wire == "query":
            return AwsError("Throttling", 400, "Rate exceeded")
        return AwsError("ThrottlingException", 400, "Rate exceeded")
    if kind == "unavailable":
        if service == "lambda":
            return AwsError("ServiceException", 500, "The AWS Lambda service encountered an internal error.")
        if service == "apigateway":
            return AwsError("ServiceUnavailableException", 503, "Service Unavailable", sender=False)
        return AwsError(
            "ServiceUnavailable",
            503,
            "The request has failed due to a temporary failure of the server.",
            sender=False,
        )
    if service == "lambda":
        return AwsError("ServiceException", 500, "The AWS Lambda service encountered an internal error.")
    if service == "dynamodb":
        return AwsError("InternalServerError", 500, "Internal server error", sender=False)
    return AwsError(
        "InternalFailure",
        500,
        "The request processing has failed because of an unknown error, exception or failure.",
        sender=False,
    )


def request_protocol(service: str, content_type: str | None) -> str:
    """The protocol one request speaks: several services list more than one in their model
    (CodePipeline, CodeBuild and CloudWatch: smithy-rpc-v2-cbor and json) and the SDK picks one, named
    by the request's Content-Type; moto answers CBOR requests as JSON, so the error does too."""
    from moto.core.request import determine_request_protocol

    model = service_model(service)
    try:
        wire = str(determine_request_protocol(model, content_type))
    except NotImplementedError:
        wire = str(model.protocol)
    return "json" if wire == "smithy-rpc-v2-cbor" else wire


def _s3_error(kind: ErrorKind) -> AwsError:
    """S3 API Reference, "Error responses", List of error codes: SlowDown (503, "Please reduce your
    request rate."), ServiceUnavailable (503, "Service is unable to handle request."), InternalError
    (500, "We encountered an internal error. Please try again.")."""
    if kind == "throttling":
        return AwsError("SlowDown", 503, "Please reduce your request rate.", sender=False)
    if kind == "unavailable":
        return AwsError("ServiceUnavailable", 503, "Service is unable to handle request.", sender=False)
    return AwsError("InternalError", 500, "We encountered an internal error. Please try again.", sender=False)


def render(
    service: str, error: AwsError, request_id: str, wire: str | None = None
) -> tuple[dict[str, str], str]:
    """The response headers and body of `error` in `service`'s protocol (what botocore parses);
    `wire` is the request's own protocol (`request_protocol`), else the service model's.

    Shapes (AWS's API references, "Common Errors"; botocore's parsers read exactly these):
    - json (awsJson1.0/1.1): body `{"__type": CODE, "message": MESSAGE}`, header `x-amzn-ErrorType`;
    - rest-json: header `x-amzn-ErrorType`, body `{"message": MESSAGE}`; Lambda adds `"Type"`, `User`
      for the caller's fault and `Service` for its own (Lambda API reference, Errors);
    - query: `<ErrorResponse xmlns=NAMESPACE><Error><Type>Sender|Receiver</Type><Code>...</Code>
      <Message>...</Message></Error><RequestId>...</RequestId></ErrorResponse>`, the namespace the
      service model's `xmlNamespace`;
    - rest-xml (S3): `<Error><Code>...</Code><Message>...</Message><RequestId>...</RequestId><HostId>
      ...</HostId></Error>` (S3 API reference, "Error responses").
    """
    wire = wire or protocol(service)
    metadata = service_model(service).metadata
    if wire == "json":
        version = metadata.get("jsonVersion", "1.0")
        headers = {
            "Content-Type": f"application/x-amz-json-{version}",
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": request_id,
        }
        return headers, json.dumps({"__type": error.code, "message": error.message})
    if wire == "rest-json":
        headers = {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": request_id,
        }
        body: dict[str, str] = {"message": error.message}
        if service == "lambda":
            body["Type"] = "User" if error.sender else "Service"
        return headers, json.dumps(body)
    if wire in ("query", "ec2"):
        fault = "Sender" if error.sender else "Receiver"
        namespace = str(metadata.get("xmlNamespace", ""))
        opening = f'<ErrorResponse xmlns="{escape(namespace)}">' if namespace else "<ErrorResponse>"
        text = (
            f"{opening}<Error><Type>{fault}</Type><Code>{escape(error.code)}</Code>"
            f"<Message>{escape(error.message)}</Message></Error>"
            f"<RequestId>{escape(request_id)}</RequestId></ErrorResponse>"
        )
        return {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, text
    return {"Content-Type": "application/xml", "x-amz-request-id": request_id}, s3_error_body(
        error.code, error.message, request_id
    )


def s3_error_body(code: str, message: str, request_id: str) -> str:
    """S3's error document (S3 API reference, "Error responses": Code, Message, RequestId, HostId)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{escape(request_id)}</RequestId><HostId>{escape(request_id)}</HostId></Error>"
    )


class S3ErrorResponse(HTTPException):
    """Raised inside moto's S3 dispatch, which has its own (no `call_action` to answer from): Flask
    answers it with S3's error document and the error's status (a HEAD request gets the status only,
    as S3 answers one)."""

    def __init__(self, error: AwsError) -> None:
        super().__init__(description=error.message)
        self.code = error.status
        self.error = error

    def get_response(self, environ: object | None = None, scope: object | None = None) -> Response:
        request_id = uuid.uuid4().hex[:16].upper()
        headers, body = render("s3", self.error, request_id)
        return Response(body, status=self.error.status, headers=headers)


def reply(
    service: str, error: AwsError, request_id: str, wire: str | None = None
) -> tuple[int, dict[str, str], str]:
    """`render` with the HTTP status in front: what a moto response method returns."""
    headers, body = render(service, error, request_id, wire)
    return error.status, headers, body
