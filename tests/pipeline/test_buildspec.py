"""The buildspec runner: real buildspecs run in a real shell, phases and all."""

from __future__ import annotations

import os
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
