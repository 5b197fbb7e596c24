"""The scenario's scratch source repository (harness/scenarios/source_repository.py), on a real git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.scenarios import source_repository
from harness.scenarios.interface import HarnessError
from harness.scenarios.source_repository import commit_changes, scratch_repository
from tests.gitrepo import git


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A user's repository: one commit, then an uncommitted edit and an untracked and an ignored file."""
    root = tmp_path / "origin"
    (root / "deployer").mkdir(parents=True)
    (root / "deployer" / "training.json").write_text(
        json.dumps({"Comment": "c", "Hyperparameters": {"epochs": "8", "seed": "42"}}), encoding="utf-8"
    )
    (root / "app.txt").write_text("committed\n", encoding="utf-8")
    (root / ".gitignore").write_text("ignored.txt\n", encoding="utf-8")
    git(root.parent, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    (root / "app.txt").write_text("edited, not committed\n", encoding="utf-8")
    (root / "new.txt").write_text("untracked\n", encoding="utf-8")
    (root / "ignored.txt").write_text("ignored\n", encoding="utf-8")
    return root


def test_the_scratch_clone_starts_from_the_working_tree_and_leaves_the_user_repository_alone(
    origin: Path, tmp_path: Path
) -> None:
    head, status = git(origin, "rev-parse", "HEAD"), git(origin, "status", "--porcelain")
    scratch = scratch_repository(tmp_path / "scratch", {"epochs": 2, "learning_rate": 0.0015}, origin)

    assert (scratch / "app.txt").read_text(encoding="utf-8") == "edited, not committed\n"
    assert (scratch / "new.txt").is_file()
    assert not (scratch / "ignored.txt").exists()
    training = json.loads((scratch / "deployer" / "training.json").read_text(encoding="utf-8"))
    assert training["Hyperparameters"] == {"epochs": "2", "seed": "42", "learning_rate": "0.0015"}
    assert git(scratch, "status", "--porcelain") == ""
    assert head in git(scratch, "log", "--format=%H").splitlines()  # the user's history is its history
    assert git(origin, "rev-parse", "HEAD") == head
    assert git(origin, "status", "--porcelain") == status
    assert git(origin, "branch", "--format=%(refname:short)") == "main"


def test_a_commit_writes_files_and_hyperparameters_and_is_a_new_revision(
    origin: Path, tmp_path: Path
) -> None:
    scratch = scratch_repository(tmp_path / "scratch", {}, origin)
    first = commit_changes(scratch, "change", {"sub/dir/file.txt": "hello\n"}, {"seed": 7})
    assert git(scratch, "rev-parse", "HEAD") == first
    assert git(scratch, "show", f"{first}:sub/dir/file.txt") == "hello"
    shown = json.loads(git(scratch, "show", f"{first}:deployer/training.json"))
    assert shown["Hyperparameters"]["seed"] == "7"
    assert git(scratch, "log", "-1", "--format=%s") == "change"

    again = commit_changes(scratch, "nothing changed", {}, {})
    assert again != first
    assert git(scratch, "rev-parse", f"{again}^") == first


def test_a_commit_refuses_paths_outside_the_repository(origin: Path, tmp_path: Path) -> None:
    scratch = scratch_repository(tmp_path / "scratch", {}, origin)
    with pytest.raises(HarnessError, match="not a path inside the repository"):
        commit_changes(scratch, "escape", {"../outside.txt": "x"}, {})
    assert not (tmp_path / "outside.txt").exists()


def test_a_failing_git_command_names_the_command_and_its_message(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="git rev-parse HEAD failed"):
        source_repository.git(tmp_path, "rev-parse", "HEAD")
