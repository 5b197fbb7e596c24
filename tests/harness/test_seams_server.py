"""The server seam (harness/seams/server.py): moto's dispatcher maps a host to its backend once.

No AWS behaviour is involved: the seam must give every request the backend moto itself would pick,
and fail loudly when the method it wraps moves.
"""

from __future__ import annotations

from moto.moto_server import werkzeug_app

import harness.seams as harness_seams
from harness.seams import server

HOSTS = (
    "lambda.us-east-1.amazonaws.com",
    "runtime.sagemaker.us-east-1.amazonaws.com",
    "api.sagemaker.us-east-1.amazonaws.com",
    "s3.amazonaws.com",
    "states.us-east-1.amazonaws.com",
    "127.0.0.1:5000",
)


def test_the_seam_is_registered_and_wraps_the_dispatcher() -> None:
    assert harness_seams.SEAMS["server"] is server.install
    harness_seams.install()
    method = werkzeug_app.DomainDispatcherApplication.get_backend_for_host
    assert getattr(method, "_harness_memoised", False)
    server.install()  # a second install does not wrap twice
    assert werkzeug_app.DomainDispatcherApplication.get_backend_for_host is method


def test_each_host_gets_the_backend_moto_would_pick_and_is_looked_up_once() -> None:
    harness_seams.install()
    dispatcher = werkzeug_app.DomainDispatcherApplication(werkzeug_app.create_backend_app)
    unwrapped = werkzeug_app.DomainDispatcherApplication.get_backend_for_host._harness_original  # type: ignore[attr-defined]
    for host in HOSTS:
        assert dispatcher.get_backend_for_host(host) == unwrapped(dispatcher, host), host
    assert dispatcher.get_backend_for_host("lambda.us-east-1.amazonaws.com") == "awslambda"
    assert dispatcher.get_backend_for_host("runtime.sagemaker.us-east-1.amazonaws.com") == "sagemakerruntime"
    assert set(getattr(dispatcher, server.CACHE_ATTRIBUTE)) == set(HOSTS)
    assert dispatcher.get_backend_for_host(None) is None
