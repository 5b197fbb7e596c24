"""The one `git()` helper of the tests: runs git in a repository with a fixed test identity."""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = ("-c", "user.name=Test Author", "-c", "user.email=author@example.com")


def git(repository: Path, *args: str) -> str:
    """`git -C repository args...` (raises CalledProcessError on failure); its stdout, stripped."""
    done = subprocess.run(
        ["git", "-C", str(repository), *IDENTITY, *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()
