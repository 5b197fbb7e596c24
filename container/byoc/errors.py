"""Errors of the container and how a failed `train` reports itself.

A `UserError` is something the person who started the job can fix (bad data, bad hyperparameters, a
missing channel); any other exception is a framework error (a bug or the machine). Both end the process
with a reason written once to `/opt/ml/output/failure` (at most 1024 characters, which SageMaker shows
as the job's FailureReason) and a deliberate exit code:

- 0: success.
- 1: framework error (unexpected exception).
- 2: user error (fix the input and run again).
- 143 (128 + SIGTERM): stopped by SIGTERM before training finished; no model was written.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FRAMEWORK_ERROR = 1
EXIT_USER_ERROR = 2
EXIT_STOPPED = 143

FAILURE_REASON_LIMIT = 1024


class UserError(Exception):
    """A failure the job's owner can act on; its message is shown to them as is."""


class ModelLoadError(Exception):
    """A model directory that cannot be served (missing or corrupt files)."""


class TrainingStopped(Exception):
    """Training was asked to stop (SIGTERM) and stopped at a step boundary."""


def failure_reason(error: BaseException) -> str:
    """The text a person reads: user errors as they are, others named as internal errors."""
    if isinstance(error, UserError):
        text = f"UserError: {error}"
    elif isinstance(error, TrainingStopped):
        text = f"Stopped: {error}"
    else:
        text = f"InternalError: {type(error).__name__}: {error}"
    return truncate_reason(text)


def truncate_reason(text: str, limit: int = FAILURE_REASON_LIMIT) -> str:
    """Cuts `text` to at most `limit` characters, marking the cut."""
    if len(text) <= limit:
        return text
    marker = " [truncated]"
    return text[: limit - len(marker)] + marker


def write_failure(path: Path, reason: str) -> bool:
    """Writes the failure reason once; returns False (and writes nothing) if a reason is already there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(truncate_reason(reason))
    except FileExistsError:
        return False
    return True


def exit_code(error: BaseException) -> int:
    if isinstance(error, UserError):
        return EXIT_USER_ERROR
    if isinstance(error, TrainingStopped):
        return EXIT_STOPPED
    return EXIT_FRAMEWORK_ERROR
