"""The buildspec runner: real buildspecs run in a real shell, phases and all."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from harness.pipeline.buildspec import (
    BuildspecError,
    collect_artifacts,
    parse_buildspec,
    run_buildspec,
)

SPEC = """
version: 0.2
env:
  variables:
    GREETING: from-buildspec
    OVERRIDDEN: buildspec
  exported-variables:
    - IMAGE_DIGEST
    - GREETING
    - NEVER_SET
phases:
  install:
    commands:
      - mkdir -p out
  pre_build:
    commands:
      - cd out
      - export IMAGE_DIGEST="sha256:$(printf '%s' "$GREETING" | sha256sum | cut -c1-64)"
  build:
    commands:
      - |
        echo "building in $(pwd)"
        printf '%s' "$OVERRIDDEN" > overridden.txt
      - echo "$CODEBUILD_BUILD_SUCCEEDING" > succeeding.txt
  post_build:
    commands:
      - echo done > post.txt
artifacts:
  base-directory: out
  files:
    - '**/*'
"""


def _env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], **extra}


def test_phases_share_one_shell_and_export_variables(tmp_path: Path) -> None:
    spec = parse_buildspec(SPEC)
    env = {**spec.variables, "OVERRIDDEN": "project", **_env()}
    lines: list[str] = []
    outcome = run_buildspec(spec, tmp_path, env, tmp_path / "logs" / "build.log", lines.append)

    assert outcome.succeeded, outcome.reason
    assert [p.name for p in outcome.phases] == ["install", "pre_build", "build", "post_build"]
    assert all(p.status == "SUCCEEDED" for p in outcome.phases)
    # `cd out` in pre_build is still in effect in build and post_build: one shell for all phases.
    assert (tmp_path / "out" / "overridden.txt").read_text() == "project"
    assert (tmp_path / "out" / "succeeding.txt").read_text().strip() == "1"
    assert (tmp_path / "out" / "post.txt").is_file()
    import hashlib

    expected = "sha256:" + hashlib.sha256(b"from-buildspec").hexdigest()
    assert outcome.exported == {"IMAGE_DIGEST": expected, "GREETING": "from-buildspec"}
    assert any(line.startswith("building in ") and line.endswith("/out") for line in lines)
    assert "[Container] Entering phase BUILD" in outcome.log_path.read_text()

    assert spec.artifacts is not None
    archive = collect_artifacts(spec.artifacts, tmp_path, tmp_path / "artifact.zip")
    with zipfile.ZipFile(archive) as opened:
        assert sorted(opened.namelist()) == ["overridden.txt", "post.txt", "succeeding.txt"]


def test_failed_build_phase_still_runs_post_build_and_fails(tmp_path: Path) -> None:
    spec = parse_buildspec(
        """
version: 0.2
phases:
  build:
    commands:
      - echo one
      - exit_status_7() { return 7; }; exit_status_7
      - echo never > never.txt
    finally:
      - echo cleanup > finally.txt
  post_build:
    commands:
      - echo "$CODEBUILD_BUILD_SUCCEEDING" > post.txt
"""
    )
    outcome = run_buildspec(spec, tmp_path, _env(), tmp_path / "build.log")

    assert not outcome.succeeded
    assert outcome.reason == "Error while executing command in phase BUILD: exit status 7"
    assert not (tmp_path / "never.txt").exists()
    assert (tmp_path / "finally.txt").is_file()
    assert (tmp_path / "post.txt").read_text().strip() == "0"
    assert [(p.name, p.status) for p in outcome.phases] == [("build", "FAILED"), ("post_build", "SUCCEEDED")]


def test_failed_pre_build_skips_the_rest_unless_continue(tmp_path: Path) -> None:
    aborting = parse_buildspec(
        "version: 0.2\nphases:\n  pre_build:\n    commands: [false]\n"
        "  build:\n    commands: [touch built]\n  post_build:\n    commands: [touch posted]\n"
    )
    outcome = run_buildspec(aborting, tmp_path, _env(), tmp_path / "a.log")
    assert not outcome.succeeded
    assert [p.name for p in outcome.phases] == ["pre_build"]
    assert not (tmp_path / "built").exists() and not (tmp_path / "posted").exists()

    continuing = parse_buildspec(
        "version: 0.2\nphases:\n  pre_build:\n    on-failure: CONTINUE\n    commands: [false]\n"
        "  build:\n    commands: [touch built]\n"
    )
    outcome = run_buildspec(continuing, tmp_path, _env(), tmp_path / "c.log")
    assert not outcome.succeeded  # the failed phase still fails the build
    assert (tmp_path / "built").exists()


def test_timeout_kills_the_build(tmp_path: Path) -> None:
    spec = parse_buildspec("version: 0.2\nphases:\n  build:\n    commands: ['sleep 30']\n")
    outcome = run_buildspec(spec, tmp_path, _env(), tmp_path / "t.log", timeout_s=0.5)
    assert not outcome.succeeded
    assert outcome.reason is not None and "timed out" in outcome.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 0.1\nphases: {}\n", "version 0.2"),
        ("version: 0.2\nenv:\n  parameter-store: {A: /a}\n", "parameter-store"),
        ("version: 0.2\nphases:\n  deploy: {commands: [ls]}\n", "unknown buildspec phases"),
        ("version: 0.2\nphases:\n  build: {on-failure: RETRY, commands: [ls]}\n", "on-failure"),
        ("[1, 2]", "must be a mapping"),
    ],
)
def test_unsupported_or_malformed_buildspecs_are_rejected(text: str, message: str) -> None:
    with pytest.raises(BuildspecError, match=message):
        parse_buildspec(text)


def test_no_matching_artifacts_is_an_error(tmp_path: Path) -> None:
    spec = parse_buildspec("version: 0.2\nphases: {}\nartifacts:\n  files: ['*.json']\n")
    assert spec.artifacts is not None
    with pytest.raises(BuildspecError, match="no matching artifact paths"):
        collect_artifacts(spec.artifacts, tmp_path, tmp_path / "a.zip")


def test_runtime_versions_pin_the_builds_python(tmp_path: Path) -> None:
    """CodeBuild user guide, "Runtime versions" / buildspec reference `phases/install/runtime-versions`:
    the install phase selects the runtime, and a version the image lacks fails the install phase (and
    with it the build). The local runner checks the build host's python3 against the pin."""
    import sys

    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    template = "version: 0.2\nphases:\n  install:\n    runtime-versions:\n      python: '{v}'\n" + (
        "  build:\n    commands: ['python3 -c \"import sys; print(sys.version_info[:2])\" > v.txt']\n"
    )
    ok = run_buildspec(parse_buildspec(template.format(v=here)), tmp_path, _env(), tmp_path / "ok.log")
    assert ok.succeeded, (tmp_path / "ok.log").read_text()
    assert "Selecting python runtime version" in (tmp_path / "ok.log").read_text()
    wrong = run_buildspec(parse_buildspec(template.format(v="2.7")), tmp_path, _env(), tmp_path / "no.log")
    failed = wrong.failed_phase()
    assert not wrong.succeeded and failed is not None and failed.name == "install"
    assert "Unknown runtime version named 2.7 of python" in (tmp_path / "no.log").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 0.2\nphases:\n  build: {runtime-versions: {python: '3.11'}}\n", "install phase only"),
        ("version: 0.2\nphases:\n  install: {runtime-versions: {java: corretto17}}\n", "'java' is not"),
        ("version: 0.2\nphases:\n  install: {runtime-versions: {python: latest}}\n", "MAJOR.MINOR"),
    ],
)
def test_runtime_versions_the_runner_cannot_honour_are_rejected(text: str, message: str) -> None:
    with pytest.raises(BuildspecError, match=message):
        parse_buildspec(text)


def test_the_deployers_buildspec_pins_python_311() -> None:
    """The image's Python is CPython 3.11 (container/Dockerfile), so the buildspec's `pip wheel` must run
    under 3.11 for the wheels to install there."""
    repo = Path(__file__).resolve().parents[2]
    spec = parse_buildspec((repo / "deployer" / "buildspec.yml").read_text(encoding="utf-8"))
    install = next(phase for phase in spec.phases if phase.name == "install")
    assert install.runtime_versions == (("python", "3.11"),)


def _image_uri_commands() -> list[str]:
    """The deployer's post_build commands that set IMAGE_URI and check it."""
    repo = Path(__file__).resolve().parents[2]
    spec = parse_buildspec((repo / "deployer" / "buildspec.yml").read_text(encoding="utf-8"))
    post_build = next(phase for phase in spec.phases if phase.name == "post_build")
    commands = [c for c in post_build.commands if "IMAGE_URI=" in c or c.startswith('test -n "$IMAGE_URI"')]
    assert len(commands) == 2, post_build.commands
    return commands


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("127.0.0.1:54143/gptneo-intent", "127.0.0.1:54143/gptneo-intent@sha256:" + "f5" * 32),
        ("127.0.0.1:33773/gptneo-intent", "127.0.0.1:33773/gptneo-intent@sha256:" + "f5" * 32),
        ("127.0.0.1:54143/gptneo", None),  # a prefix of a listed repository is not that repository
    ],
)
def test_the_deployers_image_uri_is_this_repositorys_digest(
    tmp_path: Path, repository: str, expected: str | None
) -> None:
    """An image pushed to two repositories lists both in RepoDigests (measured on this machine's engine:
    the same build pushed by a second `mlops run` to its local registry on another port, the first
    run's entry sorted first); the buildspec takes the entry of the repository it pushed to, and fails
    when there is none, rather than the first entry."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    listed = [f"127.0.0.1:{port}/gptneo-intent@sha256:{'f5' * 32}" for port in (33773, 54143)]
    # Mocked: `docker inspect` of an image with two RepoDigests, as the engine printed it (a real engine
    # here would need the image pushed to two registries first).
    docker.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(listed) + "\n", encoding="utf-8")
    docker.chmod(0o755)
    script = "set -e\n" + "\n".join(_image_uri_commands()) + '\nprintf "%s" "$IMAGE_URI"\n'
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "IMAGE_REPO": repository, "IMAGE_TAG": "t"}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=False)
    if expected is None:
        assert done.returncode != 0
        assert f"no digest of {repository} among the image's RepoDigests" in done.stderr
    else:
        assert (done.returncode, done.stdout) == (0, expected), done.stderr
