"""`harness.api_client.ApiClient` against a real HTTP server on loopback that throttles like a usage
plan (a token bucket per key: `burst` tokens, refilled at `rate` per second, 429 when empty) and
answers like the proxy Lambda (`{"predictions": [...]}` in order, 400 for a query over the limit).

The retry policy follows the AWS SDKs' standard retry mode ("AWS SDKs and Tools Reference Guide",
*Retry behavior*): exponential backoff with full jitter, capped at 20 s per wait.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.api_client import ApiClient, RetryPolicy

MAX_QUERY_CHARS = 20


class ThrottlingApi(ThreadingHTTPServer):
    """A stand-in for the published API: token bucket, then the proxy's answer shape."""

    daemon_threads = True

    def __init__(self, burst: int, rate: float, retry_after: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.burst, self.rate, self.retry_after = burst, rate, retry_after
        self.tokens = float(burst)
        self.refilled = time.monotonic()
        self.lock = threading.Lock()
        self.bodies: list[Any] = []
        self.throttled = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/predict"

    def take(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            self.throttled += 1
            return False


class _Handler(BaseHTTPRequestHandler):
    server: ThrottlingApi

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("x-api-key") != "key-1":
            return self._answer(403, {"message": "Forbidden"})
        if not self.server.take():
            extra = {"Retry-After": self.server.retry_after} if self.server.retry_after else {}
            return self._answer(429, {"message": "Too Many Requests"}, extra)
        self.server.bodies.append(body)
        inputs = body["inputs"]
        queries = [inputs] if isinstance(inputs, str) else inputs
        if any(len(query) > MAX_QUERY_CHARS for query in queries):
            return self._answer(400, {"error": f"a query is longer than {MAX_QUERY_CHARS} characters"})
        predictions = [{"query": q, "intent": q.upper(), "generated_text": f" {q.upper()}"} for q in queries]
        self._answer(200, {"predictions": predictions})

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def _serve(api: ThrottlingApi) -> Iterator[ThrottlingApi]:
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    yield api
    api.shutdown()
    api.server_close()


@pytest.fixture
def tight_api() -> Iterator[ThrottlingApi]:
    with _serve(ThrottlingApi(burst=3, rate=20.0)) as api:
        yield api


def _queries(count: int) -> list[str]:
    return [f"query {index}" for index in range(count)]


def test_one_request_per_query_past_the_burst_every_answer_is_200(tight_api: ThrottlingApi) -> None:
    with ApiClient(tight_api.url, "key-1", batch_size=1) as client:
        answers = client.predict(_queries(48))
    assert [answer.http_status for answer in answers] == [200] * 48
    assert [answer.intent for answer in answers] == [query.upper() for query in _queries(48)]
    # The bucket holds 3 tokens: the server did throttle, and the client retried every 429 it met.
    assert tight_api.throttled > 0 and client.throttled == tight_api.throttled
    assert any(answer.attempts > 1 for answer in answers)


def test_queries_go_in_batches_of_at_most_batch_size_in_order(tight_api: ThrottlingApi) -> None:
    with ApiClient(tight_api.url, "key-1", batch_size=64) as client:
        answers = client.predict(_queries(130))
    assert [len(body["inputs"]) for body in tight_api.bodies] == [64, 64, 2]
    assert [answer.query for answer in answers] == _queries(130)
    assert all(answer.ok for answer in answers)


def test_a_bad_query_in_a_batch_is_reported_against_itself_only(tight_api: ThrottlingApi) -> None:
    queries = ["fine one", "x" * (MAX_QUERY_CHARS + 1), "fine two"]
    with ApiClient(tight_api.url, "key-1", batch_size=8, retry=RetryPolicy(base_delay_s=0.05)) as client:
        answers = client.predict(queries)
    assert [answer.http_status for answer in answers] == [200, 400, 200]
    assert answers[1].intent is None and "longer than" in (answers[1].problem or "")
    assert [answer.intent for answer in answers if answer.ok] == ["FINE ONE", "FINE TWO"]


def test_retry_after_is_honoured_when_the_server_sends_it() -> None:
    waits: list[float] = []
    with _serve(ThrottlingApi(burst=1, rate=0.5, retry_after="0.25")) as api:
        retry = RetryPolicy(max_attempts=3)
        client = ApiClient(api.url, "key-1", batch_size=1, retry=retry, sleep=waits.append)
        answers = client.predict(_queries(2))
    # The first request took the only token; the second was throttled twice, waiting 0.25 s each time,
    # and the third attempt's 429 is the answer (retries ran out).
    assert waits == [0.25, 0.25]
    assert [answer.http_status for answer in answers] == [200, 429]
    assert answers[1].attempts == 3 and answers[1].problem == "Too Many Requests"


def test_a_client_error_other_than_throttling_is_not_retried() -> None:
    with _serve(ThrottlingApi(burst=5, rate=1.0)) as api:
        client = ApiClient(api.url, "wrong-key", sleep=lambda _: pytest.fail("a 403 must not be retried"))
        [answer] = client.predict(["hello"])
    assert answer.http_status == 403 and answer.attempts == 1 and answer.problem == "Forbidden"


def test_no_server_is_an_answer_less_prediction_not_an_exception() -> None:
    [answer] = ApiClient("http://127.0.0.1:9/v1/predict", "key-1", timeout_s=2).predict(["hello"])
    assert answer.http_status == 0 and (answer.problem or "").startswith("no answer:")


@given(
    retry=st.integers(min_value=1, max_value=40),
    base=st.floats(min_value=0.0, max_value=5.0),
    cap=st.floats(min_value=0.0, max_value=30.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_full_jitter_delay_stays_within_the_exponential_ceiling(
    retry: int, base: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay_s=base, max_delay_s=cap)
    delay = policy.delay(retry, None, random.Random(seed))
    assert 0.0 <= delay <= min(base * 2 ** (retry - 1), cap)


def test_retry_after_is_capped_and_garbage_falls_back_to_backoff() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=20.0)
    rng = random.Random(7)
    assert policy.delay(1, "600", rng) == 20.0
    assert 0.0 <= policy.delay(1, "Wed, 21 Oct 2015 07:28:00 GMT", rng) <= 1.0
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
