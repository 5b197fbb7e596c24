"""The compute plane, and how the seams find it.

`ComputePlane` bundles what runs the work that the emulator only records: one container runtime,
the training job runner and the endpoint manager, a work directory for their `/opt/ml` trees and
logs, and an S3 client factory pointed at the emulator.

The seams (harness/seams/sagemaker.py, harness/seams/stepfunctions.py) run inside moto's request
threads and cannot be handed objects, so the harness registers the plane once, process-wide:

    plane = ComputePlane.create(runtime="process", endpoint_url=emulator.endpoint_url, work_dir=...)
    attach(plane)        # from now on CreateTrainingJob, CreateEndpoint, ... run for real
    ...
    detach()             # stops every container and forgets the plane

`attached()` is what a seam reads. While no plane is attached the SageMaker seams leave moto's own
behaviour in place (metadata only: jobs Completed at once, canned invocation bodies), which is what
tests of other parts that never train anything get.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from harness.compute.endpoints import DEFAULT_STARTUP_LIMIT_S, EndpointManager
from harness.compute.runtime import ContainerRuntime, choose_runtime
from harness.compute.training import TrainingJobRunner
from harness.compute.training_cache import CachingRuntime, TrainingCache
from harness.emulator import FAKE_CREDENTIALS, REGION


def s3_client_factory(endpoint_url: str, region: str = REGION) -> Callable[[], Any]:
    """A factory of S3 clients for the emulator at `endpoint_url` (a fresh client per caller/thread)."""

    def make() -> Any:
        return boto3.session.Session(region_name=region, **FAKE_CREDENTIALS).client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=120
            ),
        )

    return make


@dataclass
class ComputePlane:
    runtime: ContainerRuntime
    work_dir: Path
    training: TrainingJobRunner
    endpoints: EndpointManager

    @classmethod
    def create(
        cls,
        runtime: ContainerRuntime | str,
        endpoint_url: str,
        work_dir: Path,
        endpoint_startup_limit_s: float = DEFAULT_STARTUP_LIMIT_S,
        training_cache: TrainingCache | None = None,
        cache_bypass: Callable[[], bool] = lambda: False,
    ) -> ComputePlane:
        """A plane whose containers run on `runtime` (a runtime, or `auto`, `docker`, `process`).
        With `training_cache`, training jobs reuse earlier runs (harness.compute.training_cache),
        except while `cache_bypass()` is true."""
        chosen = choose_runtime(runtime) if isinstance(runtime, str) else runtime
        trainer = chosen if training_cache is None else CachingRuntime(chosen, training_cache, cache_bypass)
        if endpoint_startup_limit_s <= 0:
            raise ValueError(f"endpoint_startup_limit_s must be positive, got {endpoint_startup_limit_s}")
        work_dir = work_dir.resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        s3 = s3_client_factory(endpoint_url)
        return cls(
            runtime=chosen,
            work_dir=work_dir,
            training=TrainingJobRunner(runtime=trainer, s3_client=s3, work_dir=work_dir),
            endpoints=EndpointManager(
                runtime=chosen, s3_client=s3, work_dir=work_dir, startup_limit_s=endpoint_startup_limit_s
            ),
        )

    def shutdown(self) -> None:
        """Stops every training container and every endpoint container."""
        self.training.stop_all()
        self.endpoints.shutdown()


_lock = threading.Lock()
_attached: ComputePlane | None = None


def attach(plane: ComputePlane) -> None:
    """Makes `plane` the one the seams use. Only one plane is attached at a time."""
    global _attached
    with _lock:
        if _attached is not None and _attached is not plane:
            raise RuntimeError("a compute plane is already attached; detach() it first")
        _attached = plane


def detach() -> None:
    """Shuts the attached plane down (if any) and forgets it."""
    global _attached
    with _lock:
        plane, _attached = _attached, None
    if plane is not None:
        plane.shutdown()


def attached() -> ComputePlane | None:
    with _lock:
        return _attached
