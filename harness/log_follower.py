"""Training progress while a stage runs: the epoch and metric lines of every training job's log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path


class TrainingLogFollower:
    """Prints the training jobs' epoch and metric lines (`epoch=..; train_loss=..;`, `accuracy=..;`)
    while a stage runs, by following every `train.log` under the compute plane's folder."""

    def __init__(self, root: Path, write: Callable[[str], None], interval_s: float = 0.5) -> None:
        self._root = root
        self._write = write
        self._interval_s = interval_s
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TrainingLogFollower:
        for path in self._root.glob("training-jobs/*/*/*/train.log"):
            self._offsets[path] = path.stat().st_size  # earlier jobs are not this run's progress
        self._thread = threading.Thread(target=self._follow, name="training-log", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._read_new()

    def _follow(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._read_new()

    def _read_new(self) -> None:
        for path in sorted(self._root.glob("training-jobs/*/*/*/train.log")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(complete)
            for line in complete.decode("utf-8", errors="replace").splitlines():
                if "train_loss=" in line or line.startswith("accuracy="):
                    self._write(f"             training {path.parent.name}: {line.strip()}")
