"""The Docker runtime: the built image run by its id, as SageMaker runs it.

`train`: `docker run --network none -v <base_dir>:/opt/ml IMAGE train` (network isolation, as the
deployer's training job asks for). `serve`: `docker run -p 127.0.0.1:<port>:8080 -v <base_dir>:/opt/ml
IMAGE serve`. The `docker run` client stays attached, so its output is the container's log and a
SIGTERM sent to it is passed on to the container (`--sig-proxy`, on by default); once it exits the
container is removed (`--rm`, and `docker rm -f` as a backstop).

An image URI resolves through the engine: the URI itself (a tag or a registry digest the engine
knows), else its `sha256:` digest taken as the image id. It runs by that id, so what runs is
exactly the image the build produced.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

from harness.compute.container_runtime import (
    CONTAINER_PORT,
    ContainerProcess,
    ContainerRuntime,
    ImageNotFound,
    PythonProgram,
    ResolvedImage,
    ServingContainer,
    digest_of,
    free_port,
    open_log,
)

_ENGINE_TIMEOUT_S = 20


def _docker(*args: str, timeout: float = _ENGINE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


class DockerRuntime(ContainerRuntime):
    name = "docker"

    def __init__(self) -> None:
        self._available: bool | None = None

    def available(self) -> bool:
        if self._available is None:
            if shutil.which("docker") is None:
                self._available = False
            else:
                try:
                    self._available = _docker("info").returncode == 0
                except subprocess.TimeoutExpired:
                    self._available = False
        return self._available

    def resolve(self, image_uri: str) -> ResolvedImage:
        candidates = [image_uri]
        digest = digest_of(image_uri)
        if digest is not None and digest != image_uri:
            candidates.append(digest)
        for candidate in candidates:
            result = _docker("image", "inspect", "--format", "{{.Id}}", candidate)
            if result.returncode == 0:
                image_id = result.stdout.strip()
                return ResolvedImage(digest=image_id, reference=image_id)
        raise ImageNotFound(
            f"the Docker engine knows no image {image_uri!r} (build it with scripts/build-image.sh)"
        )

    def _run(
        self,
        image: ResolvedImage,
        program: str,
        run_args: list[str],
        log_path: Path,
        environment: dict[str, str],
        replacement: PythonProgram | None,
    ) -> ContainerProcess:
        name = f"mlops-{program}-{uuid.uuid4().hex[:12]}"
        env_args = [arg for key, value in sorted(environment.items()) for arg in ("-e", f"{key}={value}")]
        command = ["docker", "run", "--rm", "--name", name, *run_args, *env_args, image.reference, program]
        if replacement is not None:
            entry = ["--entrypoint", "python3", image.reference, "-c", replacement.code, *replacement.args]
            command = ["docker", "run", "--rm", "--name", name, *run_args, *env_args, *entry]
        log = open_log(log_path)
        try:
            popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except OSError:
            log.close()
            raise

        def remove_container() -> None:
            _docker("rm", "-f", name)

        return ContainerProcess(popen, log_path, log, cleanup=remove_container)

    def start_training(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ContainerProcess:
        mount = f"{base_dir.resolve()}:/opt/ml"
        return self._run(image, "train", ["--network", "none", "-v", mount], log_path, environment, program)

    def start_serving(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ServingContainer:
        port = free_port()
        mount = f"{base_dir.resolve()}:/opt/ml"
        publish = f"127.0.0.1:{port}:{CONTAINER_PORT}"
        process = self._run(image, "serve", ["-p", publish, "-v", mount], log_path, environment, program)
        return ServingContainer(process=process, url=f"http://127.0.0.1:{port}")
