"""A training job's container log in CloudWatch Logs, where SageMaker puts it.

SageMaker sends a training container's stdout and stderr to CloudWatch Logs, log group
`/aws/sagemaker/TrainingJobs`, one stream per instance named `<job name>/algo-<n>-<epoch seconds>`
(SageMaker developer guide, "Log Amazon SageMaker AI Events with Amazon CloudWatch": log groups and
streams). Consoles and users read it there (`aws logs filter-log-events`), so the harness writes each
job's log to the emulator's CloudWatch Logs when the job ends (SageMaker streams it while the job runs;
the local console polls, so a job's log appears when it ends).

PutLogEvents limits (CloudWatch Logs API reference, PutLogEvents): at most 10,000 events and 1,048,576
bytes a batch, each event's size counted as its UTF-8 bytes plus 26; events in time order.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

LOG = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD_BYTES


def stream_name(job_name: str, started_s: float, host: int = 1) -> str:
    return f"{job_name}/algo-{host}-{int(started_s)}"


def batches(lines: list[str], timestamp_ms: int) -> Iterator[list[dict[str, Any]]]:
    """The log's lines as PutLogEvents batches within the API's limits (over-long lines are cut)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for line in lines:
        message = line.encode("utf-8")[:MAX_EVENT_BYTES].decode("utf-8", errors="ignore") or " "
        cost = len(message.encode("utf-8")) + EVENT_OVERHEAD_BYTES
        if batch and (len(batch) == MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append({"timestamp": timestamp_ms, "message": message})
        size += cost
    if batch:
        yield batch


class TrainingLogPublisher:
    """Writes ended training jobs' logs to CloudWatch Logs through `logs_client()` (the emulator's)."""

    def __init__(self, logs_client: Callable[[], Any]) -> None:
        self._logs_client = logs_client

    def publish(
        self,
        job_name: str,
        log_text: str,
        started_s: float | None = None,
        logs_client: Callable[[], Any] | None = None,
    ) -> None:
        """Never raises: a log that cannot be written (the role may not, the emulator is going away) is
        logged, the job's outcome stands. `logs_client`: the job's role's client, else the publisher's."""
        try:
            client = (logs_client or self._logs_client)()
            with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                client.create_log_group(logGroupName=LOG_GROUP)
            stream = stream_name(job_name, started_s if started_s is not None else time.time())
            client.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
            lines = log_text.splitlines() or ["(the container wrote nothing)"]
            for batch in batches(lines, int(time.time() * 1000)):
                client.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=batch)
        except Exception as error:  # the emulator is going away, or refuses: the job is unaffected
            LOG.warning("training job %s: its log did not reach CloudWatch Logs: %s", job_name, error)
