"""The Source action on real git repositories."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from harness.pipeline.source import GitError, archive_commit, snapshot_commit
from tests.pipeline.conftest import git


def test_clean_working_tree_is_head(repository: Path) -> None:
    commit = snapshot_commit(repository)
    assert commit.commit_id == git(repository, "rev-parse", "HEAD")
    assert commit.branch == "main"
    assert commit.message == "first commit"


def test_dirty_working_tree_becomes_a_commit_without_touching_branch_or_index(repository: Path) -> None:
    head = git(repository, "rev-parse", "HEAD")
    (repository / "README.md").write_text("changed\n")
    (repository / "new.txt").write_text("untracked\n")
    (repository / "debug.log").write_text("ignored\n")
    (repository / "staged.txt").write_text("staged\n")
    git(repository, "add", "staged.txt")
    status_before = git(repository, "status", "--porcelain")

    commit = snapshot_commit(repository)

    assert commit.commit_id != head and commit.from_working_tree
    assert git(repository, "rev-parse", f"{commit.commit_id}^") == head
    files = git(repository, "ls-tree", "-r", "--name-only", commit.commit_id).splitlines()
    assert sorted(files) == [".gitignore", "README.md", "new.txt", "staged.txt", "tool.sh"]
    assert git(repository, "show", f"{commit.commit_id}:README.md") == "changed"
    # The user's branch, index and working tree are as they were.
    assert git(repository, "rev-parse", "HEAD") == head
    assert git(repository, "status", "--porcelain") == status_before
    assert (repository / "README.md").read_text() == "changed\n"

    # The same working tree gives the same tree again (the commit differs only by its time).
    again = snapshot_commit(repository)
    tree = git(repository, "rev-parse", f"{commit.commit_id}^{{tree}}")
    assert git(repository, "rev-parse", f"{again.commit_id}^{{tree}}") == tree


def test_a_given_ref_is_taken_as_it_is(repository: Path) -> None:
    first = git(repository, "rev-parse", "HEAD")
    git(repository, "checkout", "-q", "-b", "feature")
    (repository / "feature.txt").write_text("f\n")
    git(repository, "add", "-A")
    git(repository, "commit", "-q", "-m", "feature work")
    git(repository, "checkout", "-q", "main")

    by_branch = snapshot_commit(repository, "feature")
    assert by_branch.message == "feature work" and by_branch.branch == "feature"
    assert not by_branch.from_working_tree
    assert snapshot_commit(repository, first[:10]).commit_id == first
    with pytest.raises(GitError, match="no-such-ref"):
        snapshot_commit(repository, "no-such-ref")


def test_archive_is_the_commits_files_with_modes(repository: Path, tmp_path: Path) -> None:
    commit = snapshot_commit(repository)
    archive = archive_commit(repository, commit.commit_id, tmp_path / "source.zip")
    with zipfile.ZipFile(archive) as opened:
        assert sorted(opened.namelist()) == [".gitignore", "README.md", "tool.sh"]
        assert (opened.getinfo("tool.sh").external_attr >> 16) & 0o111
    again = archive_commit(repository, commit.commit_id, tmp_path / "again.zip")
    assert again.read_bytes() == archive.read_bytes()


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not a git repository"):
        snapshot_commit(tmp_path)


def test_an_empty_repository_snapshots_its_files(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "only.txt").write_text("x\n")
    commit = snapshot_commit(tmp_path)
    assert git(tmp_path, "ls-tree", "--name-only", commit.commit_id) == "only.txt"
