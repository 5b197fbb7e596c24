"""A local image registry that stands for ECR's data plane, and recording its images in the emulator's ECR.

`LocalRegistry` runs Debian's `docker-registry` (distribution 2.8) as a child process on 127.0.0.1 and a
free port, storing blobs under a folder; `docker push 127.0.0.1:PORT/repo:tag` works without TLS
(loopback registries are trusted). It is started and stopped explicitly (or as a context manager).

`record_in_ecr` copies what the registry holds for one image (its manifest) into the emulator's ECR
with `put_image`, so that `describe_images` lists it, as a push to ECR would.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from harness.compute.container_runtime import free_port

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
_BINARY = "docker-registry"


class RegistryError(RuntimeError):
    pass


class LocalRegistry:
    """`docker-registry serve` on 127.0.0.1, storing under `root`."""

    def __init__(self, root: Path, port: int = 0, startup_timeout_s: float = 15.0) -> None:
        self.root = root
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the registry part of an image URI."""
        if self._port is None:
            raise RegistryError("the local registry is not started")
        return f"127.0.0.1:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> LocalRegistry:
        binary = shutil.which(_BINARY)
        if binary is None:
            raise RegistryError(f"{_BINARY} is not installed (Debian package docker-registry)")
        self._port = self._requested_port or free_port()
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self._port}\n",
            encoding="utf-8",
        )
        log = (self.root / "registry.log").open("wb")
        self._process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RegistryError(f"{_BINARY} exited at start; see {self.root / 'registry.log'}")
            try:
                if requests.get(f"{self.url}/v2/", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RegistryError(f"{_BINARY} did not answer within {self._startup_timeout_s:.0f} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """The manifest of `repository:reference` (a tag or a digest): (bytes, media type, digest)."""
        response = requests.get(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            timeout=10,
        )
        if response.status_code != 200:
            status = response.status_code
            raise RegistryError(f"{repository}:{reference} is not in the local registry (HTTP {status})")
        body = response.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        media_type = response.headers.get("Content-Type", MANIFEST_TYPES[0]).split(";")[0]
        return body, media_type, digest

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def record_in_ecr(ecr: Any, registry: LocalRegistry, repository: str, reference: str, tag: str) -> str:
    """Puts the registry's manifest for `repository:reference` into the emulator's ECR under `tag`.

    Returns the digest the registry gives the image (sha256 of its manifest), which is what the image
    URI names; moto computes its own `imageDigest` for `describe_images` from the layers.
    """
    body, media_type, digest = registry.manifest(repository, reference)
    # The same image under the same tag (a rebuild of an unchanged tree) is already recorded.
    with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
        ecr.put_image(
            repositoryName=repository,
            imageManifest=body.decode("utf-8"),
            imageManifestMediaType=media_type,
            imageTag=tag,
        )
    return digest
