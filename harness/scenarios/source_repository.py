"""The scenario's own source repository: a scratch clone whose commits the scenario's steps make.

`scratch_repository` clones this repository (`git clone --shared`, nothing checked out) and makes its
first commit from the origin's working tree (tracked and untracked, not ignored files), with the
scenario's hyperparameters written into deployer/training.json (the pipeline's hyperparameters);
`commit_changes` writes a step's files and hyperparameter changes and commits (an empty commit when
nothing changes: a new commit is still a new source revision). The origin's working tree, index and
branches are only read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from harness.pipeline import source
from harness.scenarios.interface import HarnessError

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
TRAINING_JSON: Final = Path("deployer") / "training.json"
# The identity of the scenario's commits (the clone has no user configuration of its own).
GIT_IDENTITY: Final = {
    "GIT_AUTHOR_NAME": "mlops scenario",
    "GIT_AUTHOR_EMAIL": "scenario@localhost",
    "GIT_COMMITTER_NAME": "mlops scenario",
    "GIT_COMMITTER_EMAIL": "scenario@localhost",
}


def git(repository: Path, *args: str) -> str:
    """git in the scratch clone, as the scenario's author; a failure is the step's HarnessError."""
    try:
        return source.git(repository, *args, env=GIT_IDENTITY)
    except source.GitError as error:
        raise HarnessError(str(error)) from error


def scratch_repository(
    destination: Path, hyperparameters: Mapping[str, str | int | float], origin: Path = REPO_ROOT
) -> Path:
    """A clone of `origin` whose HEAD is `origin`'s working tree as a commit, with `hyperparameters`
    written into deployer/training.json. `origin`'s own git state is only read."""
    git(origin, "clone", "--quiet", "--shared", "--no-checkout", str(origin), str(destination))
    # The working tree (tracked and untracked, not ignored) into the clone's index and objects.
    git(destination, "--work-tree", str(origin), "add", "--all", "--", ".")
    git(destination, "commit", "--quiet", "--allow-empty", "-m", "scenario base: the working tree")
    git(destination, "reset", "--quiet", "--hard")
    if hyperparameters:
        write_hyperparameters(destination, hyperparameters)
        git(destination, "commit", "--quiet", "--allow-empty", "-am", "scenario settings: hyperparameters")
    return destination


def write_hyperparameters(repository: Path, changes: Mapping[str, str | int | float]) -> None:
    """Updates deployer/training.json's `Hyperparameters` (strings, as SageMaker passes them)."""
    path = repository / TRAINING_JSON
    document = json.loads(path.read_text(encoding="utf-8"))
    hyperparameters = document.get("Hyperparameters")
    if not isinstance(hyperparameters, dict):
        raise HarnessError(f"{path} has no Hyperparameters object")
    hyperparameters.update({key: str(value) for key, value in changes.items()})
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def commit_changes(
    repository: Path,
    message: str,
    files: Mapping[str, str],
    hyperparameters: Mapping[str, str | int | float],
) -> str:
    """Writes `files` (repository path -> content) and the hyperparameter changes, commits everything
    (an empty commit when nothing changed) and returns the commit id."""
    root = repository.resolve()
    for name, content in files.items():
        path = (root / name).resolve()
        if not path.is_relative_to(root) or path == root:
            raise HarnessError(f"{name!r} is not a path inside the repository")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    if hyperparameters:
        write_hyperparameters(root, hyperparameters)
    git(root, "add", "--all", "--", ".")
    git(root, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")
