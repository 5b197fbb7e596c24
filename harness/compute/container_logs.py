"""Training and serving containers' logs in CloudWatch Logs, where SageMaker puts them.

SageMaker sends a container's stdout and stderr to CloudWatch Logs (SageMaker developer guide, "Log
Amazon SageMaker AI Events with Amazon CloudWatch": log groups and streams):
- a training job's: log group `/aws/sagemaker/TrainingJobs`, one stream per instance named
  `<job name>/algo-<n>-<epoch seconds>`;
- an endpoint's: log group `/aws/sagemaker/Endpoints/<endpoint name>`, one stream per instance named
  `<production variant name>/<instance id>`.
Consoles and users read them there (`aws logs filter-log-events`), so the harness writes a container's
log to the emulator's CloudWatch Logs when the container ends: a job when it ends, a serving container
when it stops, dies or fails to start (SageMaker streams them while they run; the local console polls).
Written with the execution role's credentials, as SageMaker writes them (CreateModel and
CreateTrainingJob: the role needs logs:CreateLogStream and logs:PutLogEvents).

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
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
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


def write_log(client: Any, group: str, stream: str, log_text: str) -> None:
    """Creates the group (unless it exists) and the stream, and puts the log's lines in batches."""
    with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
        client.create_log_group(logGroupName=group)
    client.create_log_stream(logGroupName=group, logStreamName=stream)
    lines = log_text.splitlines() or ["(the container wrote nothing)"]
    for batch in batches(lines, int(time.time() * 1000)):
        client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)


class ContainerLogPublisher:
    """Writes ended containers' logs to CloudWatch Logs, as the container's role when a client for it
    is given, else through `logs_client()` (the emulator's). Never raises: a log that cannot be written
    (the role may not, the emulator is going away) is logged, and the job's or endpoint's outcome stands."""

    def __init__(self, logs_client: Callable[[], Any]) -> None:
        self._logs_client = logs_client

    def training_job(
        self,
        job_name: str,
        log_text: str,
        started_s: float | None = None,
        logs_client: Callable[[], Any] | None = None,
    ) -> None:
        stream = stream_name(job_name, started_s if started_s is not None else time.time())
        self._write(LOG_GROUP, stream, log_text, logs_client, f"training job {job_name}")

    def endpoint(
        self,
        endpoint_name: str,
        variant_name: str,
        instance_id: str,
        log_text: str,
        logs_client: Callable[[], Any] | None = None,
    ) -> None:
        group = f"{ENDPOINT_LOG_GROUP_PREFIX}{endpoint_name}"
        self._write(
            group, f"{variant_name}/{instance_id}", log_text, logs_client, f"endpoint {endpoint_name}"
        )

    def _write(
        self, group: str, stream: str, log_text: str, logs_client: Callable[[], Any] | None, owner: str
    ) -> None:
        try:
            write_log((logs_client or self._logs_client)(), group, stream, log_text)
        except Exception as error:  # the emulator is going away, or refuses: the container's work stands
            LOG.warning("%s: a container's log did not reach CloudWatch Logs: %s", owner, error)
