"""Shared test configuration: Docker-marked tests and the project's paths.

Tests marked `docker` need a Docker engine and the prepared base image (scripts/docker-engine.sh).
They are skipped when no engine answers, unless MLOPS_REQUIRE_DOCKER=1 (set by .ci/run), in which case
a missing engine is a failure rather than a silent skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIRE_DOCKER_ENV = "MLOPS_REQUIRE_DOCKER"


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("docker") for item in items):
        return
    if docker_engine_answers():
        return
    if os.environ.get(REQUIRE_DOCKER_ENV) == "1":
        raise pytest.UsageError(
            f"{REQUIRE_DOCKER_ENV}=1 but no Docker engine answers: run scripts/docker-engine.sh first"
        )
    skip = pytest.mark.skip(reason="no Docker engine answers (scripts/docker-engine.sh starts one)")
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
