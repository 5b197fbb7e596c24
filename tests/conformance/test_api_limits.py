"""Request size limits between a client, API Gateway (REST API, Lambda proxy) and the Lambda function."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from harness.gateway import MAX_SYNC_INVOKE_BYTES, ApiGateway
from tests.harness.planes import Harness
from tests.harness.test_seams_apigateway import deploy_api

ECHO = """
import json

def handler(event, context):
    return {"statusCode": 200, "body": json.dumps({"body_bytes": len(event.get("body") or "")})}
"""


@pytest.fixture(scope="module")
def api(conformance_harness: Harness) -> Iterator[tuple[str, str]]:
    emulator = conformance_harness.emulator
    outputs = deploy_api(emulator, "limits-api", ECHO)
    key = emulator.client("apigateway").get_api_key(apiKey=outputs["KeyId"], includeValue=True)["value"]
    with ApiGateway(emulator.endpoint_url) as gateway:
        yield gateway.base_url(outputs["ApiId"], "v1"), str(key)


def _post(api: tuple[str, str], size: int) -> requests.Response:
    base, key = api
    return requests.post(f"{base}/items", data=b"x" * size, headers={"x-api-key": key}, timeout=120)


def test_a_body_over_10_mb_is_refused_by_the_gateway(api: tuple[str, str]) -> None:
    """API Gateway Developer Guide, "Amazon API Gateway quotas", REST API: payload size 10 MB (not
    adjustable); above it the client gets 413 {"message": "Request Too Long"}."""
    answer = _post(api, 10 * 1024 * 1024 + 1)
    assert (answer.status_code, answer.json()) == (413, {"message": "Request Too Long"})


@pytest.mark.parametrize("size", [7 * 1024 * 1024, 6 * 1024 * 1024 - 1024])
def test_a_proxy_event_over_lambdas_sync_limit_never_reaches_the_function(
    api: tuple[str, str], size: int
) -> None:
    """Lambda Developer Guide, "Lambda quotas": 6 MB request payload for a synchronous invocation, the
    whole invocation payload, i.e. the entire proxy event (measured as 6,291,456 bytes: Zac Charles,
    "Deep Dive: Lambda's Request Payload Size Limit", parts 1 and 2). A 7 MB body, within API
    Gateway's 10 MB, and a body just under 6 MiB (headers and request context make the event larger)
    are refused before the function runs; API Gateway answers 413."""
    answer = _post(api, size)
    assert (answer.status_code, answer.json()) == (413, {"message": "Request Too Long"})


def test_a_body_well_under_the_limit_reaches_the_function(api: tuple[str, str]) -> None:
    """Same sources: an event within 6,291,456 bytes is invoked."""
    size = MAX_SYNC_INVOKE_BYTES // 2
    answer = _post(api, size)
    assert answer.status_code == 200
    assert json.loads(answer.text) == {"body_bytes": size}
