"""harness/aws_errors.py is the one writer of AWS error documents: an injected fault and an IAM denial
in the same protocol have one shape, and botocore's own parsers read each as AWS's."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.parsers import create_parser
from requests.structures import CaseInsensitiveDict  # what botocore's parsers get: HTTP headers

from harness.aws_errors import AwsError, render, request_protocol
from harness.iam.errors import refusal


def parsed(service: str, status: int, headers: dict[str, str], body: str) -> dict[str, object]:
    model = botocore.session.get_session().get_service_model(service)
    operation = model.operation_model(model.operation_names[0])
    parser = create_parser(model.metadata["protocol"])
    return dict(
        parser.parse(
            {"status_code": status, "headers": CaseInsensitiveDict(headers), "body": body.encode("utf-8")},
            operation.output_shape,
        )
    )


@pytest.mark.parametrize(
    "service", ["sagemaker", "stepfunctions", "lambda", "apigateway", "sts", "cloudformation"]
)
def test_a_denial_and_an_injected_fault_have_one_shape(service: str) -> None:
    wire = request_protocol(service, None)
    denied_status, denied_headers, denied_body = refusal(service, wire, "AccessDenied", "not you")
    fault_headers, fault_body = render(
        service, AwsError("AccessDenied", denied_status, "not you"), "rid", wire
    )
    assert sorted(denied_headers) == sorted(fault_headers)
    assert denied_body.replace(denied_headers["x-amzn-RequestId"], "rid") == fault_body
    error = parsed(service, denied_status, denied_headers, denied_body)["Error"]
    assert error == {**error, "Code": "AccessDenied", "Message": "not you"}  # type: ignore[dict-item]


def test_query_errors_carry_the_service_namespace() -> None:
    """STS API reference, "Common Errors" example responses: `<ErrorResponse xmlns="https://sts.
    amazonaws.com/doc/2011-06-15/">`, the namespace botocore's model names (`xmlNamespace`)."""
    _, body = render("sts", AwsError("Throttling", 400, "Rate exceeded"), "rid")
    assert body.startswith(
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender'
    )


def test_lambda_names_whose_fault_it_is() -> None:
    """Lambda API reference, Errors: the body's `Type` is `User` for the caller's errors, `Service`
    for Lambda's own."""
    _, user = render("lambda", AwsError("TooManyRequestsException", 429, "Rate exceeded"), "rid")
    _, own = render("lambda", AwsError("ServiceException", 500, "boom", sender=False), "rid")
    assert '"Type": "User"' in user and '"Type": "Service"' in own
    _, other = render("apigateway", AwsError("TooManyRequestsException", 429, "Rate exceeded"), "rid")
    assert "Type" not in other


def test_the_protocol_is_the_requests_own() -> None:
    """CodePipeline's model lists smithy-rpc-v2-cbor and json; a JSON request is answered in JSON."""
    assert request_protocol("codepipeline", "application/x-amz-json-1.1") == "json"
    assert request_protocol("sts", "application/x-www-form-urlencoded") == "query"
