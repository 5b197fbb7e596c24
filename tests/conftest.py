"""Shared test configuration: Docker-marked tests, the project's paths, and the one embedded emulator
fixture.

Tests marked `docker` need a Docker engine and the prepared base image (scripts/docker-engine.sh).
They are skipped when no engine answers, unless MLOPS_REQUIRE_DOCKER=1 (set by .ci/run), in which case
a missing engine is a failure rather than a silent skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.emulator import EmbeddedEmulator

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


def heaviest_files_first(items: list[pytest.Item]) -> None:
    """Orders the files with Docker-marked tests first, then those with `slow` ones, then the rest, each
    file's tests kept together and in their order: pytest-xdist's `--dist loadfile` hands files out in
    this order, so the long ones start at once instead of finishing last on one worker."""
    weight: dict[Path, int] = {}
    for item in items:
        mark = 0 if item.get_closest_marker("docker") else 1 if item.get_closest_marker("slow") else 2
        weight[item.path] = min(weight.get(item.path, 2), mark)
    first_seen = {path: index for index, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (weight[item.path], first_seen[item.path]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    heaviest_files_first(items)
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


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedEmulator]:
    """The embedded emulator (moto with the harness's seams), one per test module: one runs per process
    (moto's state is process-wide), and stopping it leaves nothing for the next module."""
    with EmbeddedEmulator() as running:
        yield running
