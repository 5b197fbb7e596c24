"""The compute plane: what runs the work that the emulator only records.

`ComputePlane` bundles one container runtime, the training job runner and the endpoint manager, a
work directory for their `/opt/ml` trees and logs, and an S3 client factory pointed at the emulator.
A job or endpoint makes its S3, ECR and CloudWatch Logs calls as its execution role
(harness.service_roles: credentials from the emulator's STS), as SageMaker does.

The seams (harness/seams/sagemaker.py) run inside moto's request threads; they find the plane through
the running emulator's context (harness/context.py):

    plane = ComputePlane.create("process", emulator.endpoint_url, work_dir, faults=context.faults)
    emulator.context.attach(plane)   # from now on CreateTrainingJob, CreateEndpoint, ... run for real
    ...
    emulator.context.detach()        # stops every container and forgets the plane

With `faults` (a `PlaneFaults`: harness.faults.FaultBoard is one), the runners run on the runtime
`faults.wrap(runtime)` gives and get its hooks; `plane.runtime` stays the runtime itself (its own
API, e.g. `ProcessRuntime.register`). The plane knows nothing of which faults exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.boto_sessions import SessionClients, client_config
from harness.compute.container_logs import ContainerLogPublisher
from harness.compute.container_runtime import ContainerProcess, ContainerRuntime
from harness.compute.endpoints import DEFAULT_STARTUP_LIMIT_S, EndpointManager
from harness.compute.runtimes import choose_runtime
from harness.compute.training import TrainingJobRunner
from harness.compute.training_cache import CachingRuntime, TrainingCache
from harness.iam.enforcement import IamEnforcement
from harness.identity import FAKE_CREDENTIALS, REGION
from harness.service_roles import ServiceRoles
from harness.timing import Timing


def client_factory(service: str, endpoint_url: str, region: str = REGION) -> Callable[[], Any]:
    """A factory of `service` clients for the emulator at `endpoint_url` (a fresh client per
    caller/thread), all from one session (`SessionClients`)."""
    clients = SessionClients(region, FAKE_CREDENTIALS)

    def make() -> Any:
        return clients.client(service, endpoint_url, client_config())

    return make


class PlaneFaults(Protocol):
    """What a plane takes from a fault board: a runtime around its own, and two hooks."""

    def wrap(self, runtime: ContainerRuntime) -> ContainerRuntime:
        """The runtime the runners use instead of `runtime`."""

    def corrupt_channels(self, data_dir: Path) -> None:
        """Told of a training job's downloaded `input/data` folder before its container starts."""

    def capacity_error(self) -> str | None:
        """Asked as a training job starts: a FailureReason when no instance can be had, else None."""

    def serving_started(self, process: ContainerProcess) -> None:
        """Told of every serving container that went InService."""


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
        faults: PlaneFaults | None = None,
        training_cache: TrainingCache | None = None,
        iam: IamEnforcement | None = None,
        timing: Timing | None = None,
    ) -> ComputePlane:
        """A plane whose containers run on `runtime` (a runtime, or `auto`, `docker`, `process`), with
        the faults `faults` switches on (none without it). With `training_cache`, a training job reuses
        an earlier run's model (harness.compute.training_cache); the faults wrap the cache, so a
        replaced `train` always runs. With `iam` (the emulator's `context.iam`), jobs and endpoints act
        as their execution roles; without it, with the admin's rights. With `timing`
        (harness/timing.py), jobs and endpoints first wait out its profile's provisioning times."""
        chosen = choose_runtime(runtime) if isinstance(runtime, str) else runtime
        if endpoint_startup_limit_s <= 0:
            raise ValueError(f"endpoint_startup_limit_s must be positive, got {endpoint_startup_limit_s}")
        work_dir = work_dir.resolve()
        work_dir.mkdir(parents=True, exist_ok=True)
        s3 = client_factory("s3", endpoint_url)
        # Training jobs and endpoints act as their execution roles (RoleArn, ExecutionRoleArn).
        roles = ServiceRoles(endpoint_url, iam)
        logs = ContainerLogPublisher(client_factory("logs", endpoint_url))
        cached = chosen if training_cache is None else CachingRuntime(chosen, training_cache)
        runs = cached if faults is None else faults.wrap(cached)
        return cls(
            runtime=chosen,
            work_dir=work_dir,
            training=TrainingJobRunner(
                runtime=runs,
                s3_client=s3,
                work_dir=work_dir,
                prepare_input=faults.corrupt_channels if faults is not None else None,
                provision=faults.capacity_error if faults is not None else None,
                logs=logs,
                roles=roles,
                provisioning_s=(
                    (lambda: timing.delay_s("training_provisioning_s")) if timing is not None else None
                ),
            ),
            endpoints=EndpointManager(
                runtime=runs,
                s3_client=s3,
                work_dir=work_dir,
                startup_limit_s=endpoint_startup_limit_s,
                on_in_service=faults.serving_started if faults is not None else None,
                roles=roles,
                logs=logs,
                provisioning_s=(
                    (
                        lambda updating: timing.delay_s(
                            "endpoint_update_s" if updating else "endpoint_create_s"
                        )
                    )
                    if timing is not None
                    else None
                ),
            ),
        )

    def shutdown(self) -> None:
        """Stops every training container and every endpoint container."""
        self.training.stop_all()
        self.endpoints.shutdown()
