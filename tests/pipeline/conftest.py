"""Fixtures of the pipeline tests: real git repositories in temporary folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.gitrepo import git

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A repository with one commit on `main`: README.md, .gitignore (ignores *.log), tool.sh."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Author")
    git(root, "config", "user.email", "author@example.com")
    (root / "README.md").write_text("hello\n")
    (root / ".gitignore").write_text("*.log\n")
    (root / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    (root / "tool.sh").chmod(0o755)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first commit")
    return root


@pytest.fixture
def image_source(tmp_path: Path) -> Path:
    """A repository holding copies of the project's container/ (no wheels), deployer/buildspec.yml and
    deployer/training.json: what the deployer's buildspec needs."""
    root = tmp_path / "src-repo"
    root.mkdir()
    shutil.copytree(
        REPO_ROOT / "container", root / "container", ignore=shutil.ignore_patterns("wheels", "__pycache__")
    )
    (root / "deployer").mkdir()
    for name in ("buildspec.yml", "training.json"):
        shutil.copyfile(REPO_ROOT / "deployer" / name, root / "deployer" / name)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-q", "-m", "image source")
    return root
