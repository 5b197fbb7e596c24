"""The API's Lambda proxy: validate a prediction request and forward it to the SageMaker endpoint.

Request (API Gateway proxy event, format 1.0): `POST` with a JSON body
`{"inputs": "a query" | ["q1", ...], "parameters": {...}}` (parameters optional, passed through to the
container, which checks their bounds). Answers, always JSON with an `error` message when not 200:
- 200: the container's JSON answer, unchanged;
- 400: not JSON, not an object, unknown keys, `inputs` missing/empty/too many/too long;
- 405: not POST; 413: body over 6 MB (SageMaker's limit); 415: a Content-Type other than JSON;
- 429: the endpoint throttled; 502: the model failed (ModelError with a 5xx OriginalStatusCode) or
  answered something that is not JSON; 503: the endpoint does not exist or is not in service; 504: no
  answer within INVOKE_TIMEOUT_SECONDS;
- the container's own 4xx (SageMaker wraps it in a 424 ModelError with OriginalStatusCode and
  OriginalMessage) keeps its status and the container's error message: a client error stays one.
Limits that agree end to end: a query has at most MAX_INPUT_CHARS = 1,000 characters, the container's
own limit (container/byoc/invocations.py MAX_QUERY_CHARS; a test holds them equal). A body reaches this
function only inside a proxy event of at most 6,291,456 bytes (Lambda's synchronous invoke limit; API
Gateway answers 413 above it), so MAX_BODY_BYTES is a guard, never reached through the API.

Environment (read in `Settings.from_env` only): ENDPOINT_NAME, and optionally INVOKE_TIMEOUT_SECONDS
(default 25: API Gateway gives up at 29 s) and MAX_INPUTS (default 64).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, ConnectTimeoutError, ReadTimeoutError

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_INPUT_CHARS = 1000
ALLOWED_KEYS = frozenset({"inputs", "parameters"})


@dataclass(frozen=True)
class Settings:
    endpoint_name: str
    invoke_timeout_seconds: float = 25.0
    max_inputs: int = 64

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        endpoint = environ.get("ENDPOINT_NAME")
        if not endpoint:
            raise RuntimeError("environment variable ENDPOINT_NAME is not set")
        try:
            timeout = float(environ.get("INVOKE_TIMEOUT_SECONDS", "25"))
            max_inputs = int(environ.get("MAX_INPUTS", "64"))
        except ValueError as error:
            raise RuntimeError(f"INVOKE_TIMEOUT_SECONDS and MAX_INPUTS must be numbers: {error}") from error
        return cls(endpoint, timeout, max_inputs)


class BadRequest(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    return proxy(event, settings, _runtime_client(settings.invoke_timeout_seconds))


@cache
def _runtime_client(timeout: float) -> Any:
    # One client per warm container; no retries: a retried 25 s call would outlive API Gateway's 29 s.
    config = Config(read_timeout=timeout, connect_timeout=5, retries={"total_max_attempts": 1})
    return boto3.client("sagemaker-runtime", config=config)


def proxy(event: Mapping[str, Any], settings: Settings, runtime: Any) -> dict[str, Any]:
    try:
        request = parse_request(event, settings.max_inputs)
    except BadRequest as error:
        return response(error.status, {"error": str(error)})
    try:
        answer = runtime.invoke_endpoint(
            EndpointName=settings.endpoint_name,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps(request).encode(),
        )
    except (ReadTimeoutError, ConnectTimeoutError):
        log.warning(json.dumps({"timeout": settings.endpoint_name}))
        limit = f"{settings.invoke_timeout_seconds:g}"
        return response(504, {"error": f"the model did not answer within {limit} s"})
    except ConnectionError as error:
        log.warning(json.dumps({"unreachable": str(error)}))
        return response(503, {"error": "the model endpoint cannot be reached"})
    except ClientError as error:
        return _client_error(error)
    body = answer["Body"].read()
    try:
        return response(200, json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning(json.dumps({"bad_model_answer": body[:200].decode(errors="replace")}))
        return response(502, {"error": "the model answered something that is not JSON"})


def parse_request(event: Mapping[str, Any], max_inputs: int) -> dict[str, Any]:
    method = event.get("httpMethod")
    if method != "POST":
        raise BadRequest(405, f"use POST, not {method}")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BadRequest(415, f"Content-Type must be application/json, not {content_type}")
    raw = event.get("body") or ""
    try:
        data = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else raw.encode()
    except (binascii.Error, ValueError) as error:
        raise BadRequest(400, f"the body is not valid base64: {error}") from error
    if len(data) > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is {len(data)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        request = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(400, f"the body is not JSON: {error}") from error
    if not isinstance(request, dict):
        raise BadRequest(400, 'the body must be a JSON object like {"inputs": "a query"}')
    unknown = sorted(set(request) - ALLOWED_KEYS)
    if unknown:
        raise BadRequest(400, f"unknown key(s) {unknown}; allowed: {sorted(ALLOWED_KEYS)}")
    inputs = request.get("inputs")
    queries = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(queries, list) or not queries:
        raise BadRequest(400, '"inputs" must be a non-empty string or a non-empty list of strings')
    if len(queries) > max_inputs:
        raise BadRequest(400, f'"inputs" has {len(queries)} queries; the limit is {max_inputs}')
    for query in queries:
        if not isinstance(query, str) or not query.strip():
            raise BadRequest(400, '"inputs" must hold non-empty strings only')
        if len(query) > MAX_INPUT_CHARS:
            raise BadRequest(400, f"a query has {len(query)} characters; the limit is {MAX_INPUT_CHARS}")
    parameters = request.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest(400, '"parameters" must be a JSON object')
    return {"inputs": inputs, "parameters": parameters} if parameters else {"inputs": inputs}


def response(status: int, body: object) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def _client_error(error: ClientError) -> dict[str, Any]:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "")
    log.warning(json.dumps({"invoke_error": code, "message": message}))
    if code == "ModelError":
        original = error.response.get("OriginalStatusCode")
        if isinstance(original, int) and 400 <= original < 500:
            return response(original, {"error": _container_error(error.response.get("OriginalMessage"))})
        return response(502, {"error": "the model failed to answer", "detail": message})
    if code in {"ThrottlingException", "TooManyRequestsException"}:
        return response(429, {"error": "too many requests to the model; retry later"})
    if code in {"ValidationError", "ServiceUnavailable", "ModelNotReadyException"}:
        return response(503, {"error": "the model endpoint is not available", "detail": message})
    return response(502, {"error": f"the model call failed ({code or 'unknown error'})"})


def _container_error(original_message: object) -> str:
    """The container's `error` text from ModelError's OriginalMessage (its JSON body), else the body."""
    text = str(original_message or "the model rejected the request")
    try:
        document = json.loads(text)
    except ValueError:
        return text[:1000]
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return str(document["error"])
    return text[:1000]
