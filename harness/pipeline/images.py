"""How the Build action's image is built and recorded locally, per container runtime (`ImageBuild`).

- `DockerImageBuild`: the buildspec's `docker build`/`docker push` go to the Docker engine and to a
  `LocalRegistry` that stands for ECR (REGISTRY_HOST is the registry's `127.0.0.1:PORT`, REGISTRY_LOGIN
  `none`); afterwards the pushed manifest is recorded in the emulator's ECR (`put_image`) under the
  commit's tag and `latest`. Nothing else goes into the build: the Dockerfile's default base image (a
  public image CodeBuild pulls) is answered by the offline base image, tagged with that very name in the
  engine before the build (`answer_for_base_image`), so no BASE_IMAGE build argument is injected.
- `ProcessImageBuild`: `docker` on the build's PATH is `harness.pipeline.docker_standin`, which tags the
  source tree by its content hash; afterwards the tree is registered with the process runtime, which
  then runs exactly this tree for the training job and the endpoint. The tree is the Build action's
  unpacked source under the runner's work folder: keep that folder while its endpoints serve.

Neither adds anything to the source: the buildspec's wheelhouse (`container/wheels`, git-ignored) is
made by the buildspec's own `pip wheel`, and kept between builds by the project's LOCAL_CUSTOM_CACHE,
as CodeBuild keeps it (harness/pipeline/build_cache.py).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.pipeline import docker_standin
from harness.pipeline.docker_standin import STATE_ENV
from harness.pipeline.image_registry import LocalRegistry, record_in_ecr
from harness.pipeline.model import ActionFailed

# The buildspec's exported variables this module reads (deployer/buildspec.yml).
IMAGE_URI = "IMAGE_URI"
IMAGE_DIGEST = "IMAGE_DIGEST"
COMMIT_ID = "COMMIT_ID"


_DEFAULT_BASE = re.compile(r"^ARG BASE_IMAGE=(\S+)\s*$", re.MULTILINE)


def dockerfile_base_image(dockerfile: Path) -> str:
    """The Dockerfile's default base image (`ARG BASE_IMAGE=...`), or "" when it declares none."""
    if not dockerfile.is_file():
        return ""
    match = _DEFAULT_BASE.search(dockerfile.read_text(encoding="utf-8"))
    return match.group(1) if match else ""


def answer_for_base_image(local_image: str, reference: str, docker: str = "docker") -> None:
    """Tags `local_image` as `reference` in the engine unless `reference` is already there, so that the
    classic builder's `FROM reference` finds it without pulling (the engine here is offline)."""
    if not reference or reference == local_image:
        return
    inspect = [docker, "image", "inspect", "--format", "{{.Id}}", reference]
    if subprocess.run(inspect, capture_output=True, check=False, timeout=60).returncode == 0:
        return
    tagged = subprocess.run(
        [docker, "tag", local_image, reference], capture_output=True, text=True, check=False, timeout=60
    )
    if tagged.returncode != 0:
        raise ActionFailed(
            f"cannot answer for the base image {reference} with {local_image}: {tagged.stderr.strip()}"
        )


def _exported(exported: Mapping[str, str], name: str) -> str:
    value = exported.get(name, "")
    if not value:
        raise ActionFailed(f"the buildspec exported no {name}")
    return value


class DockerImageBuild:
    def __init__(self, registry: LocalRegistry, ecr: Any, base_image: str = "") -> None:
        self._registry = registry
        self._ecr = ecr
        self._base_image = base_image

    def environment(self, work_dir: Path) -> Mapping[str, str]:
        del work_dir
        # The local registry stands for ECR (as the emulator's endpoint stands for AWS's): where, not what.
        return {"REGISTRY_HOST": self._registry.host, "REGISTRY_LOGIN": "none"}

    def prepare(self, source_dir: Path) -> None:
        if self._base_image:
            reference = dockerfile_base_image(source_dir / "container" / "Dockerfile")
            answer_for_base_image(self._base_image, reference)

    def finish(self, source_dir: Path, exported: Mapping[str, str]) -> Mapping[str, str]:
        del source_dir
        uri, digest = _exported(exported, IMAGE_URI), _exported(exported, IMAGE_DIGEST)
        repository_with_host = uri.partition("@")[0]
        prefix = f"{self._registry.host}/"
        if not repository_with_host.startswith(prefix):
            raise ActionFailed(f"the image {uri} was not pushed to the local registry {self._registry.host}")
        repository = repository_with_host[len(prefix) :]
        commit = exported.get(COMMIT_ID, "")
        for tag in [t for t in (commit[:12], "latest") if t]:
            recorded = record_in_ecr(self._ecr, self._registry, repository, digest, tag)
            if recorded != digest:
                raise ActionFailed(f"the registry holds {recorded} for {uri}, not the pushed digest")
        return {}


class ProcessImageBuild:
    def __init__(self, register: Callable[[Path], str]) -> None:
        self._register = register  # harness.compute.process.ProcessRuntime.register

    def environment(self, work_dir: Path) -> Mapping[str, str]:
        bin_dir = work_dir / "standin-bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        docker = bin_dir / "docker"
        # The module's file by path, not `from harness.pipeline...`: importing the package would load
        # boto3 and the pipeline runner in each of the build's four `docker` calls (0.4 s apiece idle).
        standin = Path(docker_standin.__file__).resolve()
        program = f"import runpy\nrunpy.run_path({str(standin)!r}, run_name='__main__')\n"
        docker.write_text(f"#!{sys.executable}\n{program}", encoding="utf-8")
        docker.chmod(docker.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            STATE_ENV: str(work_dir / "standin-tags.json"),
            "REGISTRY_LOGIN": "none",
        }

    def prepare(self, source_dir: Path) -> None:
        del source_dir

    def finish(self, source_dir: Path, exported: Mapping[str, str]) -> Mapping[str, str]:
        digest = _exported(exported, IMAGE_DIGEST)
        registered = self._register(source_dir)
        if registered != digest:
            raise ActionFailed(f"the build tagged {digest} but the source tree's digest is {registered}")
        return {}


def standin_tags(work_dir: Path) -> dict[str, str]:
    """The tags the docker stand-in recorded in a build (for tests and reports)."""
    path = work_dir / "standin-tags.json"
    return dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else {}
