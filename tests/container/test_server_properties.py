"""Property test: whatever bodies and headers a client sends, the real `serve` never answers 5xx.

Hypothesis throws generated requests at one real `container/serve` process over the real trained tiny
model: well-formed and malformed JSON documents (wrong types, nesting, unicode, out-of-range
parameters), CSV text, raw bytes, bodies around the 6 MB limit, and arbitrary `Content-Type`, `Accept`
and custom-attribute headers, with a few methods and paths; and well-formed requests with arbitrary
unicode queries. Each answer must be a 2xx or a 4xx with a JSON error; a well-formed request must get a
200 holding one well-formed prediction per query sent, in order; and `/ping` must still answer.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from byoc import invocations
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.container.conftest import TrainedModel
from tests.container.serving import ServeProcess, serving

pytestmark = pytest.mark.slow

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
CLIENT_ERRORS = {400, 404, 405, 406, 411, 413, 415}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    queries: tuple[str, ...] | None  # what a 200 must echo, when the body is known to hold queries
    valid: bool = False  # a well-formed request within every limit: it must get a 200


@pytest.fixture(scope="module")
def server(trained_model: TrainedModel) -> Iterator[ServeProcess]:
    with serving(trained_model.root) as process:
        yield process


@pytest.fixture(scope="module")
def labels(trained_model: TrainedModel) -> set[str]:
    return set(json.loads((trained_model.model_dir / "labels.json").read_text(encoding="utf-8")))


# Header values a client can put on the wire: Latin-1, no line breaks, no leading whitespace.
_HEADER_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f\x85\xa0")
header_values = st.one_of(
    st.just(""),
    st.tuples(
        st.text(_HEADER_CHARS, min_size=1, max_size=1), st.text(_HEADER_CHARS | st.just(" "), max_size=60)
    ).map("".join),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "text/csv",
            "text/csv; charset=latin-1",
            "text/plain",
            "application/octet-stream",
            "multipart/form-data; boundary=x",
        ]
    ),
    header_values,
)
accepts = st.one_of(
    st.none(),
    st.sampled_from(
        ["*/*", "application/json", "text/csv", "text/*;q=0.5, */*;q=0.1", "image/png", "text/csv;q=0"]
    ),
    header_values,
)
queries = st.text(max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)
parameters = st.dictionaries(
    st.sampled_from(["max_new_tokens", "temperature"]) | st.text(max_size=12),
    st.integers(-3, 80) | st.floats() | st.text(max_size=5) | st.booleans() | st.none(),
    max_size=3,
)


JSON = "application/json"
CSV = "text/csv"
Body = tuple[bytes, tuple[str, ...] | None, str]  # the bytes, the queries they hold, their natural type


@st.composite
def json_documents(draw: st.DrawFn) -> Body:
    inputs = draw(st.one_of(queries, st.lists(queries, max_size=6), json_values))
    document: dict[str, object] = {"inputs": inputs}
    if draw(st.booleans()):
        document["parameters"] = draw(parameters)
    if draw(st.integers(0, 9)) == 0:
        document[draw(st.text(max_size=8))] = draw(json_values)
    body = json.dumps(document, ensure_ascii=draw(st.booleans())).encode("utf-8")
    expected = (inputs,) if isinstance(inputs, str) else tuple(inputs) if isinstance(inputs, list) else None
    return body, expected, JSON


@st.composite
def csv_documents(draw: st.DrawFn) -> Body:
    rows = draw(st.lists(st.lists(queries, min_size=1, max_size=2), max_size=6))
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode("utf-8"), None, CSV


bodies: st.SearchStrategy[Body] = st.one_of(
    json_documents(),
    csv_documents(),
    json_values.map(lambda value: (json.dumps(value).encode("utf-8"), None, JSON)),
    st.binary(max_size=300).map(lambda raw: (raw, None, JSON)),
    st.binary(max_size=300).map(lambda raw: (raw, None, CSV)),
    st.sampled_from([10, 999, 1001, 5000, 50_000]).map(
        lambda depth: (b"[" * depth + b"]" * depth, None, JSON)
    ),
    st.sampled_from([invocations.MAX_BODY_BYTES, invocations.MAX_BODY_BYTES + 1]).map(
        lambda size: (b'{"inputs": "' + b"x" * (size - 14) + b'"}', None, JSON)
    ),
)


valid_queries = st.text(min_size=1, max_size=60).filter(str.strip)
visible_ascii = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


@st.composite
def valid_cases(draw: st.DrawFn) -> Case:
    """Well-formed requests with arbitrary unicode queries, in either format, with either answer type."""
    batch = tuple(draw(st.lists(valid_queries, min_size=1, max_size=5)))
    headers = {"Accept": draw(st.sampled_from(["application/json", "text/csv", "*/*", "text/*"]))}
    if draw(st.booleans()):
        headers[ATTRIBUTES] = draw(visible_ascii)
    if draw(st.booleans()):
        buffer = io.StringIO()
        csv.writer(buffer).writerows([query] for query in batch)
        headers["Content-Type"] = draw(st.sampled_from([CSV, "text/csv; charset=utf-8"]))
        return Case("POST", "/invocations", buffer.getvalue().encode("utf-8"), headers, batch, valid=True)
    as_list = len(batch) > 1 or draw(st.booleans())
    document: dict[str, object] = {"inputs": list(batch) if as_list else batch[0]}
    max_new_tokens = draw(st.none() | st.integers(1, 8))
    if max_new_tokens is not None:
        document["parameters"] = {"max_new_tokens": max_new_tokens}
    headers["Content-Type"] = draw(st.sampled_from([JSON, "application/json; charset=UTF-8"]))
    body = json.dumps(document, ensure_ascii=draw(st.booleans())).encode("utf-8")
    return Case("POST", "/invocations", body, headers, batch, valid=True)


@st.composite
def fuzz_cases(draw: st.DrawFn) -> Case:
    body, expected, natural_type = draw(bodies)
    method = draw(st.sampled_from(["POST"] * 12 + ["GET", "PUT", "DELETE", "HEAD"]))
    path = draw(st.sampled_from(["/invocations"] * 12 + ["/ping", "/", "/invocations/x"]))
    headers: dict[str, str] = {}
    # Half the time the body goes with its own type, so that it reaches the parser behind the type check.
    content_type = natural_type if draw(st.booleans()) else draw(content_types)
    for name, value in (
        ("Content-Type", content_type),
        ("Accept", draw(accepts)),
        (ATTRIBUTES, draw(header_values | st.none())),
    ):
        if value is not None:
            headers[name] = value
    return Case(method, path, body, headers, expected)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(case=st.one_of(valid_cases(), fuzz_cases()))
def test_no_request_gets_a_5xx_and_the_server_stays_up(
    server: ServeProcess, labels: set[str], case: Case
) -> None:
    response = requests.request(
        case.method, f"{server.url}{case.path}", data=case.body, headers=case.headers, timeout=60
    )
    event(f"status {response.status_code}")  # the mix shows with --hypothesis-show-statistics
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if case.valid:
        assert response.status_code == 200, response.text[:500]
    if response.status_code != 200:
        assert response.status_code in CLIENT_ERRORS
        if case.method != "HEAD":
            error = response.json()
            assert error["status"] == response.status_code and error["error"]
    elif case.path == "/invocations":
        check_predictions(response, case, labels)
    assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200


def check_predictions(response: requests.Response, case: Case, labels: set[str]) -> None:
    if response.headers["Content-Type"].startswith("text/csv"):
        rows = list(csv.reader(io.StringIO(response.text, newline="")))
        assert rows[0] == ["query", "intent", "generated_text"]
        echoed = tuple(row[0] for row in rows[1:])
        intents = [row[1] or None for row in rows[1:]]
    else:
        predictions = response.json()["predictions"]
        echoed = tuple(p["query"] for p in predictions)
        intents = [p["intent"] for p in predictions]
    assert echoed
    if case.queries is not None:
        assert echoed == case.queries
    assert all(intent is None or intent in labels for intent in intents)
    if ATTRIBUTES in case.headers:
        assert response.headers[ATTRIBUTES] == case.headers[ATTRIBUTES]
