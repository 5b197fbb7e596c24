"""The explicit table of container runtimes, and the choice of one by name.

`docker` (harness/compute/docker.py) and `process` (harness/compute/process.py) implement
`harness.compute.container_runtime.ContainerRuntime`. `auto` (the one meaning of it in the project) picks
`docker` when an engine answers and holds the offline base image the project's image is built from
(`BASE_IMAGE`), else `process`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from harness.compute.container_runtime import ContainerRuntime, ImageNotFound, RuntimeUnavailable
from harness.compute.docker import DockerRuntime
from harness.compute.process import ProcessRuntime

# The offline base image the Docker build starts from (scripts/docker-engine.sh builds it).
BASE_IMAGE: Final = "mlops-base:bookworm"

# Explicit registration: name -> factory.
RUNTIMES: dict[str, Callable[[], ContainerRuntime]] = {
    "docker": DockerRuntime,
    "process": ProcessRuntime,
}


def choose_runtime(
    name: str, runtimes: dict[str, Callable[[], ContainerRuntime]] | None = None
) -> ContainerRuntime:
    """The runtime called `name` from the table, or for `auto` the first available of docker, process.

    Raises ValueError for an unknown name and RuntimeUnavailable when the named one cannot run here.
    """
    table = RUNTIMES if runtimes is None else runtimes
    if name == "auto":
        docker = table["docker"]()
        if docker_ready(docker):
            return docker
        process = table["process"]()
        if process.available():
            return process
        raise RuntimeUnavailable("no container runtime is available (neither docker nor process)")
    if name not in table:
        raise ValueError(f"unknown container runtime {name!r}; expected auto or one of {', '.join(table)}")
    runtime = table[name]()
    if not runtime.available():
        raise RuntimeUnavailable(f"the {name} container runtime is not available on this machine")
    return runtime


def docker_ready(runtime: ContainerRuntime) -> bool:
    """Whether `runtime` (the docker one) answers and holds BASE_IMAGE, so the project's image can be
    built and run."""
    if not runtime.available():
        return False
    try:
        runtime.resolve(BASE_IMAGE)
    except ImageNotFound:
        return False
    return True
