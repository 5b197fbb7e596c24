"""The console's guard, an ASGI middleware in front of every route (static files included).

- Loopback only: the client must be 127.0.0.1 / ::1, and the Host header one of this server's loopback
  names (a page on another site cannot reach the console by DNS rebinding).
- A random token per stack: `?token=T` on the printed URL sets it as a cookie (HttpOnly,
  SameSite=Strict) and redirects to the same path without it; afterwards the cookie is the key. No
  token: 401; a wrong one: 403.
- Every answer says `X-Frame-Options: DENY`, `Content-Security-Policy: frame-ancestors 'none'` (no other
  site can frame the Approve button) and `Referrer-Policy: no-referrer` (the token never leaks in a Referer).
- State-changing requests (POST) must come from the console's own pages: an `Origin` other than the
  console's own, or `Sec-Fetch-Site` other than same-origin / none, gets 403; a body over
  `max_body` bytes gets 413 (read no further).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "mlops_console"
LOOPBACK = ("127.0.0.1", "::1")
SAFE_FETCH_SITES = ("same-origin", "none")
HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
]


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *HEADERS]
        await send(message)

    return sending


async def _answer(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Wraps the console's app (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str, port: int, max_body: int = 16 * 1024) -> None:
        if len(token) < 16:
            raise ValueError("the console's token must be at least 16 characters")
        self._app = app
        self._token = token
        self._port = port
        self._max_body = max_body

    def origins(self) -> set[str]:
        return {f"http://{host}:{self._port}" for host in ("127.0.0.1", "localhost", "[::1]")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        send = _with_headers(send)
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        client = scope.get("client") or ("", 0)
        if client[0] not in LOOPBACK:
            await _answer(send, 403, "the console answers on loopback only")
            return
        if f"http://{headers.get('host', '')}" not in self.origins():
            await _answer(send, 403, "unexpected Host header: open the console by the URL it printed")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[0]
        if given is not None:
            if not hmac.compare_digest(given, self._token):
                await _answer(send, 403, "wrong console token")
                return
            rest = {key: values for key, values in query.items() if key != "token"}
            location = scope["path"] + (f"?{urlencode(rest, doseq=True)}" if rest else "")
            cookie = f"{COOKIE}={self._token}; Path=/; HttpOnly; SameSite=Strict"
            await _answer(
                send, 303, "signed in", [(b"location", location.encode()), (b"set-cookie", cookie.encode())]
            )
            return
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is a missing token
            jar = SimpleCookie()
        morsel = jar.get(COOKIE)
        if morsel is None:
            await _answer(
                send, 401, "no console token: open the URL the console printed (it carries ?token=)"
            )
            return
        if not hmac.compare_digest(morsel.value, self._token):
            await _answer(send, 403, "wrong console token")
            return
        if scope["method"] not in ("GET", "HEAD"):
            origin = headers.get("origin")
            if origin is not None and origin not in self.origins():
                await _answer(send, 403, f"cross-site request refused (Origin {origin})")
                return
            site = headers.get("sec-fetch-site")
            if site is not None and site not in SAFE_FETCH_SITES:
                await _answer(send, 403, f"cross-site request refused (Sec-Fetch-Site {site})")
                return
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self._max_body):
                await _answer(send, 413, f"the request body is over {self._max_body} bytes")
                return
            receive = self._capped(receive)
        await self._app(scope, receive, send)

    def _capped(self, receive: Receive) -> Receive:
        """A body sent without Content-Length (chunked) is cut off past the limit too."""
        seen = 0
        limit = self._max_body

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return capped


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is over {limit} bytes")
