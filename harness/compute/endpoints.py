"""SageMaker endpoints, really served: `serve` containers behind a name, with SageMaker's limits.

- `create`: Creating; in a background thread, waits out the timing profile's provisioning
  (`provisioning_s`, harness/timing.py; none by default), downloads the model's `model.tar.gz`, unpacks it
  into a fresh `/opt/ml/model` (`<work_dir>/endpoints/<name>/<replica>/opt/ml/model`), starts
  `serve` through the container runtime and polls `GET /ping` (2 s per try); InService once it
  answers 200, Failed with a reason when the container exits or `startup_limit_s` passes first.
- `update`: Updating; starts the new config's container beside the old one and waits until it is
  healthy, then switches the routing in one step and only then stops the old container, after its
  in-flight requests have finished: no request is dropped. When the new container never gets
  healthy the update rolls back, as SageMaker's does: the endpoint returns to InService on its
  previous config, with the reason in FailureReason, and the old container keeps serving. Only
  InService endpoints accept an update (a Failed one accepts only DeleteEndpoint).
- `delete`: stops the container (after its in-flight requests).
- **Instance recovery**: while an endpoint is InService its container is health-checked
  (`GET /ping`, 2 s limit, every `health_check_interval_s`); a container that has exited, refuses the
  connection of an invocation, or fails `_UNHEALTHY_AFTER` pings in a row is taken out of service and a
  replacement instance of the same config is provisioned and started, as SageMaker does for an
  instance that fails its health checks (SageMaker developer guide, "Best practices for deploying
  models on SageMaker AI Hosting Services": an instance that fails is replaced, and only more than one
  instance per variant keeps serving meanwhile). The endpoint stays InService; until the replacement
  passes its ping an invocation gets `ServiceUnavailable` (HTTP 503, InvokeEndpoint's errors in the
  SageMaker Runtime API reference; AWS does not document which error a variant without a healthy
  instance answers, and 503 is the one for a service that cannot answer now, which the SDKs retry).
  The check's interval and the count of failed pings are not documented by AWS either: the harness
  checks every second and replaces after 3 failed pings (or at once for an exited container).
- `invoke`: forwards the body to `POST /invocations` of the current container, with SageMaker's
  limits: bodies over 6 MB are refused (413) and a container that takes over 60 s is a ModelError.

With `roles` (harness.service_roles), a model's data is downloaded and its image pulled with the
credentials of the model's `ExecutionRoleArn`, as SageMaker does (SageMaker developer guide, "How to
use SageMaker execution roles", CreateModel API: execution role permissions); a denial fails the
endpoint (`Failed`, or an update rolled back) with SageMaker's FailureReason and the API's denial.

Endpoints are keyed by (account, region, name). Locks guard only the routing table: no lock is
held during an HTTP call or while a container starts.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import requests.adapters

from harness.compute.container_logs import ContainerLogPublisher
from harness.compute.container_runtime import ContainerProcess, ContainerRuntime, ServingContainer
from harness.compute.image_pull import ImagePullDenied, check_image_pull
from harness.compute.s3io import S3Uri, download_and_unpack
from harness.service_roles import SAGEMAKER, SAGEMAKER_SESSION, ServiceRoles

LOG = logging.getLogger(__name__)

MAX_INVOCATION_BYTES = 6 * 1024 * 1024
INVOCATION_TIMEOUT_S = 60.0
PING_TIMEOUT_S = 2.0
DEFAULT_STARTUP_LIMIT_S = 120.0
# The harness's own poll while a container starts (SageMaker documents the ping's 2 s answer limit, not
# how often it pings a starting container): short, so InService follows the first 200 closely.
_PING_INTERVAL_S = 0.05
# Keep-alive connections to the serving containers, as SageMaker's front end keeps them: a new
# connection per invocation (requests.post) cost a TCP handshake and a Session per call.
_POOL_CONNECTIONS = 16
_POOL_MAXSIZE = 64
_DRAIN_LIMIT_S = INVOCATION_TIMEOUT_S + 5.0
DEFAULT_HEALTH_CHECK_INTERVAL_S = 1.0
_UNHEALTHY_AFTER = 3  # failed pings in a row (an exited container is replaced at once)
_STOP_GRACE_S = 10.0

EndpointKey = tuple[str, str, str]  # (account, region, name)


class EndpointError(Exception):
    """A request the endpoint manager refuses; `code` is the AWS error code (ValidationException)."""

    code = "ValidationException"


@dataclass(frozen=True)
class ModelTarget:
    """What one production variant runs: an image, its model data and environment."""

    config_name: str
    variant_name: str
    image_uri: str
    model_data_url: str | None
    environment: dict[str, str]
    execution_role_arn: str | None = None  # the model's ExecutionRoleArn


@dataclass(frozen=True)
class PendingDeployment:
    """The deployment in progress (CreateEndpoint's or UpdateEndpoint's config) and when it began."""

    config_name: str
    started_at: float  # epoch seconds


@dataclass(frozen=True)
class EndpointSnapshot:
    status: str  # Creating | InService | Updating | Failed | Deleting
    config_name: str
    failure_reason: str | None
    serving_config_name: str | None  # the config whose container answers now, if any
    replaced_instances: int = 0  # instances that failed their health checks and were replaced
    # DescribeEndpoint's PendingDeploymentSummary: the config being deployed while Creating/Updating.
    pending: PendingDeployment | None = None


@dataclass(frozen=True)
class InvocationResult:
    """The container's answer: its HTTP status, body and headers of interest."""

    status: int
    body: bytes
    content_type: str
    custom_attributes: str | None
    variant_name: str


class _StartRefused(Exception):
    """The replica could not start for a reason SageMaker words itself (the FailureReason)."""


class InvocationTimeout(Exception):
    """The container did not answer within SageMaker's 60 s."""


class NoHealthyInstance(Exception):
    """The endpoint is InService but its instance is being replaced (InvokeEndpoint: ServiceUnavailable)."""


class _Replica:
    """One started `serve` for one endpoint config, counting its in-flight requests."""

    def __init__(self, target: ModelTarget, serving: ServingContainer, directory: Path) -> None:
        self.target = target
        self.serving = serving
        self.directory = directory
        self._inflight = 0
        self._idle = threading.Condition()

    def enter(self) -> None:
        with self._idle:
            self._inflight += 1

    def leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.notify_all()

    def drain_and_stop(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._inflight == 0, timeout=_DRAIN_LIMIT_S)
        self.serving.process.stop(_STOP_GRACE_S)


@dataclass
class _Endpoint:
    name: str
    status: str
    config_name: str
    failure_reason: str | None = None
    current: _Replica | None = None
    generation: int = 0  # bumped by create/update/delete so that a stale start does not win
    target: ModelTarget | None = None  # what `current` serves (a replacement instance starts it again)
    failed_pings: int = 0
    replacements: int = 0  # instances replaced so far (reported by `describe`)
    pending: PendingDeployment | None = None  # until the create or update it stands for is over


def _pooled_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy variables or .netrc read per request
    adapter = requests.adapters.HTTPAdapter(pool_connections=_POOL_CONNECTIONS, pool_maxsize=_POOL_MAXSIZE)
    session.mount("http://", adapter)
    return session


@dataclass
class EndpointManager:
    """The endpoints of one compute plane."""

    runtime: ContainerRuntime
    s3_client: Callable[[], Any]
    work_dir: Path
    startup_limit_s: float = DEFAULT_STARTUP_LIMIT_S
    # Told of every serving container that went InService (e.g. a fault that stops it later).
    on_in_service: Callable[[ContainerProcess], None] | None = None
    # The execution roles' credentials: a model with an ExecutionRoleArn is fetched as that role.
    roles: ServiceRoles | None = None
    # Each serving container's log goes to CloudWatch Logs when it ends (stopped, died, failed to start).
    logs: ContainerLogPublisher | None = None
    # How long instances take before a create (False) or an update (True) starts its container.
    provisioning_s: Callable[[bool], float] | None = None
    health_check_interval_s: float = DEFAULT_HEALTH_CHECK_INTERVAL_S
    _endpoints: dict[EndpointKey, _Endpoint] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _replica_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _http: requests.Session = field(default_factory=_pooled_session)
    _watchdog: threading.Thread | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    # -- control plane -----------------------------------------------------------------------------
    def create(self, key: EndpointKey, target: ModelTarget) -> None:
        with self._lock:
            if key in self._endpoints:
                raise EndpointError(f'Cannot create already existing endpoint "{key[2]}".')
            endpoint = _Endpoint(
                name=key[2],
                status="Creating",
                config_name=target.config_name,
                pending=PendingDeployment(target.config_name, time.time()),
            )
            self._endpoints[key] = endpoint
            generation = endpoint.generation
        self._in_background(key, target, generation, updating=False)

    def update(self, key: EndpointKey, target: ModelTarget) -> None:
        with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                raise EndpointError(f'Could not find endpoint "{key[2]}".')
            if endpoint.status == "Failed":
                raise EndpointError(
                    f'Cannot update failed endpoint "{key[2]}": DeleteEndpoint is the only operation '
                    "that can be performed on a failed endpoint."
                )
            if endpoint.status != "InService":
                raise EndpointError(
                    f'Cannot update in-progress endpoint "{key[2]}" (it is {endpoint.status}).'
                )
            endpoint.status = "Updating"
            endpoint.failure_reason = None
            endpoint.pending = PendingDeployment(target.config_name, time.time())
            endpoint.generation += 1
            generation = endpoint.generation
        self._in_background(key, target, generation, updating=True)

    def delete(self, key: EndpointKey) -> None:
        with self._lock:
            endpoint = self._endpoints.pop(key, None)
            if endpoint is not None:
                endpoint.generation += 1  # a start still in flight stops its container
        if endpoint is None:
            raise EndpointError(f'Could not find endpoint "{key[2]}".')
        if endpoint.current is not None:
            threading.Thread(target=endpoint.current.drain_and_stop, daemon=True).start()

    def describe(self, key: EndpointKey) -> EndpointSnapshot | None:
        with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is None:
                return None
            return EndpointSnapshot(
                status=endpoint.status,
                config_name=endpoint.config_name,
                failure_reason=endpoint.failure_reason,
                serving_config_name=endpoint.current.target.config_name if endpoint.current else None,
                replaced_instances=endpoint.replacements,
                pending=endpoint.pending,
            )

    def serving_processes(self) -> list[ContainerProcess]:
        """The containers that answer invocations now (one per InService endpoint)."""
        with self._lock:
            return [e.current.serving.process for e in self._endpoints.values() if e.current is not None]

    def names(self) -> list[EndpointKey]:
        with self._lock:
            return list(self._endpoints)

    def shutdown(self) -> None:
        """Stops every container (the harness is going away)."""
        self._stopped.set()
        with self._lock:
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for endpoint in endpoints:
            endpoint.generation += 1
            if endpoint.current is not None:
                endpoint.current.serving.process.stop(_STOP_GRACE_S)
        self._http.close()

    # -- data plane --------------------------------------------------------------------------------
    def invoke(
        self,
        key: EndpointKey,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        custom_attributes: str | None,
    ) -> InvocationResult:
        """Forwards one invocation to the endpoint's current container."""
        with self._lock:
            endpoint = self._endpoints.get(key)
            replica = endpoint.current if endpoint is not None else None
            if replica is not None:
                replica.enter()
        if endpoint is None:
            raise EndpointError(f"Endpoint {key[2]} of account {key[0]} not found.")
        if replica is None:
            if endpoint.status == "InService":
                raise NoHealthyInstance(f"Endpoint {key[2]} of account {key[0]} has no healthy instance.")
            raise EndpointError(
                f"Endpoint {key[2]} of account {key[0]} is not ready (it is {endpoint.status})."
            )
        try:
            headers = {"Content-Type": content_type or "application/octet-stream"}
            if accept:
                headers["Accept"] = accept
            if custom_attributes is not None:
                headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
            try:
                response = self._post(f"{replica.serving.url}/invocations", body, headers)
            except requests.Timeout as error:
                raise InvocationTimeout(str(error)) from error
            except requests.ConnectionError as error:  # the container is gone: replace its instance
                self._take_out_of_service(key, replica, "an invocation could not connect to the container")
                raise NoHealthyInstance(
                    f"Endpoint {key[2]} of account {key[0]} has no healthy instance."
                ) from error
            return InvocationResult(
                status=response.status_code,
                body=response.content,
                content_type=response.headers.get("Content-Type", "application/octet-stream"),
                custom_attributes=response.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
                variant_name=replica.target.variant_name,
            )
        finally:
            replica.leave()

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        timeout = (PING_TIMEOUT_S, INVOCATION_TIMEOUT_S)
        try:
            return self._http.post(url, data=body, headers=headers, timeout=timeout)
        except requests.ConnectionError as error:
            if isinstance(error, requests.ConnectTimeout):
                raise
            # A kept connection that the container closed meanwhile (its keep-alive timeout) fails
            # before the request is read: once more, on a new connection (a dead container fails
            # the second try too, and the error is raised as before).
            return self._http.post(url, data=body, headers=headers, timeout=timeout)

    # -- starting containers -----------------------------------------------------------------------
    def _in_background(self, key: EndpointKey, target: ModelTarget, generation: int, updating: bool) -> None:
        threading.Thread(
            target=self._bring_up,
            args=(key, target, generation, updating),
            name=f"endpoint-{key[2]}",
            daemon=True,
        ).start()

    def _bring_up(self, key: EndpointKey, target: ModelTarget, generation: int, updating: bool) -> None:
        replica: _Replica | None = None
        if not self._provisioned(key, generation, updating):
            return  # deleted or overtaken by a newer update while its instances were provisioned
        try:
            replica = self._start_replica(key, target)
            reason = self._wait_healthy(replica)
        except _StartRefused as refused:
            LOG.info("endpoint %s: could not start %s: %s", key[2], target.config_name, refused)
            reason = str(refused)
        except Exception as error:  # model data or image missing, container failed to start
            LOG.info("endpoint %s: could not start %s: %s", key[2], target.config_name, error)
            reason = f"Failed to start the container for production variant {target.variant_name}: {error}"
        old: _Replica | None = None
        with self._lock:
            endpoint = self._endpoints.get(key)
            current = endpoint is not None and endpoint.generation == generation
            if current and endpoint is not None:
                endpoint.pending = None  # the deployment is over
                if reason is None and replica is not None:
                    old, endpoint.current = endpoint.current, replica
                    endpoint.target = target
                    endpoint.status = "InService"
                    endpoint.config_name = target.config_name
                    endpoint.failure_reason = None
                    endpoint.failed_pings = 0
                elif updating and endpoint.current is not None:
                    # Rolled back: still serving the previous config, the reason kept (DescribeEndpoint).
                    endpoint.status = "InService"
                    endpoint.failure_reason = reason
                else:
                    endpoint.status = "Failed"
                    endpoint.failure_reason = reason
        if not current or reason is not None:
            if replica is not None:  # never served (failed, or overtaken by a newer update / a delete)
                replica.serving.process.stop(_STOP_GRACE_S)
            return
        LOG.info("endpoint %s InService with %s", key[2], target.config_name)
        if replica is not None and self.on_in_service is not None:
            self.on_in_service(replica.serving.process)
        self._watch()
        if old is not None:
            old.drain_and_stop()

    # -- instance recovery -------------------------------------------------------------------------
    def _watch(self) -> None:
        """Starts the health checker (once, when the first endpoint goes InService)."""
        with self._lock:
            if self._watchdog is not None or self._stopped.is_set():
                return
            self._watchdog = threading.Thread(target=self._check_health, name="endpoint-health", daemon=True)
        self._watchdog.start()

    def _check_health(self) -> None:
        while not self._stopped.wait(self.health_check_interval_s):
            with self._lock:
                serving = [
                    (key, endpoint.current)
                    for key, endpoint in self._endpoints.items()
                    if endpoint.current is not None
                ]
            for key, replica in serving:
                problem = self._health_problem(key, replica)
                if problem is not None:
                    self._take_out_of_service(key, replica, problem)

    def _health_problem(self, key: EndpointKey, replica: _Replica) -> str | None:
        """Why the replica should be replaced now, or None (healthy, or not failed often enough yet)."""
        code = replica.serving.process.poll()
        if code is not None:
            return f"the container exited with status {code}"
        try:
            healthy = requests.get(f"{replica.serving.url}/ping", timeout=PING_TIMEOUT_S).status_code == 200
        except requests.RequestException:
            healthy = False
        with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is None or endpoint.current is not replica:
                return None
            endpoint.failed_pings = 0 if healthy else endpoint.failed_pings + 1
            if endpoint.failed_pings < _UNHEALTHY_AFTER:
                return None
        return f"{_UNHEALTHY_AFTER} ping health checks in a row failed"

    def _take_out_of_service(self, key: EndpointKey, replica: _Replica, problem: str) -> None:
        """Stops routing to `replica` and starts a replacement instance of the same config."""
        with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is None or endpoint.current is not replica or endpoint.target is None:
                return  # already replaced, updated or deleted
            endpoint.current = None  # InService without a replica: being replaced
            endpoint.replacements += 1
            generation, target = endpoint.generation, endpoint.target
        LOG.info("endpoint %s: replacing its instance (%s)", key[2], problem)
        threading.Thread(target=replica.serving.process.stop, args=(_STOP_GRACE_S,), daemon=True).start()
        threading.Thread(
            target=self._replace,
            args=(key, target, generation),
            name=f"endpoint-{key[2]}-replace",
            daemon=True,
        ).start()

    def _replace(self, key: EndpointKey, target: ModelTarget, generation: int) -> None:
        """Provisions and starts a replacement instance until one passes its ping (or the endpoint
        is updated or deleted meanwhile: that start wins)."""
        while not self._stopped.is_set():
            if not self._provisioned(key, generation, updating=False):
                return
            replica: _Replica | None = None
            try:
                replica = self._start_replica(key, target)
                reason = self._wait_healthy(replica)
            except Exception as error:
                reason = str(error)
            with self._lock:
                endpoint = self._endpoints.get(key)
                installed = (
                    reason is None
                    and replica is not None
                    and endpoint is not None
                    and endpoint.generation == generation
                )
                if installed and endpoint is not None:
                    endpoint.current, endpoint.failed_pings = replica, 0
            if installed:
                LOG.info("endpoint %s: replacement instance InService", key[2])
                if replica is not None and self.on_in_service is not None:
                    self.on_in_service(replica.serving.process)
                return
            if replica is not None:
                replica.serving.process.stop(_STOP_GRACE_S)
            LOG.info("endpoint %s: replacement instance failed (%s); trying again", key[2], reason)
            self._stopped.wait(self.health_check_interval_s)

    def _provisioned(self, key: EndpointKey, generation: int, updating: bool) -> bool:
        """Waits out the provisioning time; False when the endpoint moved on meanwhile."""
        wait_s = self.provisioning_s(updating) if self.provisioning_s is not None else 0.0
        deadline = time.monotonic() + wait_s
        while True:
            with self._lock:
                endpoint = self._endpoints.get(key)
                if endpoint is None or endpoint.generation != generation:
                    return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, _PING_INTERVAL_S))

    def _start_replica(self, key: EndpointKey, target: ModelTarget) -> _Replica:
        directory = (
            self.work_dir / "endpoints" / key[0] / key[1] / key[2] / f"replica-{next(self._replica_ids)}"
        )
        if directory.exists():
            shutil.rmtree(directory)
        base_dir = directory / "opt" / "ml"
        model_dir = base_dir / "model"
        model_dir.mkdir(parents=True)
        role = target.execution_role_arn if self.roles is not None else None
        s3 = self.roles.client("s3", role, SAGEMAKER_SESSION, SAGEMAKER) if self.roles else self.s3_client()
        if target.model_data_url:
            try:
                download_and_unpack(s3, S3Uri.parse(target.model_data_url), directory / "download", model_dir)
            except Exception as error:  # SageMaker's reason ("container_1": the model's first container)
                raise _StartRefused(
                    f'Failed to download model data for container "container_1" from URL: '
                    f'"{target.model_data_url}". Please ensure that there is an object located at the URL '
                    f"and that the role passed to CreateModel has permissions to download the object. "
                    f"{error}"
                ) from error
        if self.roles is not None and role:
            try:
                ecr = self.roles.client("ecr", role, SAGEMAKER_SESSION, SAGEMAKER)
                check_image_pull(ecr, target.image_uri)
            except ImagePullDenied as denied:
                raise _StartRefused(f"{denied.reason(role)} {denied.detail}") from denied
        image = self.runtime.resolve(target.image_uri)
        serving = self.runtime.start_serving(image, base_dir, directory / "serve.log", target.environment)
        if self.logs is not None:
            logs_client = (
                self.roles.client_factory("logs", role, SAGEMAKER_SESSION, SAGEMAKER)
                if self.roles is not None and role
                else None
            )
            hook = self._log_publisher(self.logs, key, target, serving.process, logs_client)
            serving.process.add_exit_hook(hook)
        return _Replica(target, serving, directory)

    def _log_publisher(
        self,
        logs: ContainerLogPublisher,
        key: EndpointKey,
        target: ModelTarget,
        process: ContainerProcess,
        logs_client: Callable[[], Any] | None,
    ) -> Callable[[int], None]:
        """The exit hook that writes the container's log to its instance's stream (SageMaker's instance
        ids look like `i-` and 17 hex digits); not when the harness itself is stopping."""
        instance_id = f"i-{secrets.token_hex(9)[:17]}"

        def publish(exit_status: int) -> None:
            if self._stopped.is_set():
                return
            text = process.log_path.read_text(encoding="utf-8", errors="replace")
            logs.endpoint(key[2], target.variant_name, instance_id, text, logs_client)

        return publish

    def _wait_healthy(self, replica: _Replica) -> str | None:
        """None once /ping answers 200; otherwise the failure reason."""
        deadline = time.monotonic() + self.startup_limit_s
        process = replica.serving.process
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                return (
                    f"The primary container for production variant {replica.target.variant_name} exited with "
                    f"status {code} before it passed the ping health check; see {process.log_path}"
                )
            try:
                if requests.get(f"{replica.serving.url}/ping", timeout=PING_TIMEOUT_S).status_code == 200:
                    return None
            except requests.RequestException:
                pass
            time.sleep(_PING_INTERVAL_S)
        return (
            f"The primary container for production variant {replica.target.variant_name} did not pass the "
            f"ping health check within {self.startup_limit_s:g} s; see {process.log_path}"
        )
