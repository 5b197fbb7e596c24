"""What pytest-xdist's workers share: a folder for the whole run and a lock to build into it once.

`scripts/test.sh` runs the suite on every core with `pytest -n auto --dist loadfile`: a file's tests stay on
one worker (so its module fixtures are built once), and a session fixture that every worker needs (the
trained model of `tests/container/`) is built by the first worker that asks, under an exclusive `flock`,
and read by the others from the run's shared folder. Without xdist the folder is the session's own.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every worker of this run sees: the parent of the workers' base temporary folders
    (pytest-xdist gives each worker `<run>/popen-gwN`), else this session's own base folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def built_once(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[Path, bool]]:
    """Holds the run's lock for `name` and yields its folder and whether it is already built.

    The caller builds into the folder when it is not, and the build counts as done only when the block
    ends without an exception: a failed build leaves nothing that a later worker would take as built.
    """
    folder = run_folder(tmp_path_factory) / name
    marker = folder.with_name(f".{name}.built")
    with open(folder.with_name(f".{name}.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = marker.exists()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder, built
        marker.touch()
