"""The run report reads the log of the training job that ran last (after a capacity retry, `N-train-2`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.run_report import last_training_job
from tests.conformance.sfn_helpers import deployer_definition, machine, run
from tests.harness.planes import Harness, running_harness
from tests.harness.standin import write_standin_tree


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_harness(tmp_path_factory.mktemp("report"), startup_limit_s=10.0) as running:
        running.emulator.context.step_functions.set_scale(0.01)
        s3 = running.client("s3")
        s3.create_bucket(Bucket="report")
        s3.put_object(
            Bucket="report", Key="data/part.csv", Body=b"Query,Intent\nhi,greet\nhello,greet\nbye,leave\n"
        )
        yield running


def test_the_last_training_job_of_a_capacity_retry_is_the_second(
    harness: Harness, tmp_path_factory: pytest.TempPathFactory
) -> None:
    image = harness.image_uri(write_standin_tree(tmp_path_factory.mktemp("standin")))
    harness.emulator.context.faults.capacity_shortage(1)
    payload = {
        "TrainingImage": image,
        "TrainingData": "s3://report/data/",
        "OutputPath": "s3://report/out/",
        "Hyperparameters": {},
        "QualityThreshold": 0.5,
        "EndpointName": "report-endpoint",
    }
    execution = run(harness, machine(harness, "report-capacity", deployer_definition()), "rep", payload, 120)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    history = harness.client("stepfunctions").get_execution_history(executionArn=execution["executionArn"])
    assert last_training_job(history["events"]) == "rep-train-2"


def test_an_execution_without_a_training_task_names_none() -> None:
    assert last_training_job([{"id": 1, "type": "ExecutionStarted"}]) is None
