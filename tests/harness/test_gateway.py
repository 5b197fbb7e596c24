"""The local API Gateway: an API deployed through CloudFormation, called over HTTP."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from harness.emulator import EmbeddedEmulator
from harness.gateway import ApiGateway, TokenBucket, match_route, proxy_answer
from tests.harness.roles import service_role
from tests.harness.test_seams_apigateway import deploy_api

PROXY = """
import json, time

def handler(event, context):
    item = (event.get("pathParameters") or {}).get("id")
    if item == "malformed":
        return {"status": 200, "payload": "not a proxy response"}
    if item == "error":
        raise ValueError("the proxy failed")
    if item == "sleep":
        time.sleep(3)
    return {
        "statusCode": 201 if event["httpMethod"] == "POST" else 200,
        "headers": {"X-Seen": event["requestContext"]["requestId"]},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": json.dumps(event),
    }
"""


@pytest.fixture(scope="module")
def outputs(emulator: EmbeddedEmulator) -> dict[str, str]:
    return deploy_api(emulator, "gateway-api", PROXY)


@pytest.fixture(scope="module")
def key(emulator: EmbeddedEmulator, outputs: dict[str, str]) -> str:
    return str(emulator.client("apigateway").get_api_key(apiKey=outputs["KeyId"], includeValue=True)["value"])


@pytest.fixture(scope="module")
def gateway(emulator: EmbeddedEmulator) -> Iterator[ApiGateway]:
    with ApiGateway(emulator.endpoint_url) as gateway:
        yield gateway


@pytest.fixture
def base(gateway: ApiGateway, outputs: dict[str, str]) -> str:
    return gateway.base_url(outputs["ApiId"], "v1")


def test_with_the_key_the_lambda_answers_with_a_proxy_event(
    base: str, key: str, outputs: dict[str, str]
) -> None:
    answer = requests.post(
        f"{base}/items?b=2&b=3&a=1", data='{"x": 1}', headers={"x-api-key": key}, timeout=30
    )
    assert answer.status_code == 201
    assert answer.headers["X-Multi"] == "a, b"
    event = answer.json()
    assert answer.headers["X-Seen"] == event["requestContext"]["requestId"]
    # One id per request, $context.requestId: "API Gateway returns this request ID in the x-amzn-RequestId
    # response header" (API Gateway developer guide, "Set up CloudWatch logging for REST APIs").
    assert answer.headers["x-amzn-RequestId"] == event["requestContext"]["requestId"]
    assert event["resource"] == "/items"
    assert event["path"] == "/items"
    assert event["httpMethod"] == "POST"
    assert event["body"] == '{"x": 1}'
    assert event["isBase64Encoded"] is False
    assert event["queryStringParameters"] == {"b": "3", "a": "1"}
    assert event["multiValueQueryStringParameters"] == {"b": ["2", "3"], "a": ["1"]}
    assert event["pathParameters"] is None
    assert event["stageVariables"] == {"colour": "blue"}
    assert event["headers"]["x-api-key"] == key
    context = event["requestContext"]
    assert (context["stage"], context["apiId"], context["path"]) == ("v1", outputs["ApiId"], "/v1/items")
    assert context["identity"]["apiKeyId"] == outputs["KeyId"]


def test_path_parameters(base: str, key: str) -> None:
    answer = requests.get(f"{base}/items/42", headers={"x-api-key": key}, timeout=30)
    assert answer.status_code == 200
    event = answer.json()
    assert event["resource"] == "/items/{id}"
    assert event["pathParameters"] == {"id": "42"}
    assert event["body"] is None


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "not-the-key-but-long-enough-0000"}])
def test_without_a_valid_key_403(base: str, headers: dict[str, str]) -> None:
    answer = requests.post(f"{base}/items", data="{}", headers=headers, timeout=30)
    assert answer.status_code == 403
    assert answer.json() == {"message": "Forbidden"}


def test_disabled_key_403(emulator: EmbeddedEmulator, base: str, key: str, outputs: dict[str, str]) -> None:
    client = emulator.client("apigateway")
    client.update_api_key(
        apiKey=outputs["KeyId"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
    )
    try:
        assert (
            requests.post(f"{base}/items", data="{}", headers={"x-api-key": key}, timeout=30).status_code
            == 403
        )
    finally:
        client.update_api_key(
            apiKey=outputs["KeyId"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "true"}]
        )


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("POST", "/v1/nowhere", 403, "Missing Authentication Token"),
        ("DELETE", "/v1/items", 403, "Missing Authentication Token"),
        ("POST", "/v9/items", 403, "Forbidden"),
    ],
)
def test_unknown_routes(
    gateway: ApiGateway, outputs: dict[str, str], key: str, method: str, path: str, status: int, message: str
) -> None:
    url = f"http://127.0.0.1:{gateway.port}/{outputs['ApiId']}{path}"
    answer = requests.request(method, url, headers={"x-api-key": key}, timeout=30)
    assert (answer.status_code, answer.json()) == (status, {"message": message})


def test_unknown_api_404(gateway: ApiGateway) -> None:
    answer = requests.get(f"http://127.0.0.1:{gateway.port}/noapi/v1/items", timeout=30)
    assert (answer.status_code, answer.json()) == (404, {"message": "Not Found"})


@pytest.mark.parametrize("item", ["malformed", "error"])
def test_bad_lambda_answers_are_502(base: str, key: str, item: str) -> None:
    answer = requests.get(f"{base}/items/{item}", headers={"x-api-key": key}, timeout=30)
    assert (answer.status_code, answer.json()) == (502, {"message": "Internal server error"})


def test_integration_timeout_504(emulator: EmbeddedEmulator, outputs: dict[str, str], key: str) -> None:
    with ApiGateway(emulator.endpoint_url, integration_timeout_s=1.0) as impatient:
        url = f"{impatient.base_url(outputs['ApiId'], 'v1')}/items/sleep"
        answer = requests.get(url, headers={"x-api-key": key}, timeout=30)
    assert (answer.status_code, answer.json()) == (504, {"message": "Endpoint request timed out"})


def test_the_process_state_is_kept_from_the_collector_while_a_gateway_runs(
    emulator: EmbeddedEmulator,
) -> None:
    # A full collection of the emulator's process paused the gateway for 150 ms (serve_load.py's
    # p99); what exists at start is frozen, and handed back to the collector when the gateway stops.
    with ApiGateway(emulator.endpoint_url):
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0


# The payload limits (API Gateway's 10 MB, Lambda's 6,291,456-byte event) are conformance tests:
# tests/conformance/test_api_limits.py.


def test_usage_plan_throttle_429(
    emulator: EmbeddedEmulator, base: str, key: str, outputs: dict[str, str]
) -> None:
    client = emulator.client("apigateway")

    def throttle(rate: str, burst: str) -> None:
        client.update_usage_plan(
            usagePlanId=outputs["PlanId"],
            patchOperations=[
                {"op": "replace", "path": "/throttle/rateLimit", "value": rate},
                {"op": "replace", "path": "/throttle/burstLimit", "value": burst},
            ],
        )

    # No refill: exactly the burst gets through, whatever the machine's speed.
    throttle("0", "2")
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        status = requests.get(f"{base}/items/1", headers={"x-api-key": key}, timeout=30).status_code
        with lock:
            statuses.append(status)

    try:
        callers = [threading.Thread(target=call) for _ in range(5)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        answer = requests.get(f"{base}/items/1", headers={"x-api-key": key}, timeout=30)
        assert (answer.status_code, answer.json()) == (429, {"message": "Too Many Requests"})
    finally:
        throttle("50", "100")
    assert sorted(statuses) == [200, 200, 429, 429, 429]


def test_stage_throttle_429(emulator: EmbeddedEmulator, base: str, key: str, outputs: dict[str, str]) -> None:
    client = emulator.client("apigateway")

    def stage_throttle(path: str, rate: str, burst: str) -> None:
        client.update_stage(
            restApiId=outputs["ApiId"],
            stageName="v1",
            patchOperations=[
                {"op": "replace", "path": f"{path}/throttling/rateLimit", "value": rate},
                {"op": "replace", "path": f"{path}/throttling/burstLimit", "value": burst},
            ],
        )

    # Only GET /items/{id} is limited (one request, no refill); POST /items keeps the stage default.
    stage_throttle("/~1items~1{id}/GET", "0", "1")
    try:
        first = requests.get(f"{base}/items/1", headers={"x-api-key": key}, timeout=30)
        second = requests.get(f"{base}/items/1", headers={"x-api-key": key}, timeout=30)
        other = requests.post(f"{base}/items", data="{}", headers={"x-api-key": key}, timeout=30)
    finally:
        stage_throttle("/~1items~1{id}/GET", "1000", "2000")
    assert (first.status_code, second.status_code, other.status_code) == (200, 429, 201)
    assert second.json() == {"message": "Too Many Requests"}


def test_urls(gateway: ApiGateway, outputs: dict[str, str]) -> None:
    api = outputs["ApiId"]
    assert ("seam-api", "v1", gateway.base_url(api, "v1")) in gateway.urls()
    aws_url = f"https://{api}.execute-api.us-east-1.amazonaws.com/v1/items"
    assert gateway.local_url(aws_url) == f"http://127.0.0.1:{gateway.port}/{api}/v1/items"
    with pytest.raises(ValueError, match="not an API Gateway invoke URL"):
        gateway.local_url("https://example.com/v1")


# -- pure parts -----------------------------------------------------------------------------------------
def test_token_bucket() -> None:
    bucket = TokenBucket(rate=0.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ValueError):
        TokenBucket(rate=-1, burst=1)


class FakeResource:
    """A stand-in for moto's Resource, with only what route matching reads."""

    def __init__(self, path: str, methods: list[str]) -> None:
        self.id = path
        self._path = path
        self.resource_methods = {name: f"{name} {path}" for name in methods}

    def get_path(self) -> str:
        return self._path


def test_route_matching_prefers_literals() -> None:
    resources: list[Any] = [
        FakeResource("/", ["GET"]),
        FakeResource("/items/{id}", ["GET"]),
        FakeResource("/items/special", ["GET"]),
        FakeResource("/files/{proxy+}", ["ANY"]),
    ]
    special = match_route(resources, "/items/special", "GET")
    assert special is not None and special.resource_path == "/items/special"
    item = match_route(resources, "/items/7", "GET")
    assert item is not None and item.path_parameters == {"id": "7"}
    greedy = match_route(resources, "/files/a/b.txt", "PUT")
    assert greedy is not None and greedy.path_parameters == {"proxy": "a/b.txt"}
    assert match_route(resources, "/files", "GET") is None
    assert match_route(resources, "/items/7", "POST") is None
    root = match_route(resources, "/", "GET")
    assert root is not None and root.resource_path == "/"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[1]",
        b'{"statusCode": "abc"}',
        b'{"statusCode": 200, "body": {"a": 1}}',
        b'{"statusCode": 200, "extra": 1}',
    ],
)
def test_malformed_proxy_answers(payload: bytes) -> None:
    assert proxy_answer(payload).status == 502


def test_base64_proxy_answer() -> None:
    answer = proxy_answer(b'{"statusCode": 200, "body": "AAEC", "isBase64Encoded": true}')
    assert (answer.status, answer.body) == (200, b"\x00\x01\x02")


# -- the deployer's own API definition ------------------------------------------------------------------
def test_the_deployers_api_template(emulator: EmbeddedEmulator, gateway: ApiGateway, repo_root: Path) -> None:
    """deployer/templates/api.yaml and deployer/lambdas/api_proxy.py, deployed unchanged, over HTTP."""
    template = repo_root / "deployer" / "templates" / "api.yaml"
    if not template.is_file() or not (repo_root / "deployer" / "lambdas" / "api_proxy.py").is_file():
        pytest.skip("the deployer's API template or proxy is not in the tree yet")
    from deployer import package

    proxy = package.build("api_proxy")
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="deployer-assets")
    s3.put_object(Bucket="deployer-assets", Key=proxy.key, Body=proxy.body)
    role = service_role(emulator, "deployer-proxy-role")
    cloudformation = emulator.client("cloudformation")
    cloudformation.create_stack(
        StackName="deployer-api",
        TemplateBody=template.read_text(),
        Parameters=[
            {"ParameterKey": "EndpointName", "ParameterValue": "no-such-endpoint"},
            {"ParameterKey": "CodeBucket", "ParameterValue": "deployer-assets"},
            {"ParameterKey": "ProxyCodeKey", "ParameterValue": proxy.key},
            {"ParameterKey": "ProxyRoleArn", "ParameterValue": role["Role"]["Arn"]},
        ],
    )
    stack = cloudformation.describe_stacks(StackName="deployer-api")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    # The template's stage throttling (Deployment StageDescription) and usage plan throttle are in place.
    apigateway = emulator.client("apigateway")
    stage = apigateway.get_stage(restApiId=outputs["ApiId"], stageName=outputs["StageName"])
    assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 10.0
    assert stage["methodSettings"]["*/*"]["throttlingBurstLimit"] == 20
    plans = apigateway.get_usage_plans(keyId=outputs["ApiKeyId"])["items"]
    assert [plan["throttle"] for plan in plans] == [{"rateLimit": 10.0, "burstLimit": 20}]
    key = emulator.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    url = gateway.local_url(outputs["ApiUrl"])

    assert requests.post(url, json={"inputs": "hello"}, timeout=30).status_code == 403
    bad = requests.post(url, data="{not json", headers={"x-api-key": key}, timeout=30)
    assert bad.status_code == 400
    assert "not JSON" in bad.json()["error"]
    unknown = requests.post(url, json={"inputs": "hi", "extra": 1}, headers={"x-api-key": key}, timeout=30)
    assert unknown.status_code == 400
    # The proxy reaches SageMaker's runtime API in the emulator; no endpoint of that name exists there.
    good = requests.post(url, json={"inputs": "what is my balance"}, headers={"x-api-key": key}, timeout=30)
    # moto's stock runtime answers a canned non-JSON body (the proxy's 502), the harness's SageMaker seam
    # "no such endpoint" (503): either way the answer is the proxy's own JSON, not the gateway's.
    assert good.status_code in (200, 502, 503), good.text
    assert good.status_code == 200 or set(good.json()) >= {"error"}


def test_the_deployers_api_updated_through_change_sets(
    emulator: EmbeddedEmulator, gateway: ApiGateway
) -> None:
    """The deployer's own client (change sets) creates, then updates the API stack for a new endpoint:
    the key, usage plan and URL stay, the proxy gets the new endpoint name, the API keeps answering."""
    try:
        from deployer import deploy, package
        from deployer.client import AwsClient
    except ImportError:
        pytest.skip("the deployer's client is not in the tree yet")
    proxy = package.build("api_proxy")
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="change-set-assets")
    s3.put_object(Bucket="change-set-assets", Key=proxy.key, Body=proxy.body)
    role = service_role(emulator, "change-set-proxy-role")
    client = AwsClient(emulator.session(), endpoint_url=emulator.endpoint_url, poll_seconds=0.1)
    body = deploy.render_all().api_body
    parameters = {
        "ProjectName": "changeset",
        "EndpointName": "endpoint-one",
        "CodeBucket": "change-set-assets",
        "ProxyCodeKey": proxy.key,
        "ProxyRoleArn": role["Role"]["Arn"],
    }
    created = client.apply("changeset-api", body, parameters)
    apigateway = emulator.client("apigateway")
    key = apigateway.get_api_key(apiKey=created.outputs["ApiKeyId"], includeValue=True)["value"]
    url = gateway.local_url(created.outputs["ApiUrl"])
    assert requests.post(url, data="{}", headers={"x-api-key": key}, timeout=30).status_code == 400

    updated = client.apply("changeset-api", body, {**parameters, "EndpointName": "endpoint-two"})
    assert updated.outputs == created.outputs
    function = emulator.client("lambda").get_function_configuration(
        FunctionName=created.outputs["ProxyFunctionName"]
    )
    assert function["Environment"]["Variables"] == {"ENDPOINT_NAME": "endpoint-two"}
    assert requests.post(url, data="{}", headers={"x-api-key": key}, timeout=30).status_code == 400
    assert requests.post(url, data="{}", timeout=30).status_code == 403
