"""A client of the published prediction API that honours its throttle as AWS SDKs do.

The API (deployer/templates/api.yaml) takes up to `max_inputs` queries a request (the proxy Lambda's
MAX_INPUTS, 64) and throttles each key with a usage plan (rate 10/s, burst 20). A client that sends one
request per query, as fast as it can, gets 429 after the burst; AWS's own SDKs answer a throttle by
retrying with exponential backoff and full jitter, capped at 20 s per wait ("AWS SDKs and Tools
Reference Guide", *Retry behavior*: the standard retry mode). This client does the same for the API:

- `predict(queries)` batches the queries into requests of at most `batch_size` queries (one request
  answers a list of queries in order, `{"predictions": [...]}`), so any number of rows works;
- a 429 is retried after the server's `Retry-After` (seconds) when it sends one, else after a
  full-jitter exponential delay (`RetryPolicy.delay`); only when `max_attempts` are spent is the 429
  the answer. Other statuses are answers at once: a 4xx is the caller's, a 5xx the model's;
- a batch answered with a 4xx is split into single-query requests, so that one bad query (too long,
  say) is reported against that query and the others still get their intents.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from harness.flow_model import MAX_API_BATCH, Query, SampleAnswer

API_KEY_HEADER = "x-api-key"
DEFAULT_BATCH_SIZE = MAX_API_BATCH
DEFAULT_TIMEOUT_S = 30.0
TOO_MANY_REQUESTS = 429
SERVICE_UNAVAILABLE = 503


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of throttled requests: full-jitter exponential backoff, as the SDKs' standard mode.

    The n-th retry (n = 1, 2, ...) waits `Retry-After` when the server sent one (capped at
    `max_delay_s`), else a uniform random time in [0, min(base_delay_s * 2**(n-1), max_delay_s)].
    The standard mode makes three attempts; a batch client of a usage plan needs more, so the
    default is ten (about 50 s of waiting at most, far past any burst refill).
    """

    max_attempts: int = 10
    base_delay_s: float = 0.1
    max_delay_s: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("delays must not be negative")

    def delay(self, retry: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        hinted = _seconds(retry_after)
        if hinted is not None:
            return min(hinted, self.max_delay_s)
        ceiling = min(self.base_delay_s * 2 ** (retry - 1), self.max_delay_s)
        return rng.uniform(0.0, ceiling)


def send_retrying_throttles(
    request: Callable[[], requests.Response],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_throttle: Callable[[], None] = lambda: None,
    retried: frozenset[int] = frozenset({TOO_MANY_REQUESTS}),
) -> tuple[requests.Response, int]:
    """`request()` again while it answers a status in `retried` (429; a caller may add 503), as
    `policy` says: (the last answer, attempts made). A connection error propagates
    (`requests.RequestException`); `on_throttle` is told of each 429."""
    jitter = rng if rng is not None else random.Random()
    attempt = 1
    while True:
        response = request()
        if response.status_code not in retried:
            return response, attempt
        if response.status_code == TOO_MANY_REQUESTS:
            on_throttle()
        if attempt >= policy.max_attempts:
            return response, attempt
        sleep(policy.delay(attempt, response.headers.get("Retry-After"), jitter))
        attempt += 1


def _seconds(retry_after: str | None) -> float | None:
    """`Retry-After` as seconds; the HTTP-date form and garbage are ignored (backoff applies)."""
    if retry_after is None:
        return None
    try:
        value = float(retry_after.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass(frozen=True)
class Prediction:
    """The API's answer for one query: the HTTP status of the request that carried it, the
    container's prediction when it was 200, a problem otherwise; `attempts` counts throttled tries."""

    query: str
    http_status: int
    intent: str | None = None
    generated_text: str | None = None
    problem: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.http_status == 200 and self.problem is None


@dataclass
class ApiClient:
    """POSTs queries to a stage URL with the API key; see the module docstring for the policy."""

    url: str
    api_key: str
    batch_size: int = DEFAULT_BATCH_SIZE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = DEFAULT_TIMEOUT_S
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    throttled: int = 0  # 429s seen (and retried or returned), for reports

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def predict(self, queries: Sequence[str]) -> list[Prediction]:
        """One Prediction per query, in order."""
        answers: list[Prediction] = []
        for start in range(0, len(queries), self.batch_size):
            answers.extend(self._batch(list(queries[start : start + self.batch_size])))
        return answers

    def _batch(self, queries: list[str]) -> list[Prediction]:
        inputs: str | list[str] = queries[0] if len(queries) == 1 else queries
        status, body, attempts = self.post({"inputs": inputs})
        if status == 200:
            return _predictions(queries, body, attempts)
        if 400 <= status < 500 and status != TOO_MANY_REQUESTS and len(queries) > 1:
            return [answer for query in queries for answer in self._batch([query])]
        problem = _problem(body) if status else f"no answer: {body}"
        return [Prediction(query, status, problem=problem, attempts=attempts) for query in queries]

    def post(self, payload: dict[str, Any]) -> tuple[int, Any, int]:
        """(status, decoded body or text, attempts); status 0 when no answer came (the error's text)."""
        attempts = 0

        def request() -> requests.Response:
            nonlocal attempts
            attempts += 1
            return self.session.post(
                self.url, json=payload, headers={API_KEY_HEADER: self.api_key}, timeout=self.timeout_s
            )

        def throttled() -> None:
            self.throttled += 1

        try:
            response, attempts = send_retrying_throttles(request, self.retry, self.sleep, self.rng, throttled)
        except requests.RequestException as error:
            return 0, str(error), attempts
        return response.status_code, _decode(response), attempts


def _decode(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _problem(body: Any) -> str:
    if isinstance(body, dict):
        message = body.get("message", body.get("error", body))
        return str(message)[:500]
    return str(body)[:500]


def _predictions(queries: list[str], body: Any, attempts: int) -> list[Prediction]:
    """The container's `{"predictions": [...]}`, one per query; a malformed answer is a problem."""
    items = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(items, list) or len(items) != len(queries):
        problem = f"200 with an unexpected body: {json.dumps(body)[:300] if body is not None else ''}"
        return [Prediction(query, 200, problem=problem, attempts=attempts) for query in queries]
    answers = []
    for query, item in zip(queries, items, strict=True):
        if isinstance(item, dict) and isinstance(item.get("intent"), str):
            text = item.get("generated_text")
            generated = text if isinstance(text, str) else None
            answers.append(Prediction(query, 200, item["intent"], generated, None, attempts))
        else:
            answers.append(Prediction(query, 200, problem=f"no intent in {item!r}"[:300], attempts=attempts))
    return answers


def ask(client: ApiClient, queries: Sequence[Query]) -> list[SampleAnswer]:
    """The main job's sample answers: every query through `client`, in order."""
    predictions = client.predict([query.text for query in queries])
    return [
        SampleAnswer(query.text, query.expected, answer.http_status, answer.intent, answer.problem)
        for query, answer in zip(queries, predictions, strict=True)
    ]


def call_api(url: str, api_key: str, query: Query) -> SampleAnswer:
    """One query through the API (a throttled request retried, as `ApiClient` does)."""
    with ApiClient(url, api_key) as client:
        return ask(client, [query])[0]
