"""In-process tests of `byoc.server`'s HTTP behaviour that need a model to misbehave on purpose.

The real model cannot be made to load slowly, fail to load, raise mid-request or take a known time to
answer, so these tests give `serve` stand-in predictors (`loader=`). Everything else about the server is
real: the sockets, the threads, the drain. The real model over a real `serve` process is covered by
test_server_process.py.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from byoc import invocations, server
from byoc.predictor import Prediction, Predictor


@dataclass
class StandInPredictor:
    """Answers every query with the intent `echo`, after `delay` seconds, or raises `error`."""

    labels: tuple[str, ...] = ("echo",)
    backend: str = "stand-in"
    device: str = "cpu"
    max_new_tokens_limit: int = 8
    delay: float = 0.0
    error: Exception | None = None
    calls: list[tuple[tuple[str, ...], int | None]] = field(default_factory=list)

    def predict(self, queries: Sequence[str], max_new_tokens: int | None = None) -> list[Prediction]:
        self.calls.append((tuple(queries), max_new_tokens))
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return [Prediction(query, "echo", " echo") for query in queries]


@dataclass
class RunningServer:
    port: int
    instance: server.WorkerServer
    thread: threading.Thread
    exit_codes: list[int]

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connect()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


@contextmanager
def running(loader: Callable[[Path], Predictor], tmp_path: Path) -> Iterator[RunningServer]:
    listening: list[server.WorkerServer] = []
    ready = threading.Event()
    exit_codes: list[int] = []

    def on_listening(instance: server.WorkerServer) -> None:
        listening.append(instance)
        ready.set()

    def run() -> None:
        exit_codes.append(
            server.serve(tmp_path, 0, host="127.0.0.1", loader=loader, on_listening=on_listening)
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "the server did not start listening"
    instance = listening[0]
    try:
        yield RunningServer(instance.port, instance, thread, exit_codes)
    finally:
        instance.drain()
        thread.join(10)
        assert not thread.is_alive(), "the server did not stop"


def wait_until_healthy(target: RunningServer) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if target.request("GET", "/ping")[0] == 200:
            return
        time.sleep(0.02)
    raise AssertionError("the server never became healthy")


def post_json(target: RunningServer, document: object) -> tuple[int, dict[str, str], bytes]:
    return target.request(
        "POST", "/invocations", json.dumps(document).encode(), {"Content-Type": "application/json"}
    )


def test_ping_is_503_until_the_model_is_loaded(tmp_path: Path) -> None:
    release = threading.Event()
    predictor = StandInPredictor()

    def slow_loader(model_dir: Path) -> Predictor:
        assert model_dir == tmp_path
        release.wait(10)
        return predictor

    with running(slow_loader, tmp_path) as target:
        status, _, body = target.request("GET", "/ping")
        assert (status, json.loads(body)) == (503, {"status": "loading"})
        status, _, body = post_json(target, {"inputs": "hello"})
        assert status == 503
        assert "loading" in json.loads(body)["error"]
        release.set()
        wait_until_healthy(target)
        status, _, body = post_json(target, {"inputs": "hello"})
        assert status == 200
        expected = [{"query": "hello", "intent": "echo", "generated_text": " echo"}]
        assert json.loads(body)["predictions"] == expected


def test_a_model_that_fails_to_load_stops_the_server_with_exit_code_1(tmp_path: Path) -> None:
    def broken_loader(model_dir: Path) -> Predictor:
        raise FileNotFoundError(f"{model_dir}/model.onnx")

    with running(broken_loader, tmp_path) as target:
        target.thread.join(10)
        assert target.exit_codes == [1]


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (RuntimeError("onnxruntime exploded"), 500, "the model failed: RuntimeError: onnxruntime exploded"),
        (ValueError("query too long for the model"), 400, "query too long for the model"),
    ],
)
def test_model_errors_are_reported_and_the_server_stays_up(
    tmp_path: Path, error: Exception, status: int, message: str
) -> None:
    predictor = StandInPredictor(error=error)
    with running(lambda _: predictor, tmp_path) as target:
        wait_until_healthy(target)
        answer_status, _, body = post_json(target, {"inputs": ["a", "b"]})
        assert answer_status == status
        assert json.loads(body) == {"error": message, "status": status}
        predictor.error = None
        assert post_json(target, {"inputs": "again"})[0] == 200


class ShortPredictor(StandInPredictor):
    """A broken model that drops the last answer."""

    def predict(self, queries: Sequence[str], max_new_tokens: int | None = None) -> list[Prediction]:
        return super().predict(queries, max_new_tokens)[:-1]


def test_a_model_that_answers_the_wrong_count_is_a_500(tmp_path: Path) -> None:
    with running(lambda _: ShortPredictor(), tmp_path) as target:
        wait_until_healthy(target)
        status, _, body = post_json(target, {"inputs": ["a", "b"]})
        assert (status, json.loads(body)["error"]) == (500, "the model answered 1 predictions for 2 queries")
        assert target.request("GET", "/ping")[0] == 200


def test_parameters_reach_the_predictor(tmp_path: Path) -> None:
    predictor = StandInPredictor()
    with running(lambda _: predictor, tmp_path) as target:
        wait_until_healthy(target)
        assert post_json(target, {"inputs": ["a", "b"], "parameters": {"max_new_tokens": 8}})[0] == 200
        assert post_json(target, {"inputs": "c", "parameters": {"max_new_tokens": 9}})[0] == 400
        assert predictor.calls == [(("a", "b"), 8)]


def test_routes_and_methods(tmp_path: Path) -> None:
    with running(lambda _: StandInPredictor(), tmp_path) as target:
        wait_until_healthy(target)
        assert target.request("GET", "/nowhere")[0] == 404
        assert target.request("GET", "/invocations")[0] == 405
        assert target.request("POST", "/ping", b"{}", {"Content-Type": "application/json"})[0] == 405
        assert target.request("DELETE", "/invocations")[0] == 405
        assert target.request("BREW", "/invocations")[0] == 405
        status, _, body = target.request("GET", "/execution-parameters")
        assert status == 200
        assert json.loads(body)["MaxPayloadInMB"] == 6


def raw_exchange(port: int, data: bytes, read_timeout: float = 10) -> bytes:
    """Sends raw bytes and reads until the server closes or `read_timeout` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def test_body_size_and_length_rules(tmp_path: Path) -> None:
    with running(lambda _: StandInPredictor(), tmp_path) as target:
        wait_until_healthy(target)
        too_big = invocations.MAX_BODY_BYTES + 1
        # The client asks first: the server refuses before a byte of the body is sent.
        ask = (
            "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {too_big}\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
        raw = raw_exchange(target.port, ask)
        assert status_of(raw) == 413
        assert b"100 Continue" not in raw
        # A declared size far beyond what the server would drain: answered at once, body never read.
        huge = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000000\r\n\r\n"
        )
        assert status_of(raw_exchange(target.port, huge + b"{" * 1000)) == 413
        no_length = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n"
        assert status_of(raw_exchange(target.port, no_length)) == 411
        chunked = (
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        assert status_of(raw_exchange(target.port, chunked)) == 411
        for length in (b"-4", b"\xb2", b"1e3", b"0x10"):  # \xb2 is "²", which str.isdigit() accepts
            bad_length = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
            assert status_of(raw_exchange(target.port, bad_length)) == 400
        # A client that ends its side before the declared body arrived has left: the connection is closed
        # without an answer (asyncio closes a transport at end of file), and nothing reaches the model.
        short = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{}"
        with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
            sock.sendall(short)
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(65536) == b""
        too_many_headers = b"GET /ping HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 101 + b"\r\n"
        assert status_of(raw_exchange(target.port, too_many_headers)) == 431
        # HTTP/2 is not spoken on this port (SageMaker's front end talks HTTP/1.1 to the container).
        raw = raw_exchange(target.port, b"GET /ping HTTP/2.0\r\nHost: x\r\n\r\n")
        assert status_of(raw) == 400
        assert json.loads(raw.partition(b"\r\n\r\n")[2])["status"] == 400
        # A request line the parser cannot read is a 400 too (the server's own plain-text answer).
        assert status_of(raw_exchange(target.port, b"NONSENSE\r\n\r\n")) == 400
        assert target.request("GET", "/ping")[0] == 200


def test_keep_alive_serves_several_requests_on_one_connection(tmp_path: Path) -> None:
    with running(lambda _: StandInPredictor(), tmp_path) as target:
        wait_until_healthy(target)
        connection = target.connect()
        try:
            for query in ("one", "two", "three"):
                body = json.dumps({"inputs": query})
                connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                assert response.status == 200
                assert json.loads(response.read())["predictions"][0]["query"] == query
            # A 4xx with a body the server read keeps the connection usable too.
            connection.request("POST", "/invocations", b"{", {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 400
            response.read()
            connection.request("GET", "/ping")
            assert connection.getresponse().status == 200
        finally:
            connection.close()


def test_drain_finishes_in_flight_requests_and_closes_idle_connections(tmp_path: Path) -> None:
    predictor = StandInPredictor(delay=1.0)
    with running(lambda _: predictor, tmp_path) as target:
        wait_until_healthy(target)
        idle = target.connect()
        idle.request("GET", "/ping")
        assert idle.getresponse().status == 200  # an open keep-alive connection that stays idle

        answers: list[tuple[int, dict[str, str], bytes]] = []
        in_flight = threading.Thread(target=lambda: answers.append(post_json(target, {"inputs": "slow"})))
        in_flight.start()
        deadline = time.monotonic() + 5
        while not predictor.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert predictor.calls, "the slow request never reached the model"

        started = time.monotonic()
        target.instance.drain()
        target.thread.join(10)
        in_flight.join(10)
        assert not target.thread.is_alive()
        assert target.exit_codes == [0]
        assert time.monotonic() - started < 5, "an idle keep-alive connection held the shutdown"
        status, headers, body = answers[0]
        assert status == 200
        assert {name.lower(): value for name, value in headers.items()}.get("connection") == "close"
        assert json.loads(body)["predictions"][0]["query"] == "slow"
        with pytest.raises(OSError):
            target.request("GET", "/ping")
        idle.close()
