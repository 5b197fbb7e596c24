"""Progress lines for a terminal: one readable line per pipeline event (the CLI decides where they go).

`ProgressPrinter(write)` is an event sink: stage and action starts and ends with elapsed times, and the
actions' progress lines (build log, Lambda summaries) when `verbose`. Times are seconds since the
execution started.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.pipeline.model import PipelineEvent


class ProgressPrinter:
    def __init__(self, write: Callable[[str], None], verbose: bool = False) -> None:
        self._write = write
        self._verbose = verbose
        self._started: float | None = None

    def __call__(self, event: PipelineEvent) -> None:
        line = self.format(event)
        if line is not None:
            self._write(line)

    def format(self, event: PipelineEvent) -> str | None:
        if event.kind == "pipeline-started":
            self._started = event.time
        clock = f"[{event.time - (self._started or event.time):7.1f}s]"
        took = f" ({event.elapsed_s:.1f} s)" if event.elapsed_s is not None else ""
        where = f"{event.stage}/{event.action}" if event.action else (event.stage or "")
        if event.kind == "pipeline-started":
            return f"{clock} pipeline {event.message} execution {event.execution_id}"
        if event.kind == "pipeline-finished":
            reason = f": {event.message}" if event.message else ""
            return f"{clock} pipeline {event.status}{took}{reason}"
        if event.kind == "stage-started":
            return f"{clock} {where} ..."
        if event.kind == "stage-finished":
            return f"{clock} {where} {event.status}{took}"
        if event.kind == "action-finished" and (event.status == "Failed" or self._verbose):
            return f"{clock}   {where} {event.status}{took}: {event.message}"
        if event.kind == "action-progress" and self._verbose:
            return f"{clock}   {where} | {event.message}"
        return None
