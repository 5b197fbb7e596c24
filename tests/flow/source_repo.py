"""A small git repository with what the pipeline builds (container/, the buildspec, training.json).

The tests commit changes to it (new hyperparameters) without touching this project's own git state.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.gitrepo import git

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_JSON = Path("deployer") / "training.json"


def make_source_repository(path: Path) -> Path:
    """A fresh repository holding this project's container/ and the deployer's build files, committed."""
    ignore = shutil.ignore_patterns("wheels", "__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "container", path / "container", ignore=ignore)
    (path / "deployer").mkdir(parents=True)
    for name in ("buildspec.yml", "training.json"):
        shutil.copyfile(REPO_ROOT / "deployer" / name, path / "deployer" / name)
    (path / ".gitignore").write_text("container/wheels/\n", encoding="utf-8")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "the model as the project ships it")
    return path


def commit_hyperparameters(repository: Path, message: str, **changes: str) -> str:
    """Changes deployer/training.json's hyperparameters, commits, and returns the commit id."""
    path = repository / TRAINING_JSON
    document = json.loads(path.read_text(encoding="utf-8"))
    document["Hyperparameters"].update(changes)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    git(repository, "commit", "-q", "-am", message)
    return git(repository, "rev-parse", "HEAD")


def hyperparameters(repository: Path) -> dict[str, str]:
    document = json.loads((repository / TRAINING_JSON).read_text(encoding="utf-8"))
    return dict(document["Hyperparameters"])
