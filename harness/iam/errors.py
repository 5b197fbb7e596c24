"""IAM's refusals as AWS answers them: the error code and HTTP status of a denial (or of an unknown key)
in each protocol. The documents themselves are written by harness/aws_errors.py, the one writer of
AWS error responses (`render`/`reply`), so a denial and an injected fault have the same shape.

Codes and statuses (each service's API reference, "Common Errors"):
- JSON protocols (awsJson1.0/1.1: SageMaker, Step Functions, DynamoDB, CodePipeline, EventBridge, Logs,
  ECR, CodeBuild): `AccessDeniedException`, HTTP 400;
- rest-json (Lambda, API Gateway, SageMaker Runtime): `AccessDeniedException`, HTTP 403;
- query protocol (STS, IAM, CloudFormation): `AccessDenied`, HTTP 403;
- S3 (rest-xml): `AccessDenied`, HTTP 403 (S3 API reference, "Error responses"), raised as `S3Refusal`
  inside S3's own dispatch.
"""

from __future__ import annotations

import uuid
from typing import Final

from harness.aws_errors import AwsError, S3ErrorResponse, reply

Reply = tuple[int, dict[str, str], str]

FORBIDDEN: Final = 403


def refusal(service: str, wire: str, code: str, message: str, status: int | None = None) -> Reply:
    """The error answer of a refused request in the request's protocol; the status, when not given,
    is the protocol's for a denial (400 for JSON protocols, else 403)."""
    if status is None:
        status = 400 if wire == "json" else FORBIDDEN
    return reply(service, AwsError(code, status, message), str(uuid.uuid4()), wire)


class S3Refusal(S3ErrorResponse):
    """A refusal raised inside S3's dispatch: S3's 403 error document (harness.aws_errors)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(AwsError(error_code, FORBIDDEN, message))
