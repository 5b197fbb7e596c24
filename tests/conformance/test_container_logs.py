"""A training job's container log in CloudWatch Logs, where SageMaker writes it.

SageMaker developer guide, "Log Amazon SageMaker AI Events with Amazon CloudWatch": a training job's
logs are in the log group `/aws/sagemaker/TrainingJobs`, one stream per instance,
`<training job name>/algo-<instance number>-<epoch seconds>`. CloudWatch Logs API reference,
PutLogEvents: at most 10,000 events and 1,048,576 bytes a batch (each event counted as its UTF-8 size
plus 26 bytes).
"""

from __future__ import annotations

import re

import pytest

from harness.compute.container_logs import LOG_GROUP, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, batches
from tests.harness.planes import Harness, training_request, wait_until
from tests.harness.standin import write_standin_tree

ROWS = b"Query,Intent\nhi,greet\nhello,greet\nbye,leave\n"


def test_a_training_jobs_log_is_in_its_cloudwatch_stream(
    conformance_harness: Harness, tmp_path_factory: pytest.TempPathFactory
) -> None:
    harness = conformance_harness
    image = harness.image_uri(write_standin_tree(tmp_path_factory.mktemp("logs-standin")))
    s3 = harness.client("s3")
    s3.create_bucket(Bucket="logs-conformance")
    s3.put_object(Bucket="logs-conformance", Key="data/part.csv", Body=ROWS)
    sagemaker = harness.client("sagemaker")
    name = "logs-conformance-job"
    sagemaker.create_training_job(
        **training_request(name, image, "s3://logs-conformance/data/", "s3://logs-conformance/out/")
    )
    wait_until(
        lambda: sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"],
        lambda status: status in ("Completed", "Failed", "Stopped"),
        timeout=120,
    )
    logs = harness.client("logs")
    [stream] = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
    assert re.fullmatch(rf"{name}/algo-1-\d{{10}}", stream["logStreamName"])
    events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"])["events"]
    local = harness.plane.training.get("123456789012", "us-east-1", name)
    assert local is not None
    assert [event["message"] for event in events] == local.log_text().splitlines()


def test_batches_stay_within_put_log_events_limits() -> None:
    many = [f"line {index}" for index in range(MAX_BATCH_EVENTS + 5)]
    sizes = [len(batch) for batch in batches(many, 0)]
    assert sizes == [MAX_BATCH_EVENTS, 5]
    wide = ["x" * 200_000 for _ in range(12)]
    for batch in batches(wide, 0):
        assert sum(len(e["message"].encode()) + 26 for e in batch) <= MAX_BATCH_BYTES
    [[cut]] = list(batches(["é" * 300_000], 0))
    assert len(cut["message"].encode()) <= 256 * 1024 - 26
