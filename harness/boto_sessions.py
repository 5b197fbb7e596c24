"""boto3 sessions for the harness's own clients of the emulator, sharing botocore's parsed models.

A new boto3 session comes with a new botocore data loader, which parses botocore's JSON models again
(the service's model, endpoints.json, partitions.json, the retry rules) the first time a client of each
service is made: 0.1-0.3 s of CPU a client, measured as a fifth of a scenario's harness time. The
sessions made here share one loader, so each model is parsed once per process. The loader holds only
what botocore ships (read-only data, safe to share between threads; at worst two threads parse the
same file once each), which is why it is a process-wide cache rather than state passed around.

Only the harness's clients use it: the Lambda functions and the container make their clients as they do
on AWS (boto3's default session), so their cold starts cost what they cost there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Final

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config


class _PathsOnce(list[str]):
    """The loader's search paths: boto3 appends its own data folder once per session made on a loader;
    shared, the list would grow by one entry per session."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)

    def extend(self, paths: Iterable[str]) -> None:
        for path in paths:
            self.append(path)


_SHARED_LOADER: Final = botocore.loaders.Loader(extra_search_paths=_PathsOnce())


def new_session(region: str, credentials: dict[str, str] | None = None) -> boto3.session.Session:
    """A boto3 session in `region` (with `credentials`: boto3.Session's keyword arguments, else the
    default chain) whose clients read botocore's models from the process's shared loader."""
    core = botocore.session.Session()
    core.register_component("data_loader", _SHARED_LOADER)
    return boto3.session.Session(botocore_session=core, region_name=region, **(credentials or {}))


def client_config() -> Config:
    """Client settings for talking to a local endpoint: quick to fail, no long retry storms."""
    return Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=120)


class SessionClients:
    """Clients from one session (`new_session`), made on first use under a lock: a session is not
    thread-safe, its clients are. Even with the shared loader, a new session per client costs 5-16 ms
    of CPU more per client (measured for S3, Lambda and SageMaker)."""

    def __init__(self, region: str, credentials: dict[str, str] | None = None) -> None:
        self._region = region
        self._credentials = credentials
        self._session: boto3.session.Session | None = None
        self._lock = threading.Lock()

    def client(
        self, service: str, endpoint_url: str, config: Config, credentials: dict[str, str] | None = None
    ) -> Any:
        """A `service` client; `credentials` (boto3's keyword arguments) sign for it instead of the
        session's."""
        with self._lock:
            if self._session is None:
                self._session = new_session(self._region, self._credentials)
            return self._session.client(
                service, endpoint_url=endpoint_url, config=config, **(credentials or {})
            )


__all__ = ["SessionClients", "client_config", "new_session"]
