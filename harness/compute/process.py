"""The process runtime: the image's `train` and `serve` as child processes with a moved /opt/ml.

Here an "image" is a source tree that holds `container/train` and `container/serve` (the project's
root, or a copy of it). `register(tree)` addresses it by a content hash of its `container/` folder
(`sha256:<hex>`, the digest an image URI names as `<repo>@sha256:<hex>`), so a training job or a
model names it exactly as it would name a Docker image. The programs run with this interpreter
(the project's environment), `SAGEMAKER_BASE_DIR` set to the job's or endpoint's directory,
`SAGEMAKER_BIND_TO_PORT` set to a free loopback port for `serve`, and `<tree>/container` first on
`PYTHONPATH` so that the registered tree's own package is the one that runs.

What it cannot do: cut the training process off the network (SageMaker's network isolation); the
Docker runtime does (`--network none`).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

from harness.compute.container_runtime import (
    BASE_DIR_ENV,
    BIND_PORT_ENV,
    ContainerProcess,
    ContainerRuntime,
    ImageNotFound,
    PythonProgram,
    ResolvedImage,
    ServingContainer,
    child_environment,
    digest_of,
    free_port,
    open_log,
)

PROGRAMS = ("train", "serve")
# Not part of what the image runs: caches and a wheelhouse that only the Docker build reads.
_SKIPPED_PARTS = {"__pycache__", "wheels", ".pytest_cache", ".mypy_cache"}


def tree_digest(tree: Path) -> str:
    """The content hash of `tree/container`: every file's relative path and bytes, in sorted order."""
    container = tree / "container"
    hasher = hashlib.sha256()
    files = sorted(
        path
        for path in container.rglob("*")
        if path.is_file()
        and not _SKIPPED_PARTS.intersection(path.relative_to(container).parts)
        and path.suffix != ".pyc"
    )
    for path in files:
        hasher.update(path.relative_to(container).as_posix().encode("utf-8") + b"\0")
        hasher.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{hasher.hexdigest()}"


class ProcessRuntime(ContainerRuntime):
    name = "process"

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._trees: dict[str, Path] = {}
        self._lock = threading.Lock()

    def available(self) -> bool:
        return True

    def register(self, tree: Path) -> str:
        """Makes a source tree runnable as an image; returns its digest (`sha256:<hex>`)."""
        tree = tree.resolve()
        missing = [name for name in PROGRAMS if not (tree / "container" / name).is_file()]
        if missing:
            raise ImageNotFound(
                f"{tree} is not an image source tree: container/{', container/'.join(missing)} missing"
            )
        digest = tree_digest(tree)
        with self._lock:
            self._trees[digest] = tree
        return digest

    def resolve(self, image_uri: str) -> ResolvedImage:
        digest = digest_of(image_uri)
        if digest is None:
            raise ImageNotFound(
                f"the process runtime addresses images by digest; {image_uri!r} names none "
                "(use <repo>@sha256:<hex> with a digest from ProcessRuntime.register)"
            )
        with self._lock:
            tree = self._trees.get(digest)
        if tree is None:
            raise ImageNotFound(f"no source tree with digest {digest} is registered with the process runtime")
        return ResolvedImage(digest=digest, reference=str(tree))

    def _start(
        self,
        image: ResolvedImage,
        program: str,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        replacement: PythonProgram | None,
    ) -> ContainerProcess:
        tree = Path(image.reference)
        env = child_environment(
            {**environment, BASE_DIR_ENV: str(base_dir), "PYTHONPATH": str(tree / "container")}
        )
        command = [self._python, str(tree / "container" / program)]
        if replacement is not None:
            command = [self._python, "-c", replacement.code, *replacement.args]
        log = open_log(log_path)
        try:
            popen = subprocess.Popen(
                command,
                cwd=base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal to the harness's terminal does not reach it
            )
        except OSError:
            log.close()
            raise
        return ContainerProcess(popen, log_path, log)

    def start_training(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ContainerProcess:
        return self._start(image, "train", base_dir, log_path, environment, program)

    def start_serving(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ServingContainer:
        port = free_port()
        serving_env = {**environment, BIND_PORT_ENV: str(port)}
        process = self._start(image, "serve", base_dir, log_path, serving_env, program)
        return ServingContainer(process=process, url=f"http://127.0.0.1:{port}")
