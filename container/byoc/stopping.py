"""The stop flag SIGTERM sets and the training loop checks between steps (`byoc.training` sets it,
`byoc.fitting` checks it)."""

from __future__ import annotations

import threading

from byoc.errors import TrainingStopped


class StopFlag:
    """Set by SIGTERM; the training loop checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def check(self, where: str) -> None:
        if self._event.is_set():
            raise TrainingStopped(f"SIGTERM received; training stopped {where}; no model was written")
