"""The real `container/serve` as a plain process on a moved `/opt/ml`, over the real trained tiny model.

The model is the session's `trained_model` (container/train on CLINC150's 10-intent subset, see
conftest.py). Answers are checked against real labelled queries and against the predictor called
directly, so the server is shown to pass the model's answers through unchanged, in order.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from byoc import invocations
from byoc.environment import BACKEND_ENV, DEVICE_ENV, cpu_count
from byoc.predictor import Prediction, load_predictor

from harness.datasets import LabelledQuery
from tests.container.conftest import TrainedModel
from tests.container.serving import ServeProcess, serving

pytestmark = pytest.mark.slow

ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


@pytest.fixture(scope="module")
def server(trained_model: TrainedModel) -> Iterator[ServeProcess]:
    with serving(trained_model.root) as process:
        yield process


@pytest.fixture(scope="module")
def test_queries(
    clinc10: tuple[list[LabelledQuery], list[LabelledQuery], list[LabelledQuery]],
) -> list[LabelledQuery]:
    """Two held-out test queries per intent (CLINC150's test split, never trained on)."""
    per_intent: dict[str, list[LabelledQuery]] = {}
    for example in clinc10[2]:
        per_intent.setdefault(example.intent, []).append(example)
    return [example for examples in per_intent.values() for example in examples[:2]]


@pytest.fixture(scope="module")
def direct(trained_model: TrainedModel, test_queries: list[LabelledQuery]) -> dict[str, Prediction]:
    """What the predictor answers for each test query when called in this process, without HTTP."""
    predictor = load_predictor(trained_model.model_dir)
    return {p.query: p for p in predictor.predict([example.query for example in test_queries])}


def as_dict(prediction: Prediction) -> dict[str, str | None]:
    return {
        "query": prediction.query,
        "intent": prediction.intent,
        "generated_text": prediction.generated_text,
    }


def test_ping_is_quick_once_loaded(server: ServeProcess) -> None:
    for _ in range(5):
        started = time.monotonic()
        response = requests.get(f"{server.url}/ping", timeout=2)
        assert response.status_code == 200
        assert time.monotonic() - started < 2


def test_real_queries_get_their_intents(server: ServeProcess, test_queries: list[LabelledQuery]) -> None:
    response = server.invoke_json({"inputs": [example.query for example in test_queries]})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    predictions = response.json()["predictions"]
    assert [p["query"] for p in predictions] == [example.query for example in test_queries]
    correct = sum(p["intent"] == example.intent for p, example in zip(predictions, test_queries, strict=True))
    assert correct / len(test_queries) >= 0.8, predictions


def test_answers_are_the_predictors_own_in_order(
    server: ServeProcess, test_queries: list[LabelledQuery], direct: dict[str, Prediction]
) -> None:
    queries = [example.query for example in reversed(test_queries)]
    response = server.invoke_json({"inputs": queries})
    assert response.json()["predictions"] == [as_dict(direct[query]) for query in queries]
    single = server.invoke_json({"inputs": queries[0]})
    assert single.json() == {"predictions": [as_dict(direct[queries[0]])]}


def test_csv_in_csv_out_with_quoting(
    server: ServeProcess, test_queries: list[LabelledQuery], direct: dict[str, Prediction]
) -> None:
    queries = [test_queries[0].query, f"{test_queries[1].query}, please", 'say "hello", twice']
    body = io.StringIO()
    csv.writer(body).writerows([query] for query in queries)
    response = server.invoke(body.getvalue(), "text/csv", Accept="text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == ["query", "intent", "generated_text"]
    assert [row[0] for row in rows[1:]] == queries
    first = direct[test_queries[0].query]
    assert rows[1] == [first.query, first.intent or "", first.generated_text]


def test_csv_in_json_out_and_json_in_csv_out(server: ServeProcess, test_queries: list[LabelledQuery]) -> None:
    query = test_queries[0].query
    as_json = server.invoke(f"{query}\n", "text/csv", Accept="application/json")
    assert as_json.json()["predictions"][0]["query"] == query
    as_csv = server.invoke_json({"inputs": [query]}, Accept="text/csv;q=0.9, application/xml")
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(as_csv.text, newline="")))[1][0] == query


def test_custom_attributes_are_echoed(server: ServeProcess, test_queries: list[LabelledQuery]) -> None:
    value = "trace_id=abc-123, c=7"
    response = server.invoke_json({"inputs": test_queries[0].query}, **{ATTRIBUTES: value})
    assert response.status_code == 200
    assert response.headers[ATTRIBUTES] == value
    without = server.invoke_json({"inputs": test_queries[0].query})
    assert ATTRIBUTES not in without.headers
    rejected = server.invoke("{", **{ATTRIBUTES: value})
    assert (rejected.status_code, rejected.headers[ATTRIBUTES]) == (400, value)


def test_max_new_tokens_bounds_the_generated_text(
    server: ServeProcess, trained_model: TrainedModel, test_queries: list[LabelledQuery]
) -> None:
    limit = load_predictor(trained_model.model_dir).max_new_tokens_limit
    query = test_queries[0].query
    one = server.invoke_json({"inputs": query, "parameters": {"max_new_tokens": 1}})
    full = server.invoke_json({"inputs": query, "parameters": {"max_new_tokens": limit}})
    assert one.status_code == full.status_code == 200
    one_text = one.json()["predictions"][0]["generated_text"]
    full_text = full.json()["predictions"][0]["generated_text"]
    assert full_text.startswith(one_text) and len(one_text) < len(full_text)
    too_many = server.invoke_json({"inputs": query, "parameters": {"max_new_tokens": limit + 1}})
    assert too_many.status_code == 400
    assert str(limit) in too_many.json()["error"]


BAD_REQUESTS = [
    pytest.param("{not json", "application/json", {}, 400, "not valid JSON", id="malformed-json"),
    pytest.param('{"inputs": 42}', "application/json", {}, 400, "string or a list", id="wrong-type"),
    pytest.param('{"inputs": ["ok", null]}', "application/json", {}, 400, '"inputs"[1]', id="null-item"),
    pytest.param('{"inputs": []}', "application/json", {}, 400, "no queries", id="empty-list"),
    pytest.param('{"inputs": "  "}', "application/json", {}, 400, "empty", id="blank-query"),
    pytest.param("", "application/json", {}, 400, "not valid JSON", id="empty-body"),
    pytest.param("", "text/csv", {}, 400, "no queries", id="empty-csv"),
    pytest.param("a,b\n", "text/csv", {}, 400, "2 fields", id="csv-two-fields"),
    pytest.param(b'{"inputs": "\xff\xfe"}', "application/json", {}, 400, "UTF-8", id="not-utf8"),
    pytest.param("hello", "text/plain", {}, 415, "Content-Type", id="unknown-content-type"),
    pytest.param('{"inputs": "x"}', None, {}, 415, "Content-Type", id="no-content-type"),
    pytest.param(
        '{"inputs": "x"}', "application/json", {"Accept": "application/xml"}, 406, "Accept", id="accept"
    ),
    pytest.param(
        '{"inputs": "x", "parameters": {"max_new_tokens": 0}}',
        "application/json",
        {},
        400,
        "between",
        id="max-new-tokens-low",
    ),
    pytest.param(
        '{"inputs": "x", "parameters": {"max_new_tokens": "ten"}}',
        "application/json",
        {},
        400,
        "integer",
        id="max-new-tokens-type",
    ),
    pytest.param(
        '{"inputs": "x", "parameters": {"top_k": 3}}',
        "application/json",
        {},
        400,
        "unknown parameters",
        id="unknown-parameter",
    ),
    pytest.param(
        json.dumps({"inputs": ["q"] * (invocations.MAX_BATCH + 1)}),
        "application/json",
        {},
        400,
        f"limit is {invocations.MAX_BATCH}",
        id="huge-batch",
    ),
    pytest.param(
        json.dumps({"inputs": "x" * (invocations.MAX_QUERY_CHARS + 1)}),
        "application/json",
        {},
        400,
        "characters",
        id="long-query",
    ),
    pytest.param("[" * 50_000, "application/json", {}, 400, "nested too deeply", id="deep-nesting"),
    pytest.param(
        '{"inputs": "x"}',
        "application/json",
        {ATTRIBUTES: "é"},
        400,
        "Custom-Attributes",
        id="bad-attributes",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "headers", "status", "fragment"), BAD_REQUESTS)
def test_bad_input_is_a_clear_4xx_and_the_server_stays_up(
    server: ServeProcess,
    body: str | bytes,
    content_type: str | None,
    headers: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    response = server.invoke(body, content_type, **headers)
    assert response.status_code == status, response.text
    document = response.json()
    assert document["status"] == status
    assert fragment in document["error"]
    assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200


def test_a_body_over_6_mb_is_413(server: ServeProcess) -> None:
    body = json.dumps({"inputs": "x" * (invocations.MAX_BODY_BYTES + 10)})
    response = server.invoke(body)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200


def test_sixteen_parallel_requests_each_get_their_own_answers(
    server: ServeProcess, test_queries: list[LabelledQuery], direct: dict[str, Prediction]
) -> None:
    batches = [[test_queries[(i + j) % len(test_queries)].query for j in range(1 + i % 4)] for i in range(16)]

    def call(batch: list[str]) -> list[dict[str, str | None]]:
        response = server.invoke_json({"inputs": batch})
        assert response.status_code == 200, response.text
        predictions: list[dict[str, str | None]] = response.json()["predictions"]
        return predictions

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(call, batches))
    for batch, predictions in zip(batches, answers, strict=True):
        assert predictions == [as_dict(direct[query]) for query in batch]


def _settled_log_length(server: ServeProcess, quiet_s: float = 0.5, timeout_s: float = 10.0) -> int:
    """The log's record count once no line has arrived for `quiet_s`.

    The server writes a request's line after it has sent the answer, so an earlier test's last line
    can land after that test has finished; counting before it lands would mix it into this test.
    """
    deadline = time.monotonic() + timeout_s
    count = len(server.log_records())
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        latest = len(server.log_records())
        if latest == count:
            return count
        count = latest
    raise AssertionError(f"the server's log kept growing for {timeout_s} s")


def test_one_structured_log_line_per_request(server: ServeProcess) -> None:
    before = _settled_log_length(server)
    server.invoke_json({"inputs": "log me"})
    server.invoke("nope", "text/plain")
    requests.get(f"{server.url}/ping", timeout=2)
    _settled_log_length(server)
    records = server.log_records()[before:]
    assert [(r["event"], r["status"]) for r in records] == [("request", 200), ("request", 415)]
    assert records[0]["queries"] == 1 and records[0]["path"] == "/invocations"
    assert "Content-Type" in records[1]["error"]


def test_sigterm_finishes_the_request_in_flight_then_exits_0(
    trained_model: TrainedModel, test_queries: list[LabelledQuery]
) -> None:
    process = ServeProcess.start(trained_model.root)
    try:
        cold_start = process.wait_healthy()
        assert cold_start < 10
        assert all(status in (0, 503) for _, status in process.pings[:-1])
        body = json.dumps({"inputs": [example.query for example in test_queries]}).encode()
        head = (
            f"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", process.port), timeout=30) as sock:
            # Half the body is sent: the request is in flight when SIGTERM arrives.
            sock.sendall(head + body[: len(body) // 2])
            time.sleep(0.3)
            process.process.terminate()
            assert refuses_connections(process.port), "serve still accepts connections after SIGTERM"
            assert process.process.poll() is None, "serve exited with a request in flight"
            sock.sendall(body[len(body) // 2 :])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head_text, _, payload = answer.partition(b"\r\n\r\n")
        assert head_text.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in head_text.lower()
        assert len(json.loads(payload)["predictions"]) == len(test_queries)
        assert process.process.wait(10) == 0
        events = [record["event"] for record in process.log_records()]
        assert events[-3:] == ["shutdown", "request", "stopped"]
    finally:
        process.close()


def refuses_connections(port: int, timeout: float = 10) -> bool:
    """Whether the port stops accepting connections within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def test_a_missing_model_ends_serve_with_exit_code_1(tmp_path: Path) -> None:
    process = ServeProcess.start(tmp_path)
    try:
        assert process.process.wait(30) == 1
        failures = [r for r in process.log_records() if r["event"] == "model_load_failed"]
        assert len(failures) == 1 and "model" in failures[0]["error"]
    finally:
        process.close()


@pytest.mark.parametrize(
    ("extra_env", "reason"),
    [
        # This machine's torch is the CPU build (as in the local image); CodeBuild's image has PyPI's CUDA
        # build, which on a GPU whose driver is too old fails the same way (torch.cuda.is_available()).
        ({DEVICE_ENV: "cuda"}, "is a CPU build"),
        ({DEVICE_ENV: "cuda", BACKEND_ENV: "onnx"}, "runs on the CPU only"),
    ],
)
def test_a_gpu_asked_for_and_not_usable_ends_serve_with_exit_code_1(
    trained_model: TrainedModel, extra_env: dict[str, str], reason: str
) -> None:
    """`cuda` never falls back to the CPU: SageMaker then reports a container that did not start, rather
    than an endpoint that serves on the CPU of a GPU instance."""
    process = ServeProcess.start(trained_model.root, extra_env)
    try:
        assert process.process.wait(120) == 1, process.log_text()
        failures = [r for r in process.log_records() if r["event"] == "model_load_failed"]
        assert failures and reason in failures[0]["error"], process.log_text()
        assert not any(r["event"] == "model_loaded" for r in process.log_records())
    finally:
        process.close()


def test_an_unknown_device_ends_serve_with_exit_code_2(tmp_path: Path) -> None:
    process = ServeProcess.start(tmp_path, {DEVICE_ENV: "tpu"})
    try:
        assert process.process.wait(30) == 2
        errors = [r for r in process.log_records() if r["event"] == "bad_configuration"]
        assert errors and DEVICE_ENV in errors[0]["error"] and "cpu, cuda" in errors[0]["error"]
    finally:
        process.close()


def test_onnx_by_default_and_torch_by_choice_give_the_same_answers(
    server: ServeProcess, trained_model: TrainedModel, test_queries: list[LabelledQuery]
) -> None:
    loaded = [r for r in server.log_records() if r["event"] == "model_loaded"]
    # One line per worker (SAGEMAKER_MODEL_SERVER_WORKERS, default one per core).
    assert len(loaded) == cpu_count() and {r["backend"] for r in loaded} == {"onnx"}
    queries = [example.query for example in test_queries]
    with serving(trained_model.root, {BACKEND_ENV: "torch"}) as process:
        with_torch = process.invoke_json({"inputs": queries})
        assert with_torch.status_code == 200, with_torch.text
        assert with_torch.json() == server.invoke_json({"inputs": queries}).json()
        loaded = [r for r in process.log_records() if r["event"] == "model_loaded"]
        assert [r["backend"] for r in loaded] == ["torch"]  # torch spreads over the cores itself: 1 worker
