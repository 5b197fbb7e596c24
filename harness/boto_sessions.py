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

from collections.abc import Iterable
from typing import Final

import boto3
import botocore.loaders
import botocore.session


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


__all__ = ["new_session"]
