"""The local API Gateway: REST APIs stored in the emulator, served over HTTP on a loopback port.

moto stores API Gateway's resources, methods, integrations, keys and usage plans but serves none of
them (AWS_PROXY is not implemented). `ApiGateway` serves HTTP with uvicorn (the model server's own
stack, here on uvloop and httptools, in a background thread: keep-alive, TCP_NODELAY, no thread per
connection); its core `route` reads that state from moto's backend on every request (so a stack
update is seen at once) and does what API Gateway's edge does for a REST API with Lambda proxy
integrations, and `call` invokes the integration's function:

URL scheme (the harness's choice): `http://127.0.0.1:PORT/{api_id}/{stage}/{path}` stands for the
invoke URL `https://{api_id}.execute-api.{region}.amazonaws.com/{stage}/{path}`; `local_url()` maps
one to the other and `urls()` lists every API and stage.

Per request, in AWS's order and with AWS's answers:
- unknown API: 404 `{"message":"Not Found"}`; unknown stage: 403 `{"message":"Forbidden"}`;
  no resource or method for the path: 403 `{"message":"Missing Authentication Token"}`;
- body over 10 MB: 413 `{"message":"Request Too Long"}` (API Gateway quotas: 10 MB payload);
- a method with apiKeyRequired: the `x-api-key` header must be an enabled key bound (UsagePlanKey)
  to a usage plan that lists this API and stage, else 403 `{"message":"Forbidden"}`;
- the usage plan's throttle (a token bucket per plan and key: burstLimit tokens, refilled at rateLimit
  per second; a per-method throttle in the plan's apiStages wins), then the stage's method throttling
  (one bucket for all callers, from the stage's method settings: the method's own, else `*/*`):
  429 `{"message":"Too Many Requests"}`;
- a proxy event over 6,291,456 bytes, the whole event and not the body alone (Lambda quotas: 6 MB
  for a synchronous invoke, measured as 6,291,456 bytes), never reaches the function: 413
  `{"message":"Request Too Long"}`; so a body just under 6 MiB is refused too;
- the AWS_PROXY integration's Lambda gets the proxy event (payload format 1.0) through moto's Lambda
  backend in this process (what the Invoke API reaches, without its HTTP round trip), so it runs in the
  harness's Lambda runtime; the integration timeout (29 s) gives
  504 `{"message": "Endpoint request timed out"}`; a function error or a response over Lambda's 6 MB
  limit gives 502;
- the Lambda's proxy response (statusCode, headers, multiValueHeaders, body, isBase64Encoded) is the
  HTTP answer; a function error or a malformed response is 502 `{"message": "Internal server error"}`.
Not modelled: authorizers and IAM auth (500 naming the type), usage plan quotas, non-proxy integrations,
binary media types (a non-UTF-8 body reaches the Lambda base64-encoded). Header names reach the Lambda
lower-cased (as HTTP/2 clients send them to API Gateway; the transport does not keep the sent case).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import uvicorn

from harness.identity import ACCOUNT_ID, REGION

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
MAX_SYNC_INVOKE_BYTES = 6_291_456
INTEGRATION_TIMEOUT_S = 29.0
# Requests routed and invoked at once (each waits on its Lambda in a pool thread, which a timed-out
# invocation holds until its function returns, as on AWS it holds its concurrency); more wait for a
# thread, and that wait counts toward their integration timeout.
CONCURRENT_REQUESTS = 64
_LAMBDA_URI = re.compile(r"^arn:[^:]+:apigateway:[^:]+:lambda:path/[^/]+/functions/(?P<arn>.+)/invocations$")
_FUNCTION_ARN = re.compile(r"^arn:[^:]+:lambda:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):function:.+$")
_INVOKE_URL = re.compile(
    r"^https://(?P<api>[a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com/(?P<rest>.*)$"
)


@dataclass(frozen=True)
class GatewayAnswer:
    """An HTTP answer: status, headers, body bytes."""

    status: int
    headers: dict[str, list[str]]
    body: bytes


@dataclass(frozen=True)
class Integration:
    """What a routed request calls: the AWS_PROXY integration's function and the proxy event for it."""

    function_arn: str
    payload: bytes


def _message(status: int, message: str, error_type: str | None = None) -> GatewayAnswer:
    headers = {"Content-Type": ["application/json"]}
    if error_type:
        headers["x-amzn-ErrorType"] = [error_type]
    return GatewayAnswer(status, headers, json.dumps({"message": message}).encode("utf-8"))


NOT_FOUND = _message(404, "Not Found", "NotFoundException")
FORBIDDEN = _message(403, "Forbidden", "ForbiddenException")
MISSING_TOKEN = _message(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
TOO_MANY = _message(429, "Too Many Requests", "TooManyRequestsException")
TOO_LONG = _message(413, "Request Too Long")
BAD_GATEWAY = _message(502, "Internal server error")
TIMED_OUT = _message(504, "Endpoint request timed out")


class TokenBucket:
    """API Gateway's throttle: `burst` tokens, refilled at `rate` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate < 0 or burst < 0:
            raise ValueError(f"a throttle needs a non-negative rate and burst, not {rate}/{burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass(frozen=True)
class Route:
    """The matched resource and method of a request."""

    resource: Any
    method: Any
    resource_path: str
    path_parameters: dict[str, str]


def _segments(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def match_route(resources: list[Any], path: str, http_method: str) -> Route | None:
    """Finds the resource for `path` (literal beats `{param}` beats `{proxy+}`) and its method."""
    wanted = _segments(path)
    best: tuple[tuple[int, ...], Any, dict[str, str]] | None = None
    for resource in resources:
        pattern = _segments(resource.get_path())
        params: dict[str, str] = {}
        rank: list[int] = []
        matched = True
        for index, part in enumerate(pattern):
            if part.startswith("{") and part.endswith("+}"):
                rest = wanted[index:]
                if not rest or index != len(pattern) - 1:
                    matched = False
                    break
                params[part[1:-2]] = "/".join(rest)
                rank.append(0)
                break
            if index >= len(wanted):
                matched = False
                break
            if part.startswith("{") and part.endswith("}"):
                params[part[1:-1]] = wanted[index]
                rank.append(1)
            elif part == wanted[index]:
                rank.append(2)
            else:
                matched = False
                break
        else:
            matched = matched and len(pattern) == len(wanted)
        if matched and (best is None or tuple(rank) > best[0]):
            best = (tuple(rank), resource, params)
    if best is None:
        return None
    _, resource, params = best
    methods = dict(resource.resource_methods)
    method = methods.get(http_method) or methods.get("ANY")
    if method is None:
        return None
    return Route(resource, method, resource.get_path(), params)


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class ApiGateway:
    """Serves the emulator's REST APIs over HTTP. Use as a context manager, after the emulator started."""

    def __init__(
        self,
        emulator_endpoint: str,
        account_id: str = ACCOUNT_ID,
        region: str = REGION,
        host: str = "127.0.0.1",
        port: int = 0,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self._host = host
        self._port = port
        self.integration_timeout_s = integration_timeout_s
        # The emulator whose backends this gateway reads and whose functions it invokes, in this process.
        self.emulator_endpoint = emulator_endpoint
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._buckets: dict[tuple[str, ...], TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        self._froze = False

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the gateway is not started")
        return int(self._socket.getsockname()[1])

    def start(self) -> ApiGateway:
        if self._server is not None:
            raise RuntimeError("the gateway already runs")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms stall on keep-alive
        sock.bind((self._host, self._port))
        sock.listen(2048)
        self._executor = ThreadPoolExecutor(CONCURRENT_REQUESTS, thread_name_prefix="api-gateway")
        config = uvicorn.Config(
            _GatewayApp(self, self._executor),
            http="httptools",
            loop="uvloop",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            backlog=2048,
        )
        server = uvicorn.Server(config)
        self._server, self._socket = server, sock
        # uvloop's event loop and httptools' parser (C code, uvicorn's "standard" extras) rather than
        # asyncio's loop and h11: the gateway's CPU per request falls by a fifth (serve_load.py).
        loop_factory = config.get_loop_factory()

        def serve() -> None:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=serve, name="api-gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            self.stop()
            raise RuntimeError("the gateway did not start")
        # What this process holds by now (moto's backends and models, botocore's service models, the
        # stacks deployed so far) lives as long as the gateway: kept out of the cyclic collector, a full
        # collection scans only what requests allocate. Without this one paused every thread of the
        # process (the gateway's included) for 150 ms about every 10 s at 16 clients (p99 72 -> 30 ms,
        # serve_load.py). No collection first (it took 120 ms of each start): garbage frozen here
        # goes back to the collector with the rest when the gateway stops.
        gc.freeze()
        self._froze = True
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._froze:
            gc.unfreeze()  # back to the collector: a later stack in this process may drop it
            self._froze = False

    def __enter__(self) -> ApiGateway:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- URLs ----------------------------------------------------------------------------------------
    def base_url(self, api_id: str, stage: str) -> str:
        return f"http://{self._host}:{self.port}/{api_id}/{stage}"

    def local_url(self, invoke_url: str) -> str:
        """Maps an AWS invoke URL (`https://{api}.execute-api.{region}.amazonaws.com/{stage}/...`)."""
        match = _INVOKE_URL.match(invoke_url)
        if match is None:
            raise ValueError(f"not an API Gateway invoke URL: {invoke_url!r}")
        return f"http://{self._host}:{self.port}/{match['api']}/{match['rest']}"

    def urls(self) -> list[tuple[str, str, str]]:
        """(API name, stage, local base URL) for every API and stage in the emulator."""
        found = []
        for api in list(self._backend().apis.values()):
            for stage in list(api.stages):
                found.append((str(api.name), str(stage), self.base_url(api.id, stage)))
        return found

    # -- the request path ----------------------------------------------------------------------------
    def _backend(self) -> Any:
        from moto.apigateway.models import apigateway_backends

        return apigateway_backends[self.account_id][self.region]

    def route(
        self, method: str, raw_path: str, headers: Mapping[str, list[str]], body: bytes, request_id: str
    ) -> GatewayAnswer | Integration:
        """What the edge makes of one request: its answer (an error), or the integration to call.

        Reads the API's state from moto's backend, so a stack update is seen by the next request. It
        does no I/O; the HTTP server runs it, with `call`, in a pool thread (a 10 MB body takes a
        while to encode into the event); tests may call it directly.
        """
        url = urlsplit(raw_path)
        parts = url.path.split("/", 3)
        if len(parts) < 3 or not parts[1]:
            return NOT_FOUND
        api_id, stage_name = parts[1], parts[2]
        path = "/" + (parts[3] if len(parts) > 3 else "")
        backend = self._backend()
        api = backend.apis.get(api_id)
        if api is None:
            return NOT_FOUND
        stage = api.stages.get(stage_name)
        if stage is None:
            return FORBIDDEN
        if len(body) > MAX_PAYLOAD_BYTES:
            return TOO_LONG
        route = match_route(list(api.resources.values()), path, method)
        if route is None:
            return MISSING_TOKEN
        authorization = str(route.method.authorization_type or "NONE")
        if authorization != "NONE":
            return _message(500, f"the harness gateway does not model authorizationType {authorization}")
        lowered = {name.lower(): values for name, values in headers.items()}
        key = None
        if _bool(route.method.api_key_required):
            key_value = (lowered.get("x-api-key") or [""])[-1]
            key, plan = self._authorise(backend, api_id, stage_name, key_value)
            if key is None or plan is None:
                return FORBIDDEN
            if not self._plan_allows(plan, api_id, stage_name, route.resource_path, method, key.id):
                return TOO_MANY
        if not self._stage_allows(api_id, stage_name, stage, route.resource_path, method):
            return TOO_MANY
        integration = route.method.method_integration
        if integration is None or str(integration.integration_type) != "AWS_PROXY":
            kind = None if integration is None else integration.integration_type
            return _message(500, f"the harness gateway serves AWS_PROXY integrations only, not {kind}")
        uri = self._stage_variables(str(integration.uri), stage.variables or {})
        target = _LAMBDA_URI.match(uri)
        if target is None:
            return _message(500, f"not a Lambda integration URI: {uri}")
        event = self._proxy_event(
            api_id, stage_name, stage, route, method, path, url.query, headers, body, key, request_id
        )
        payload = json.dumps(event).encode("utf-8")
        if len(payload) > MAX_SYNC_INVOKE_BYTES:
            return TOO_LONG
        return Integration(target["arn"], payload)

    def _authorise(self, backend: Any, api_id: str, stage: str, value: str) -> tuple[Any, Any]:
        """The enabled key with this value bound to a usage plan for this API stage, and that plan."""
        if not value:
            return None, None
        keys = [key for key in list(backend.keys.values()) if key.value == value and _bool(key.enabled)]
        if not keys:
            return None, None
        key = keys[0]
        for plan in list(backend.usage_plans.values()):
            bound = dict(backend.usage_plan_keys.get(plan.id, {}))
            stages = [entry for entry in list(plan.api_stages) if entry.get("apiId") == api_id]
            if key.id in bound and any(entry.get("stage") == stage for entry in stages):
                return key, plan
        return None, None

    def _plan_allows(
        self, plan: Any, api_id: str, stage: str, resource: str, method: str, key_id: str
    ) -> bool:
        """The usage plan's throttle, per key (a per-method throttle in the plan's apiStages wins)."""
        throttle = dict(plan.throttle or {})
        for entry in list(plan.api_stages):
            if entry.get("apiId") == api_id and entry.get("stage") == stage:
                per_method = (entry.get("throttle") or {}).get(f"{resource}/{method}")
                if per_method:
                    throttle = dict(per_method)
        if "rateLimit" not in throttle and "burstLimit" not in throttle:
            return True
        rate = float(throttle.get("rateLimit", 0.0))
        burst = int(throttle.get("burstLimit", max(1, int(rate))))
        return self._take(("plan", str(plan.id), key_id, f"{resource}/{method}"), rate, burst)

    def _stage_allows(self, api_id: str, stage_name: str, stage: Any, resource: str, method: str) -> bool:
        """The stage's method throttling (all callers together): the method's own setting, else `*/*`."""
        settings = dict(stage.method_settings or {})
        chosen = settings.get(f"{resource.replace('/', '~1')}/{method}") or settings.get("*/*")
        if not chosen or "throttlingRateLimit" not in chosen:
            return True
        rate = float(chosen["throttlingRateLimit"])
        burst = int(chosen.get("throttlingBurstLimit", max(1, int(rate))))
        return self._take(("stage", api_id, stage_name, f"{resource}/{method}"), rate, burst)

    def _take(self, slot: tuple[str, ...], rate: float, burst: int) -> bool:
        with self._buckets_lock:
            bucket = self._buckets.get(slot)
            if bucket is None or bucket.rate != rate or bucket.burst != burst:
                bucket = TokenBucket(rate, burst)
                self._buckets[slot] = bucket
        return bucket.take()

    @staticmethod
    def _stage_variables(uri: str, variables: Mapping[str, str]) -> str:
        return re.sub(r"\$\{stageVariables\.([A-Za-z0-9_]+)\}", lambda m: str(variables.get(m[1], "")), uri)

    def _proxy_event(
        self,
        api_id: str,
        stage_name: str,
        stage: Any,
        route: Route,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, list[str]],
        body: bytes,
        key: Any,
        request_id: str,
    ) -> dict[str, Any]:
        pairs = parse_qsl(query, keep_blank_values=True)
        multi_query: dict[str, list[str]] = {}
        for name, value in pairs:
            multi_query.setdefault(name, []).append(value)
        try:
            text: str | None = body.decode("utf-8") if body else None
            encoded = False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
        now = time.time()
        domain = f"{api_id}.execute-api.{self.region}.amazonaws.com"
        single_headers = {name: values[-1] for name, values in headers.items()}
        return {
            "resource": route.resource_path,
            "path": path,
            "httpMethod": method,
            "headers": single_headers or None,
            "multiValueHeaders": {name: list(values) for name, values in headers.items()} or None,
            "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": route.path_parameters or None,
            "stageVariables": dict(stage.variables or {}) or None,
            "requestContext": {
                "resourceId": route.resource.id,
                "resourcePath": route.resource_path,
                "httpMethod": method,
                "extendedRequestId": request_id,
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "path": f"/{stage_name}{path}",
                "accountId": self.account_id,
                "protocol": "HTTP/1.1",
                "stage": stage_name,
                "domainPrefix": api_id,
                "requestTimeEpoch": int(now * 1000),
                "requestId": request_id,
                "identity": {
                    "sourceIp": "127.0.0.1",
                    "userAgent": single_headers.get("User-Agent") or single_headers.get("user-agent"),
                    "apiKey": None if key is None else key.value,
                    "apiKeyId": None if key is None else key.id,
                },
                "domainName": domain,
                "apiId": api_id,
            },
            "body": text,
            "isBase64Encoded": encoded,
        }

    def answer(
        self, method: str, raw_path: str, headers: Mapping[str, list[str]], body: bytes, request_id: str
    ) -> GatewayAnswer:
        """Routes one request and, when it reaches an integration, calls it (blocks; see `call`)."""
        outcome = self.route(method, raw_path, headers, body, request_id)
        return self.call(outcome) if isinstance(outcome, Integration) else outcome

    def call(self, integration: Integration) -> GatewayAnswer:
        """Invokes the integration's function (RequestResponse) and maps its answer; blocks until the
        function returns (the caller keeps the integration timeout).

        API Gateway calls Lambda's Invoke inside AWS; here the call goes to moto's Lambda backend in
        this process (the same `LambdaFunction.invoke` that the Invoke API reaches, so the harness's
        Lambda runtime runs it), not through the emulator's HTTP endpoint: that round trip (a boto3
        request, werkzeug, Flask and moto's dispatch) cost 5-10 ms of every API call.
        """
        from moto.awslambda.models import lambda_backends

        function_arn = integration.function_arn
        match = _FUNCTION_ARN.match(function_arn)
        if match is None:
            logger.error("the integration names no function ARN: %s", function_arn)
            return BAD_GATEWAY
        response_headers: dict[str, str] = {}
        try:
            backend = lambda_backends[match["account"]][match["region"]]
            result = backend.invoke(function_arn, None, integration.payload, {}, response_headers)
        except Exception:
            logger.exception("the integration's Invoke failed for %s", function_arn)
            return BAD_GATEWAY
        answer = result.encode("utf-8") if isinstance(result, str) else bytes(result or b"")
        if response_headers.get("x-amz-function-error"):
            logger.info("lambda %s failed: %s", function_arn, answer[:500])
            return BAD_GATEWAY
        if len(answer) > MAX_SYNC_INVOKE_BYTES:
            # Lambda refuses a synchronous response over 6 MB (Function.ResponseSizeTooLarge).
            logger.info("lambda %s answered %d bytes, over Lambda's limit", function_arn, len(answer))
            return BAD_GATEWAY
        return proxy_answer(answer)


def proxy_answer(payload: bytes) -> GatewayAnswer:
    """The HTTP answer for a Lambda proxy response, or 502 when it is malformed (as AWS)."""
    try:
        document = json.loads(payload)
    except ValueError:
        return BAD_GATEWAY
    if not isinstance(document, dict):
        return BAD_GATEWAY
    allowed = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "cookies"}
    if set(document) - allowed:
        return BAD_GATEWAY
    try:
        status = int(document.get("statusCode", 200))
    except (TypeError, ValueError):
        return BAD_GATEWAY
    if not 100 <= status <= 599:
        return BAD_GATEWAY
    headers: dict[str, list[str]] = {}
    single = document.get("headers") or {}
    multi = document.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        return BAD_GATEWAY
    for name, value in single.items():
        headers[str(name)] = [str(value)]
    for name, values in multi.items():
        if not isinstance(values, list):
            return BAD_GATEWAY
        headers.setdefault(str(name), []).extend(str(v) for v in values)
    body = document.get("body")
    if body is not None and not isinstance(body, str):
        return BAD_GATEWAY
    raw = (body or "").encode("utf-8")
    if _bool(document.get("isBase64Encoded", False)):
        try:
            raw = base64.b64decode(body or "", validate=True)
        except ValueError:
            return BAD_GATEWAY
    headers.setdefault("Content-Type", ["application/json"])
    return GatewayAnswer(status, headers, raw)


class _GatewayApp:
    """The ASGI transport around `ApiGateway.answer`: reads the request, sends what `answer` says.

    Each request takes one hop from the event loop to a pool thread, which routes it and waits on the
    integration's Lambda; the loop keeps the integration timeout (the thread runs on until the
    function returns, as the invocation does on AWS after API Gateway gave up on it).
    """

    def __init__(self, gateway: ApiGateway, executor: ThreadPoolExecutor) -> None:
        self.gateway = gateway
        self.executor = executor

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        raw_path = scope["raw_path"].decode("latin-1") or scope["path"]
        if scope["query_string"]:
            raw_path += "?" + scope["query_string"].decode("latin-1")
        headers: dict[str, list[str]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        # One id per request: AWS's x-amzn-RequestId header is the proxy event's requestContext.requestId.
        request_id = str(uuid.uuid4())
        declared = (headers.get("content-length") or ["0"])[0]
        close = False
        if declared.isascii() and declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
            answer, close = TOO_LONG, True  # answered before the body is read; the connection then closes
        else:
            chunks: list[bytes] = []
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                more = bool(message.get("more_body", False))
            loop = asyncio.get_running_loop()
            work = loop.run_in_executor(
                self.executor, self.gateway.answer, method, raw_path, headers, b"".join(chunks), request_id
            )
            try:
                answer = await asyncio.wait_for(work, self.gateway.integration_timeout_s)
            except TimeoutError:
                answer = TIMED_OUT
            except Exception:
                logger.exception("gateway error for %s %s", method, raw_path)
                answer = _message(500, "Internal server error")
        head: list[tuple[bytes, bytes]] = []
        for name, values in answer.headers.items():
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            head.extend((name.encode("latin-1"), value.encode("latin-1")) for value in values)
        head.append((b"x-amzn-RequestId", request_id.encode("ascii")))
        head.append((b"content-length", str(len(answer.body)).encode("ascii")))
        if close:
            head.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": answer.status, "headers": head})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else answer.body})
