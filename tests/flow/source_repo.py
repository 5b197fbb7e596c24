"""A small git repository with what the pipeline builds (container/, the buildspec, training.json).

The tests commit changes to it (new hyperparameters) without touching this project's own git state.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAINING_JSON = Path("deployer") / "training.json"


def git(repository: Path, *args: str) -> str:
    identity = ["-c", "user.name=flow-test", "-c", "user.email=flow-test@example.com"]
    done = subprocess.run(
        ["git", "-C", str(repository), *identity, *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


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
