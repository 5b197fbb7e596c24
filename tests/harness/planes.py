"""The emulator with a compute plane attached, for the compute-plane and seam tests.

One embedded emulator runs per process (moto's state is process-wide), so each test module that
needs one starts it in a module-scoped fixture through `running_harness` and stops it at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.compute.plane import ComputePlane
from harness.compute.process import ProcessRuntime
from harness.emulator import EmbeddedEmulator

ROLE_ARN = "arn:aws:iam::123456789012:role/harness-tests"


@dataclass
class Harness:
    emulator: EmbeddedEmulator
    plane: ComputePlane

    def client(self, service: str) -> Any:
        return self.emulator.client(service)

    def image_uri(self, tree: Path) -> str:
        """Registers a source tree with the process runtime; returns the ECR-style URI naming it."""
        runtime = self.plane.runtime
        assert isinstance(runtime, ProcessRuntime)
        return f"123456789012.dkr.ecr.us-east-1.amazonaws.com/byoc@{runtime.register(tree)}"


@contextmanager
def running_harness(
    work_dir: Path, startup_limit_s: float = 60.0, runtime: str = "process"
) -> Iterator[Harness]:
    with EmbeddedEmulator() as emulator:
        plane = ComputePlane.create(
            runtime,
            emulator.endpoint_url,
            work_dir,
            endpoint_startup_limit_s=startup_limit_s,
            faults=emulator.context.faults,
            iam=emulator.context.iam,
            timing=emulator.context.timing,
        )
        emulator.context.attach(plane)
        yield Harness(emulator, plane)  # stopping the emulator detaches the plane


def wait_until(
    read: Callable[[], Any], done: Callable[[Any], bool], timeout: float, interval: float = 0.1
) -> Any:
    """Polls `read()` until `done(value)`; returns the value, or fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"still not done after {timeout} s: {value!r}")
        time.sleep(interval)
        value = read()
    return value


def training_request(name: str, image: str, data_uri: str, output: str, **changes: Any) -> dict[str, Any]:
    """A CreateTrainingJob request in the shape the deployer's state machine sends."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": image,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "accuracy", "Regex": r"\baccuracy=([0-9.eE+-]+);"},
                {"Name": "macro_f1", "Regex": r"\bmacro_f1=([0-9.eE+-]+);"},
            ],
        },
        "RoleArn": ROLE_ARN,
        "HyperParameters": {},
        "InputDataConfig": [
            {
                "ChannelName": "training",
                "ContentType": "text/csv",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data_uri}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": output},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "EnableNetworkIsolation": True,
    }
    request.update(changes)
    return request
