"""Error responses shaped as each protocol's, for a refused request (denied, or an unknown key).

Shapes (botocore's parsers read exactly these; AWS's API references, "Common Errors"):
- JSON protocols (awsJson1.0/1.1: SageMaker, Step Functions, DynamoDB, CodePipeline, EventBridge, Logs,
  ECR, CodeBuild): HTTP 400, body `{"__type": CODE, "message": MESSAGE}`, header `x-amzn-ErrorType`;
- rest-json (Lambda, API Gateway, SageMaker Runtime): HTTP 403, header `x-amzn-ErrorType`, body
  `{"message": MESSAGE}` (Lambda adds `"Type": "User"`);
- query protocol (STS, IAM, CloudFormation): HTTP 403, `<ErrorResponse><Error><Type>Sender</Type>
  <Code>CODE</Code><Message>MESSAGE</Message></Error><RequestId>ID</RequestId></ErrorResponse>`;
- S3 (rest-xml): HTTP 403, `<Error><Code>AccessDenied</Code><Message>...</Message><RequestId>...
  </RequestId><HostId>...</HostId></Error>` (S3 API reference, "Error responses").
"""

from __future__ import annotations

import json
import uuid
from typing import Final
from xml.sax.saxutils import escape

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

Reply = tuple[int, dict[str, str], str]

JSON_STATUS: Final = 400
FORBIDDEN: Final = 403


def json_error(code: str, message: str, json_version: str = "1.1") -> Reply:
    body = json.dumps({"__type": code, "message": message})
    headers = {
        "Content-Type": f"application/x-amz-json-{json_version}",
        "x-amzn-ErrorType": code,
        "x-amzn-RequestId": str(uuid.uuid4()),  # every AWS answer carries one; SDKs read it
    }
    return JSON_STATUS, headers, body


def rest_json_error(code: str, message: str) -> Reply:
    body = json.dumps({"Type": "User", "message": message})
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": code,
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    return FORBIDDEN, headers, body


def query_error(code: str, message: str, namespace: str) -> Reply:
    request_id = str(uuid.uuid4())
    body = (
        f'<ErrorResponse xmlns="{escape(namespace)}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return FORBIDDEN, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body


def s3_error_body(code: str, message: str) -> str:
    request_id = uuid.uuid4().hex[:16].upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
    )


class S3Refusal(HTTPException):
    """Raised inside S3's dispatch: Flask answers it with S3's 403 error document (a HEAD gets no body,
    as S3 answers a refused HeadObject: 403 Forbidden only)."""

    code = FORBIDDEN

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(description=message)
        self.error_code = error_code
        self.message = message

    def get_response(self, environ: object | None = None, scope: object | None = None) -> Response:
        body = s3_error_body(self.error_code, self.message)
        return Response(body, status=FORBIDDEN, content_type="application/xml")
