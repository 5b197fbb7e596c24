"""The process runtime's `docker` stand-in: the commands the deployer's buildspec uses, and no others."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.compute.process import tree_digest
from harness.pipeline.docker_standin import STATE_ENV, main


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "container").mkdir()
    (tmp_path / "container" / "train").write_text("#!/usr/bin/env python3\n")
    monkeypatch.setenv(STATE_ENV, str(tmp_path / "tags.json"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_build_push_inspect(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digest = tree_digest(tree)
    assert main(["build", "--label", "x=y", "-t", "reg/repo:abc", "-t", "reg/repo:latest", "container"]) == 0
    assert main(["push", "reg/repo:abc"]) == 0
    assert main(["inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", "reg/repo:abc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == f"abc: digest: {digest} size: 0"
    assert lines[-1] == f"reg/repo@{digest}"


def test_anything_else_is_refused(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "image"]) == 1
    assert main(["build", "--squash", "-t", "a:b", "container"]) == 1
    assert main(["build", "-t", "a:b", "."]) == 1  # the context must be the container folder
    assert main(["push", "never-built:tag"]) == 1
    errors = capsys.readouterr().err
    assert "not supported" in errors and "no image 'never-built:tag'" in errors
