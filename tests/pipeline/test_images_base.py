"""The offline base image answers for the Dockerfile's public base image name (harness.pipeline.images).

The CodeBuild project passes no BASE_IMAGE, so CodeBuild builds `FROM` the Dockerfile's default, a public
image it pulls. Here the engine is offline: the harness tags the offline image with that very name before
the build, and the classic builder uses a local image without pulling (Docker reference, "docker build":
`--pull` is what forces a pull). The engine itself is a stand-in `docker` script recording its calls (a
mock: these tests run without an engine; tests/docker/ build for real when MLOPS_REQUIRE_DOCKER=1).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from harness.pipeline.images import answer_for_base_image, dockerfile_base_image
from harness.pipeline.model import ActionFailed

REPO = Path(__file__).resolve().parents[2]
PUBLIC = "public.ecr.aws/docker/library/python:3.11-slim-bookworm"


def _fake_docker(tmp_path: Path, present: set[str], tag_fails: bool = False) -> tuple[Path, Path]:
    calls = tmp_path / "calls.jsonl"
    script = tmp_path / "docker"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"present = {sorted(present)!r}\n"
        "if sys.argv[1:3] == ['image', 'inspect']:\n"
        "    sys.exit(0 if sys.argv[-1] in present else 1)\n"
        "if sys.argv[1] == 'tag':\n"
        f"    sys.exit({1 if tag_fails else 0})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, calls


def _calls(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_projects_dockerfile_names_the_public_base_image() -> None:
    assert dockerfile_base_image(REPO / "container" / "Dockerfile") == PUBLIC


def test_a_missing_public_name_is_tagged_from_the_offline_image(tmp_path: Path) -> None:
    docker, calls = _fake_docker(tmp_path, present={"mlops-base:bookworm"})
    answer_for_base_image("mlops-base:bookworm", PUBLIC, docker=str(docker))
    assert _calls(calls)[-1] == ["tag", "mlops-base:bookworm", PUBLIC]


def test_a_present_public_name_is_left_alone(tmp_path: Path) -> None:
    docker, calls = _fake_docker(tmp_path, present={"mlops-base:bookworm", PUBLIC})
    answer_for_base_image("mlops-base:bookworm", PUBLIC, docker=str(docker))
    assert all(call[0] != "tag" for call in _calls(calls))


def test_a_failed_tag_fails_the_build_with_the_engines_message(tmp_path: Path) -> None:
    docker, _ = _fake_docker(tmp_path, present=set(), tag_fails=True)
    with pytest.raises(ActionFailed, match="cannot answer for the base image"):
        answer_for_base_image("mlops-base:bookworm", PUBLIC, docker=str(docker))


def test_a_dockerfile_without_a_default_needs_no_answer(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    assert dockerfile_base_image(dockerfile) == ""
    assert dockerfile_base_image(tmp_path / "missing") == ""
