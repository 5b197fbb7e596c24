"""The explicit table of container runtimes, and the choice of one by name.

`docker` (harness/compute/docker.py) and `process` (harness/compute/process.py) implement
`harness.compute.runtime.ContainerRuntime`. `auto` picks `docker` when an engine answers, else
`process`.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.compute.docker import DockerRuntime
from harness.compute.process import ProcessRuntime
from harness.compute.runtime import ContainerRuntime, RuntimeUnavailable

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
        for candidate in ("docker", "process"):
            runtime = table[candidate]()
            if runtime.available():
                return runtime
        raise RuntimeUnavailable("no container runtime is available (neither docker nor process)")
    if name not in table:
        raise ValueError(f"unknown container runtime {name!r}; expected auto or one of {', '.join(table)}")
    runtime = table[name]()
    if not runtime.available():
        raise RuntimeUnavailable(f"the {name} container runtime is not available on this machine")
    return runtime
