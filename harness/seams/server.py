"""Seam: moto's server finds a request's service once per host name, not by a file-system scan each time.

Why: moto 5.2.5's `DomainDispatcherApplication.get_application` (moto_server/werkzeug_app.py) maps
every request to a service backend under one lock shared by all of the server's threads, and its
`get_backend_for_host(host)` first tests `host in backends.list_of_moto_modules()`, a generator
that lists moto's package folder and stats each of its ~180 entries, then tries ~300 URL regexes.
That is 2-3 ms of every request (measured: 2.1 ms for `lambda.us-east-1.amazonaws.com`, 3.1 ms for
`runtime.sagemaker.us-east-1.amazonaws.com`), serialised behind the lock, so every poll, every
Lambda invoke and every InvokeEndpoint of the harness waits on it, one request at a time.

The answer depends only on the host name and on moto's installed package (its folders and
`backend_index`), neither of which changes while the server runs, so this seam keeps each host's
answer in a dict on the dispatcher instance (one per server; a new server starts empty). Nothing a
request sees changes: the same backend answers it.
"""

from __future__ import annotations

from typing import Any

# The moto API this seam wraps: (class path, attribute name). Checked at install.
REPLACED = ("moto.moto_server.werkzeug_app.DomainDispatcherApplication", "get_backend_for_host")
CACHE_ATTRIBUTE = "_harness_backend_for_host"


def install() -> None:
    from moto.moto_server import werkzeug_app

    dispatcher = werkzeug_app.DomainDispatcherApplication
    original = getattr(dispatcher, REPLACED[1], None)
    if not callable(original):
        raise RuntimeError(
            f"moto moved: DomainDispatcherApplication.{REPLACED[1]} is gone; port harness/seams/server.py"
        )
    if getattr(original, "_harness_memoised", False):
        return

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        # Called under the dispatcher's own lock (get_application), so the dict needs no other.
        cache: dict[str | None, Any] | None = self.__dict__.get(CACHE_ATTRIBUTE)
        if cache is None:
            cache = self.__dict__[CACHE_ATTRIBUTE] = {}
        if host not in cache:
            cache[host] = original(self, host)
        return cache[host]

    get_backend_for_host._harness_memoised = True  # type: ignore[attr-defined]
    get_backend_for_host._harness_original = original  # type: ignore[attr-defined]
    dispatcher.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
