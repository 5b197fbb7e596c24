"""The console's HTTP boundary, against a real uvicorn server and the embedded emulator (nothing deployed):
the token (401 without, 403 wrong, a cookie after the first visit), loopback Host names, same-origin
POSTs, and bad input answered with a clear 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from harness.emulator import REGION, EmbeddedEmulator
from mlops.console import ConsoleServer
from mlops.console.security import COOKIE, Guard


@pytest.fixture(scope="module")
def server(emulator: EmbeddedEmulator) -> Iterator[ConsoleServer]:
    with ConsoleServer(emulator.endpoint_url, REGION) as console:
        yield console


@pytest.fixture
def signed_in(server: ConsoleServer) -> requests.Session:
    session = requests.Session()
    answer = session.get(server.url, allow_redirects=False, timeout=10)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/pipeline"  # the token leaves the address bar
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return session


def _base(server: ConsoleServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def _origin(server: ConsoleServer) -> dict[str, str]:
    return {"Origin": _base(server), "Sec-Fetch-Site": "same-origin"}


def test_every_page_and_file_needs_the_token(server: ConsoleServer) -> None:
    for path in ("/", "/pipeline", "/fragments/pipeline", "/static/console.js", "/registry"):
        assert requests.get(_base(server) + path, timeout=10).status_code == 401, path
    wrong = requests.get(_base(server) + "/pipeline", cookies={COOKIE: "x" * 32}, timeout=10)
    assert wrong.status_code == 403
    assert requests.get(_base(server) + "/pipeline?token=guess", timeout=10).status_code == 403
    post = requests.post(_base(server) + "/approval", data={"token": "t", "decision": "approve"}, timeout=10)
    assert post.status_code == 401


def test_the_cookie_opens_every_page(server: ConsoleServer, signed_in: requests.Session) -> None:
    for page in ("pipeline", "statemachine", "sagemaker", "registry", "api", "logs"):
        answer = signed_in.get(f"{_base(server)}/{page}", timeout=30)
        assert answer.status_code == 200, page
        assert 'src="/static/htmx-2.0.11.min.js"' in answer.text
    for fragment in ("pipeline", "approval", "statemachine", "sagemaker", "registry", "logs"):
        assert signed_in.get(f"{_base(server)}/fragments/{fragment}", timeout=30).status_code == 200, fragment
    assert signed_in.get(_base(server) + "/static/htmx-2.0.11.min.js", timeout=10).status_code == 200


def test_no_other_site_can_frame_it_and_the_token_never_leaks(
    server: ConsoleServer, signed_in: requests.Session
) -> None:
    for answer in (
        signed_in.get(_base(server) + "/pipeline", timeout=10),
        requests.get(_base(server) + "/", timeout=10),
    ):
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert answer.headers["referrer-policy"] == "no-referrer"


def test_only_the_consoles_own_host_names(server: ConsoleServer, signed_in: requests.Session) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own Host name: refused."""
    answer = signed_in.get(
        _base(server) + "/pipeline", headers={"Host": f"evil.example:{server.port}"}, timeout=10
    )
    assert answer.status_code == 403


def test_cross_site_posts_are_refused(server: ConsoleServer, signed_in: requests.Session) -> None:
    form = {"token": "t", "decision": "approve", "comment": "x"}
    for headers in (
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        answer = signed_in.post(_base(server) + "/approval", data=form, headers=headers, timeout=10)
        assert answer.status_code == 403, headers
        assert "cross-site" in answer.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "says"),
    [
        (
            "get",
            "/fragments/statemachine?execution=arn:aws:states:us-east-1:123456789012:execution:m:nope",
            {},
            404,
            "no execution",
        ),
        (
            "get",
            "/fragments/state?execution=arn:aws:states:us-east-1:123456789012:execution:m:nope&state=Train",
            {},
            404,
            "no execution",
        ),
        ("get", "/fragments/state", {}, 400, "give execution and state"),
        ("get", "/fragments/logs?group=/no/such/group", {}, 404, "no log group"),
        ("get", "/nowhere", {}, 404, ""),
        ("get", "/approval", {}, 405, ""),
        ("post", "/pipeline", {"data": {"a": "b"}}, 405, ""),
        ("post", "/approval", {"data": {"decision": "approve"}}, 400, "'token' is missing"),
        ("post", "/approval", {"data": {"token": "t", "decision": "maybe"}}, 400, "approve or reject"),
        ("post", "/approval", {"data": {"token": "t", "decision": "reject"}}, 400, "needs a comment"),
        (
            "post",
            "/approval",
            {"data": {"token": "t", "decision": "approve"}},
            409,
            "no approval with token t",
        ),
        ("post", "/approval", {"json": {"token": "t"}}, 415, "x-www-form-urlencoded"),
        (
            "post",
            "/approval",
            {"data": {"token": "t", "decision": "approve", "comment": "c" * 600}},
            400,
            "512",
        ),
        ("post", "/approval", {"data": "x" * 20_000}, 413, "over"),
        ("post", "/invoke", {"data": {"endpoint": "nope", "body": "{}"}}, 404, "no endpoint nope"),
        ("post", "/invoke", {"data": {"endpoint": "nope", "body": "not json"}}, 400, "not JSON"),
        ("post", "/api/call", {"data": {"body": "{}"}}, 409, "not published"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    server: ConsoleServer,
    signed_in: requests.Session,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    says: str,
) -> None:
    headers = _origin(server) if method == "post" else {}
    answer = getattr(signed_in, method)(_base(server) + path, headers=headers, timeout=30, **kwargs)
    assert answer.status_code == status, answer.text
    assert says in answer.text


def test_a_chunked_body_past_the_limit_is_refused(server: ConsoleServer, signed_in: requests.Session) -> None:
    """No Content-Length (chunked transfer): the guard counts what arrives."""

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"comment=" + b"x" * 1000

    answer = signed_in.post(
        _base(server) + "/approval",
        data=chunks(),
        timeout=30,
        headers={**_origin(server), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413


def test_a_short_token_is_refused() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        del scope, receive, send

    with pytest.raises(ValueError, match="at least 16"):
        Guard(app, "short", 1)  # type: ignore[arg-type]
