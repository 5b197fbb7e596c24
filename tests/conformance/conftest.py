"""The conformance suite: each test checks one behaviour of AWS that the harness stands in for.

Every test names its source (an AWS document and section, or the public report a behaviour was taken
from where AWS documents nothing) in its docstring. By default every test runs against the harness.

Opt-in against a real account: `pytest tests/conformance --aws-account` (with credentials that boto3
finds, and AWS_DEFAULT_REGION or `--aws-region`) runs only the tests marked `aws_verified` against
AWS's own endpoints, the same assertions as against the harness; the others need the harness's compute
plane or its faults and are skipped. Without the flag nothing here reaches AWS.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.harness.planes import Harness, running_harness

AWS_ACCOUNT_OPTION = "--aws-account"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption(
        AWS_ACCOUNT_OPTION,
        action="store_true",
        default=False,
        help="run the aws_verified conformance tests against the real AWS account of the current credentials",
    )
    group.addoption("--aws-region", default=None, help="region for --aws-account (default: boto3's)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "aws_verified: a conformance test that also runs against a real AWS account with --aws-account",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption(AWS_ACCOUNT_OPTION):
        return
    skip = pytest.mark.skip(
        reason="needs the harness (compute plane or faults); --aws-account runs aws_verified"
    )
    for item in items:
        if "conformance" in item.path.parts and item.get_closest_marker("aws_verified") is None:
            item.add_marker(skip)


@dataclass
class Target:
    """Where a conformance test sends its calls: the harness's emulator, or a real AWS account."""

    is_aws: bool
    region: str
    harness: Harness | None = None
    _session: Any = field(default=None, repr=False)

    def client(self, service: str) -> Any:
        if self.harness is not None:
            return self.harness.client(service)
        return self._session.client(service, region_name=self.region)


def aws_target(region: str | None, session: Any | None = None) -> Target:
    """The opt-in target: boto3's default credential chain and AWS's own endpoints (no endpoint_url)."""
    session = session or boto3.Session()
    chosen = region or session.region_name or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return Target(is_aws=True, region=chosen, _session=session)


@pytest.fixture(scope="package")
def conformance_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_harness(Path(tmp_path_factory.mktemp("conformance")), startup_limit_s=4.0) as running:
        yield running


@pytest.fixture(scope="package")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.config.getoption(AWS_ACCOUNT_OPTION):
        session = boto3.Session()
        if session.get_credentials() is None:
            pytest.fail("--aws-account needs AWS credentials that boto3 can find")
        yield aws_target(request.config.getoption("--aws-region"), session)
        return
    harness: Harness = request.getfixturevalue("conformance_harness")
    yield Target(is_aws=False, region="us-east-1", harness=harness)
