"""The API proxy: request validation, and InvokeEndpoint answers mapped to HTTP statuses.

All of it runs against the emulator's sagemaker-runtime. Without a compute plane it answers with
results queued through moto's /moto-api/static/sagemaker/endpoint-results route (the happy path, a
non-JSON answer). A model error and a slow model need a real container: those tests attach a compute
plane (see conftest.py) whose stand-in model answers HTTP 500 to the input "boom", which the emulator
turns into SageMaker's HTTP 424 `ModelError`, and waits `answer_delay` seconds before each answer.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from deployer.lambdas import api_proxy
from harness.emulator import EmbeddedEmulator
from tests.deployer.conftest import LambdaContext, Plane, load_event, serve_standin, train_standin

ANSWER = {
    "predictions": [
        {"intent": "balance", "text": "balance"},
        {"intent": "restaurant_reservation", "text": "restaurant_reservation"},
    ]
}


@pytest.fixture
def handler_env(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ENDPOINT_NAME", "proxy-endpoint")
    api_proxy._runtime_client.cache_clear()
    yield
    api_proxy._runtime_client.cache_clear()


def queue_model_answers(emulator: EmbeddedEmulator, *bodies: str) -> None:
    results = [{"Body": body, "ContentType": "application/json"} for body in bodies]
    response = requests.post(
        f"{emulator.endpoint_url}/moto-api/static/sagemaker/endpoint-results",
        json={"results": results, "region": emulator.region},
        timeout=10,
    )
    response.raise_for_status()


def event_with(body: object, **changes: Any) -> dict[str, Any]:
    event = load_event("apigateway_proxy_post")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    event.update(changes)
    return event


def test_a_valid_request_gets_the_models_answer(emulator: EmbeddedEmulator, handler_env: None) -> None:
    queue_model_answers(emulator, json.dumps(ANSWER))
    response = api_proxy.handler(load_event("apigateway_proxy_post"), LambdaContext())
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == ANSWER


def test_a_base64_body_is_decoded(emulator: EmbeddedEmulator, handler_env: None) -> None:
    queue_model_answers(emulator, json.dumps(ANSWER))
    body = base64.b64encode(json.dumps({"inputs": "what is my balance"}).encode()).decode()
    response = api_proxy.handler(event_with(body, isBase64Encoded=True), LambdaContext())
    assert response["statusCode"] == 200


def test_a_model_answer_that_is_not_json_is_a_502(emulator: EmbeddedEmulator, handler_env: None) -> None:
    queue_model_answers(emulator, "<html>oops</html>")
    response = api_proxy.handler(event_with({"inputs": "a query that is new"}), LambdaContext())
    assert response["statusCode"] == 502
    assert "not JSON" in json.loads(response["body"])["error"]


@pytest.mark.parametrize(
    ("body", "changes", "status", "message"),
    [
        ("{not json", {}, 400, "not JSON"),
        ([1, 2], {}, 400, "must be a JSON object"),
        ({"inputs": ""}, {}, 400, "non-empty strings"),
        ({"inputs": []}, {}, 400, "non-empty string or a non-empty list"),
        ({"inputs": ["ok", 3]}, {}, 400, "non-empty strings"),
        ({"inputs": ["q"] * 65}, {}, 400, "the limit is 64"),
        ({"inputs": "x" * 1001}, {}, 400, "the limit is 1000"),
        ({"query": "hello"}, {}, 400, "unknown key"),
        ({"inputs": "hi", "parameters": [1]}, {}, 400, '"parameters" must be a JSON object'),
        ({"inputs": "hi"}, {"httpMethod": "GET"}, 405, "use POST"),
        ({"inputs": "hi"}, {"headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
        ("!!!", {"isBase64Encoded": True}, 400, "not valid base64"),
        ({"inputs": "x" * (6 * 1024 * 1024)}, {}, 413, "the limit is 6291456"),
    ],
)
def test_a_bad_request_is_a_clear_4xx_and_never_reaches_the_model(
    body: object, changes: dict[str, Any], status: int, message: str
) -> None:
    class Unreachable:
        def invoke_endpoint(self, **_: Any) -> None:
            raise AssertionError("a bad request must not reach the model")

    response = api_proxy.proxy(event_with(body, **changes), api_proxy.Settings("e"), Unreachable())
    assert response["statusCode"] == status
    assert message in json.loads(response["body"])["error"]


def test_a_model_error_is_a_502(
    emulator: EmbeddedEmulator, plane: Plane, handler_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_standin(emulator, plane.image, "proxy-broken", train_standin(emulator, plane.image, "proxy-ok"))
    monkeypatch.setenv("ENDPOINT_NAME", "proxy-broken")
    assert api_proxy.handler(event_with({"inputs": "hi"}), LambdaContext())["statusCode"] == 200
    response = api_proxy.handler(event_with({"inputs": "boom"}), LambdaContext())
    assert response["statusCode"] == 502
    body = json.loads(response["body"])
    assert body["error"] == "the model failed to answer"
    assert "Received server error (500)" in body["detail"] and "the model broke" in body["detail"]


def test_a_containers_client_error_stays_a_client_error(
    emulator: EmbeddedEmulator, plane: Plane, handler_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker Runtime API Reference, InvokeEndpoint, Errors: ModelError (424) carries the container's
    status and body in OriginalStatusCode and OriginalMessage; a 4xx of the container reaches the client
    as that 4xx with the container's message, not as 502."""
    serve_standin(emulator, plane.image, "proxy-rejects", train_standin(emulator, plane.image, "proxy-rej"))
    monkeypatch.setenv("ENDPOINT_NAME", "proxy-rejects")
    response = api_proxy.handler(event_with({"inputs": "reject"}), LambdaContext())
    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {"error": "inputs must be a string or a list"}


def test_the_query_limit_is_the_containers() -> None:
    """One limit end to end: a query the proxy admits is one the container accepts."""
    from container.byoc.invocations import MAX_QUERY_CHARS

    assert api_proxy.MAX_INPUT_CHARS == MAX_QUERY_CHARS


def test_a_model_that_does_not_answer_in_time_is_a_504(
    emulator: EmbeddedEmulator, plane: Plane, handler_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = train_standin(emulator, plane.image, "proxy-slow", answer_delay="2")
    serve_standin(emulator, plane.image, "proxy-slow", artifact)
    monkeypatch.setenv("ENDPOINT_NAME", "proxy-slow")
    monkeypatch.setenv("INVOKE_TIMEOUT_SECONDS", "0.3")
    started = time.monotonic()
    response = api_proxy.handler(event_with({"inputs": "hi"}), LambdaContext())
    assert response["statusCode"] == 504
    assert "within 0.3 s" in json.loads(response["body"])["error"]
    assert time.monotonic() - started < 1.5


def runtime_client(endpoint_url: str, timeout: float) -> Any:
    config = Config(read_timeout=timeout, connect_timeout=2, retries={"total_max_attempts": 1})
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config,
    )


def test_an_unreachable_endpoint_is_a_503() -> None:
    client = runtime_client("http://127.0.0.1:9", 1)  # the discard port: nothing listens
    response = api_proxy.proxy(load_event("apigateway_proxy_post"), api_proxy.Settings("e"), client)
    assert response["statusCode"] == 503


def test_settings_come_from_the_environment_only() -> None:
    assert api_proxy.Settings.from_env(
        {"ENDPOINT_NAME": "e", "INVOKE_TIMEOUT_SECONDS": "5"}
    ) == api_proxy.Settings("e", 5.0, 64)
    with pytest.raises(RuntimeError, match="ENDPOINT_NAME"):
        api_proxy.Settings.from_env({})
