"""`LocalAws`: the whole local stand-in for AWS, started and stopped in order, as one object.

It composes the parts that exist; it re-implements none of them:

1. the control plane: `harness.emulator.EmbeddedEmulator` (moto with the seams installed), or an
   external AWS-compatible endpoint. The embedded emulator owns the run's `HarnessContext`
   (harness/context.py): the Lambda runtime whose handlers call it, the fault board (`faults`), the
   Step Functions time scale (set from the options) and the pipeline states;
2. the compute plane: `harness.compute.plane.ComputePlane` on the chosen runtime, with the context's
   faults, attached to the context so that the SageMaker seams run real training jobs and endpoints;
3. the local API Gateway: `harness.gateway.ApiGateway` on a free loopback port;
4. on demand, the pipeline runner over the deployed pipeline (`pipeline_runner()`), with the image
   build for the runtime: under Docker, a local image registry (`harness.pipeline.LocalRegistry`)
   standing for ECR, started with the first runner and stopped with the stack.

`stop()` undoes them in the reverse order (gateway, compute plane: every endpoint server and training
container, emulator: Lambda workers, faults and moto's state), is idempotent, and keeps going when
one step fails or is interrupted (the first interruption is raised again at the end). A second
`LocalAws` started after it in the same process finds nothing of the first.

Then the helpers the pipeline runner and the scenarios need: `deploy()` (the deployer's own code and
files, with the platform parameters the options give), `deployed_pipeline()`, `pipeline_runner()` and
its `trigger` (a commit in, detected as on AWS),
`put_training_data()`, `register_image()` / `docker_image()`, `write_build_record()`,
`start_execution()` / `wait_for_execution()`, `describe_endpoint()` / `invoke_endpoint()`,
`publish_api()` / `api()`, `training_log()`.

    with LocalAws(LocalAwsOptions(work_dir=Path("/tmp/run"))) as aws:
        deployment = aws.deploy()
        data = aws.put_training_data(clinc10_rows(), "data/intents/train.csv")
        ...

With `external_endpoint_url` nothing is embedded: the compute plane, the Lambda runtime and the
gateway live in the emulator's process (the seams run inside moto), so they cannot serve an endpoint
that runs elsewhere. What still works: `deploy()`, `put_training_data()`, `write_build_record()`,
`start_execution()`, `wait_for_execution()`, `describe_endpoint()`, `invoke_endpoint()`,
`publish_api()` (whatever the endpoint itself runs of them) and `api()` with the invoke URL of AWS
(no local URL). `register_image()`, `training_log()` and the local API URL need the embedded stack
and raise `LocalAwsError` saying so.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from deployer import compile as compiler
from deployer import deploy as deployment
from deployer.client import AwsClient
from deployer.lambdas import contracts
from deployer.lambdas.start_training import data_version
from harness.compute.endpoints import DEFAULT_STARTUP_LIMIT_S
from harness.compute.plane import ComputePlane
from harness.compute.process import ProcessRuntime
from harness.compute.runtimes import BASE_IMAGE
from harness.compute.training_cache import TrainingCache, cache_home, reused_from
from harness.context import HarnessContext
from harness.datasets import LabelledQuery, read_csv
from harness.emulator import ACCOUNT_ID, REGION, EmbeddedEmulator, ExternalEmulator, client_config
from harness.faults import FaultBoard
from harness.gateway import ApiGateway
from harness.lambda_runtime import LambdaRuntime
from harness.pipeline import (
    ApprovalPolicy,
    ArtifactStore,
    DeployedPipeline,
    DockerImageBuild,
    EmulatorJobBoard,
    LocalRegistry,
    PipelineEvent,
    PipelineRunner,
    ProcessImageBuild,
    boto3_invoker,
    default_executors,
    deployed_pipeline,
    invoke_config,
    state_listener,
)
from harness.pipeline.build_cache import LocalBuildCache
from harness.pipeline.trigger import PipelineTrigger
from harness.service_roles import CODEPIPELINE, ServiceRoles, codepipeline_session
from harness.timing import profile_named

LOG = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
# moto's SageMaker lists no ml.g5.* types (deployer/README.md "In the emulator"): any type it lists.
EMULATOR_PARAMETERS: Mapping[str, str] = {
    "TrainingInstanceType": "ml.m5.xlarge",
    "HostingInstanceType": "ml.m5.large",
}
# Loggers that are chatty at INFO; quiet mode holds them at WARNING while the stack runs.
_CHATTY_LOGGERS = ("moto", "werkzeug", "botocore", "harness", "deployer")


class LocalAwsError(RuntimeError):
    """A helper was used in a state where it cannot work (not started, not deployed, external mode)."""


@dataclass(frozen=True)
class LocalAwsOptions:
    """How the local stack runs. Every option has a default that suits a developer machine."""

    # Where every file of this instance lives: the compute plane's /opt/ml trees and logs
    # (`<work_dir>/compute`). Two instances need two work dirs (and two processes: moto's state is
    # process-wide). Ports are always free ones picked at start.
    work_dir: Path
    # The container runtime: "process" (train/serve as child processes of a registered source tree),
    # "docker" (the built image, run by its id) or "auto" (docker when an engine answers, else process).
    runtime: str = "process"
    # Multiplies every Wait state, Retry interval and `.sync` poll of Step Functions: 0.01 turns the
    # state machine's 30 s endpoint poll into 0.3 s; 1.0 is real time. None keeps the emulator's own
    # setting (MLOPS_SFN_TIME_SCALE, else 1.0); a number overrides that variable while the stack runs.
    time_scale: float | None = 0.01
    # How long AWS's side of each step takes (harness/timing.py): `fast` adds nothing, `aws` replays
    # AWS's provisioning times for training, endpoints, builds and Lambda cold starts, at time_scale.
    timing: str = "fast"
    # How long a new endpoint may take to answer /ping before it goes Failed.
    endpoint_startup_limit_s: float = DEFAULT_STARTUP_LIMIT_S
    # An AWS-compatible endpoint that runs elsewhere (e.g. "http://127.0.0.1:4566"); None embeds moto.
    # See the module docstring for what works then.
    external_endpoint_url: str | None = None
    # The stacks are `<prefix>-assets`, `<prefix>-platform` and `<prefix>-api`.
    stack_prefix: str = "gptneo-intent"
    # Platform template parameters, over EMULATOR_PARAMETERS (e.g. ProjectName, QualityThreshold).
    parameters: Mapping[str, str] = field(default_factory=dict)
    # Hold moto, botocore and the harness's loggers at WARNING while the stack runs.
    quiet: bool = True
    # A folder of finished training runs to reuse (step caching, harness/compute/training_cache.py):
    # a training job whose image digest, data and hyperparameters match an earlier successful one
    # reuses its model. None: every job trains.
    training_cache: Path | None = None
    # This machine as the build host of CodeBuild projects with a LOCAL cache: the buildspec's
    # `cache.paths` are kept here between builds (harness/pipeline/build_cache.py). None: nothing kept.
    build_cache: Path | None = field(default_factory=lambda: cache_home() / "codebuild")
    # IAM enforced at the emulator's boundary (harness/iam): each principal acts with its role's rights.
    # False: every call runs with full rights (`mlops run --no-iam`, a scenario's `settings.iam: false`).
    iam: bool = True

    def __post_init__(self) -> None:
        if self.runtime not in ("auto", "docker", "process"):
            raise ValueError(f"runtime must be auto, docker or process, not {self.runtime!r}")
        if self.time_scale is not None and not 0 < self.time_scale <= 1000:
            raise ValueError(f"time_scale must be in (0, 1000], got {self.time_scale}")
        profile_named(self.timing)  # a clear error for an unknown profile
        if self.endpoint_startup_limit_s <= 0:
            raise ValueError(
                f"endpoint_startup_limit_s must be positive, got {self.endpoint_startup_limit_s}"
            )
        if self.external_endpoint_url is not None and not self.external_endpoint_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                f"external_endpoint_url must be an http(s) URL, not {self.external_endpoint_url!r}"
            )

    def platform_parameters(self) -> dict[str, str]:
        return {**EMULATOR_PARAMETERS, **self.parameters}


@dataclass(frozen=True)
class Deployment:
    """The deployed stacks' outputs (deployer/README.md "Stack outputs"), typed."""

    assets_bucket: str
    data_bucket: str
    data_prefix: str
    artifact_bucket: str
    image_repository_uri: str
    registry_table: str
    state_machine_arn: str
    start_training_function: str
    register_model_function: str
    publish_api_function: str
    build_project: str
    pipeline_name: str
    endpoint_name: str
    api_stack_name: str
    platform_stack_name: str
    outputs: Mapping[str, str]

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, str], platform_stack_name: str) -> Deployment:
        wanted = {
            "assets_bucket": "AssetsBucketName",
            "data_bucket": "DataBucketName",
            "data_prefix": "DataPrefix",
            "artifact_bucket": "ArtifactBucketName",
            "image_repository_uri": "ImageRepositoryUri",
            "registry_table": "RegistryTableName",
            "state_machine_arn": "StateMachineArn",
            "start_training_function": "StartTrainingFunctionName",
            "register_model_function": "RegisterModelFunctionName",
            "publish_api_function": "PublishApiFunctionName",
            "build_project": "BuildProjectName",
            "pipeline_name": "PipelineName",
            "endpoint_name": "EndpointName",
            "api_stack_name": "ApiStackName",
        }
        missing = sorted(output for output in wanted.values() if not outputs.get(output))
        if missing:
            raise LocalAwsError(f"the deployed stacks lack the output(s) {', '.join(missing)}")
        return cls(
            **{attribute: outputs[output] for attribute, output in wanted.items()},
            platform_stack_name=platform_stack_name,
            outputs=dict(outputs),
        )


@dataclass(frozen=True)
class DataObject:
    """An object put in S3: its URI, ETag, and version id. The platform's data bucket is versioned on
    AWS; moto's CloudFormation does not apply VersioningConfiguration, so in the emulator it is None."""

    uri: str
    bucket: str
    key: str
    version_id: str | None
    etag: str


@dataclass(frozen=True)
class Image:
    """A training/serving image as SageMaker names it: `<repository>@sha256:<hex>`."""

    uri: str
    digest: str


@dataclass(frozen=True)
class ExecutionResult:
    """A finished (or timed-out-while-running) Step Functions execution."""

    arn: str
    name: str
    status: str
    error: str | None
    cause: str | None
    output: Mapping[str, Any] | None

    @property
    def succeeded(self) -> bool:
        return self.status == contracts.SUCCEEDED


@dataclass(frozen=True)
class ApiAccess:
    """The published API: AWS's invoke URL, the local gateway's URL for it, and the key's value."""

    invoke_url: str
    local_url: str | None
    api_key: str | None
    api_id: str
    stage: str


def csv_bytes(examples: Iterable[LabelledQuery]) -> bytes:
    """Training data in the container's format: CSV with the header `Query,Intent`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Query", "Intent"])
    for example in examples:
        writer.writerow([example.query, example.intent])
    return buffer.getvalue().encode("utf-8")


class LocalAws:
    """The local stand-in for AWS. Use as a context manager, or `start()` and `stop()`."""

    def __init__(self, options: LocalAwsOptions) -> None:
        self.options = options
        self._emulator: EmbeddedEmulator | ExternalEmulator | None = None
        self._plane: ComputePlane | None = None
        self._gateway: ApiGateway | None = None
        self._deployment: Deployment | None = None
        self._pipeline: DeployedPipeline | None = None
        self._registry: LocalRegistry | None = None
        self._trigger: PipelineTrigger | None = None
        self._undo: list[tuple[str, Callable[[], None]]] = []
        # One client per service, made from one session: a new boto3 Session loads botocore's
        # models again (0.3 s a client idle, over 1 s on a loaded machine), and the scenarios'
        # observations and the flow ask for clients many times a second. Clients are thread-safe;
        # a session is not, so clients are made under the lock.
        self._clients: dict[str, Any] = {}
        self._clients_session: boto3.Session | None = None
        self._clients_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> LocalAws:
        if self._emulator is not None:
            raise LocalAwsError("this LocalAws is already started")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        options = self.options
        if options.quiet:
            self._quiet_loggers()
        if options.external_endpoint_url is not None:
            self._emulator = ExternalEmulator(options.external_endpoint_url)
            return
        emulator = EmbeddedEmulator(iam=self.options.iam).start()
        self._emulator = emulator
        self._undo.append(("emulator", emulator.stop))
        context = emulator.context
        if options.time_scale is not None:
            context.step_functions.set_scale(options.time_scale)
        context.timing.use(options.timing)
        plane = ComputePlane.create(
            options.runtime,
            emulator.endpoint_url,
            options.work_dir / "compute",
            endpoint_startup_limit_s=options.endpoint_startup_limit_s,
            faults=context.faults,
            training_cache=None if options.training_cache is None else TrainingCache(options.training_cache),
            iam=context.iam,
            timing=context.timing,
        )
        context.attach(plane)
        self._plane = plane
        self._undo.append(("compute plane", context.detach))
        gateway = ApiGateway(emulator.endpoint_url).start()
        self._gateway = gateway
        self._undo.append(("api gateway", gateway.stop))
        LOG.info("local AWS started at %s (runtime %s)", emulator.endpoint_url, plane.runtime.name)

    def _quiet_loggers(self) -> None:
        for name in _CHATTY_LOGGERS:
            logger = logging.getLogger(name)
            self._undo.append((f"log level of {name}", partial(logger.setLevel, logger.level)))
            logger.setLevel(max(logger.level, logging.WARNING))

    def stop(self) -> None:
        """Stops everything that was started, newest first; safe to call twice and on interrupts."""
        undo, self._undo = self._undo, []
        interrupted: BaseException | None = None
        for what, step in reversed(undo):
            try:
                step()
            except Exception:
                LOG.exception("stopping the %s failed", what)
            except BaseException as error:  # KeyboardInterrupt: finish stopping, then raise it
                interrupted = interrupted or error
        self._emulator = None
        with self._clients_lock:
            self._clients.clear()
            self._clients_session = None
        self._plane = None
        self._gateway = None
        self._deployment = None
        self._pipeline = None
        self._registry = None
        self._trigger = None
        if interrupted is not None:
            raise interrupted

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the parts -----------------------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        """The control plane's URL (for `aws --endpoint-url` and boto3)."""
        return self._require_emulator().endpoint_url

    @property
    def embedded(self) -> bool:
        return isinstance(self._emulator, EmbeddedEmulator)

    @property
    def context(self) -> HarnessContext:
        """The embedded emulator's context (compute plane, Lambda runtime, faults, timing, states)."""
        emulator = self._require_emulator()
        if not isinstance(emulator, EmbeddedEmulator):
            raise LocalAwsError("no harness context: the stack runs an external endpoint")
        return emulator.context

    def access_denials(self) -> list[dict[str, str]]:
        """Every call IAM refused in this stack so far (principal, action, resource, AWS's message);
        none for an external endpoint, which enforces (or not) on its own."""
        if not self.embedded:
            return []
        return [denial.as_dict() for denial in self.context.iam.denials()]

    @property
    def faults(self) -> FaultBoard:
        """The faults switched on for this stack (harness/faults.py)."""
        return self.context.faults

    @property
    def lambdas(self) -> LambdaRuntime:
        """The Lambda runtime that runs this stack's functions (and keeps their invocations)."""
        return self.context.lambdas

    @property
    def plane(self) -> ComputePlane:
        if self._plane is None:
            raise LocalAwsError("no compute plane: the stack is not started, or runs an external endpoint")
        return self._plane

    @property
    def gateway(self) -> ApiGateway:
        if self._gateway is None:
            raise LocalAwsError(
                "no local API gateway: the stack is not started, or runs an external endpoint"
            )
        return self._gateway

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            raise LocalAwsError("nothing is deployed yet: call deploy() first")
        return self._deployment

    def session(self) -> boto3.Session:
        return self._require_emulator().session()

    def client(self, service: str) -> Any:
        """A boto3 client for `service`, pointed at the control plane (one per service, shared)."""
        endpoint_url = self.endpoint_url
        with self._clients_lock:
            client = self._clients.get(service)
            if client is None:
                if self._clients_session is None:
                    self._clients_session = self.session()
                client = self._clients_session.client(
                    service, endpoint_url=endpoint_url, config=client_config()
                )
                self._clients[service] = client
            return client

    def _require_emulator(self) -> EmbeddedEmulator | ExternalEmulator:
        if self._emulator is None:
            raise LocalAwsError("the local stack is not started: call start() or use it as a context manager")
        return self._emulator

    # -- deploying -----------------------------------------------------------------------------------
    def deploy(self) -> Deployment:
        """Deploys the deployer's definitions with the deployer's own code (as `mlops deploy` does)."""
        client = AwsClient(self.session(), endpoint_url=self.endpoint_url, poll_seconds=0.1)
        report = deployment.deploy(client, self.options.stack_prefix, self.options.platform_parameters())
        outputs = {key: value for stack in report.stacks for key, value in stack.outputs.items()}
        platform = compiler.stack_names(self.options.stack_prefix).platform
        self._deployment = Deployment.from_outputs(outputs, platform)
        return self._deployment

    # -- the pipeline -------------------------------------------------------------------------------
    def deployed_pipeline(self) -> DeployedPipeline:
        """The deployed pipeline (GetPipeline) and its build projects (BatchGetProjects), read once."""
        if self._pipeline is None:
            self._pipeline = deployed_pipeline(
                self.client("codepipeline"),
                self.client("codebuild"),
                self.deployment.pipeline_name,
                ACCOUNT_ID,
            )
        return self._pipeline

    def pipeline_runner(
        self,
        approval: ApprovalPolicy,
        events: Callable[[PipelineEvent], None],
        lambda_report_timeout_s: float = 900,
    ) -> PipelineRunner:
        """A runner of the deployed pipeline, as CodePipeline runs it: an artifact store in the
        artifact bucket, the executors' table (the image build for this stack's runtime) and
        GetPipelineState's view kept in the context's pipeline states. Its executions are started as
        on AWS, by StartPipelineExecution (`trigger`: a commit's change detection)."""
        deployed = self.deployed_pipeline()
        work_dir = self.options.work_dir
        scale = self.context.step_functions.scale
        pipeline = deployed.pipeline
        # CodePipeline acts as its role: the artifact bucket, the Lambda invokes, the jobs' artifact
        # credentials; CodeBuild as the project's (harness/pipeline/build.py).
        roles = ServiceRoles(self.endpoint_url, self.context.iam)
        role, session_name = pipeline.role_arn or None, codepipeline_session()
        credentials = roles.credentials(role, session_name, CODEPIPELINE)
        store = ArtifactStore(
            work_dir / "artifacts",
            pipeline.artifact_bucket,
            pipeline.name,
            roles.client("s3", role, session_name, CODEPIPELINE),
        )
        executors = default_executors(
            deployed=deployed,
            endpoint_url=self.endpoint_url,
            image_build=self._image_build(),
            job_board=EmulatorJobBoard(ACCOUNT_ID, REGION),
            invoke=boto3_invoker(roles.client("lambda", role, session_name, CODEPIPELINE, invoke_config())),
            roles=roles,
            artifact_credentials={
                "accessKeyId": credentials.access_key_id,
                "secretAccessKey": credentials.secret_access_key,
                "sessionToken": credentials.session_token or "",
            },
            approval=approval,
            store=store,
            lambda_report_timeout_s=lambda_report_timeout_s,
            # Lambda retries a raising action function after about 1 and 2 minutes; CodePipeline then
            # waits 20 minutes for a result: AWS's figures, scaled like the state machine's waits.
            lambda_async_retry_delays_s=(60 * scale, 120 * scale),
            lambda_after_raise_timeout_s=1200 * scale,
            build_cache=LocalBuildCache(self.options.build_cache) if self.options.build_cache else None,
            build_provisioning_s=partial(self.context.timing.delay_s, "codebuild_provisioning_s"),
        )
        states = self.context.pipeline_states(ACCOUNT_ID, REGION)
        if self._trigger is not None:
            self._trigger.unregister()
        trigger = PipelineTrigger(pipeline, ACCOUNT_ID, REGION, self.endpoint_url)
        runner = PipelineRunner(
            pipeline,
            executors,
            store,
            work_dir / "pipeline",
            events=events,
            state_listener=state_listener(states, ACCOUNT_ID, REGION, trigger.trigger_of),
        )
        self._trigger = trigger.register(runner)
        return runner

    @property
    def trigger(self) -> PipelineTrigger:
        """What starts the runner's executions: a commit pushed to the pipeline's source repository
        (`trigger.commit(repository, ref)`), detected as on AWS (harness/pipeline/trigger.py)."""
        if self._trigger is None:
            raise LocalAwsError("no pipeline runner yet: call pipeline_runner() first")
        return self._trigger

    def _image_build(self) -> ProcessImageBuild | DockerImageBuild:
        runtime = self.plane.runtime
        if isinstance(runtime, ProcessRuntime):
            return ProcessImageBuild(runtime.register)
        if self._registry is None:
            registry = LocalRegistry(self.options.work_dir / "registry").start()
            self._registry = registry
            self._undo.append(("image registry", registry.stop))
        return DockerImageBuild(self._registry, self.client("ecr"), base_image=BASE_IMAGE)

    # -- data and images -----------------------------------------------------------------------------
    def put_training_data(self, data: Iterable[LabelledQuery] | Path, key: str | None = None) -> DataObject:
        """Writes `data` (examples, or a `Query,Intent` CSV file, checked by reading it) as a CSV to the
        data bucket at `key` (default: `train.csv` under the data prefix, which starts a training run
        through the S3 -> EventBridge path)."""
        body = csv_bytes(read_csv(data) if isinstance(data, Path) else data)
        deployed = self.deployment
        key = key if key is not None else f"{deployed.data_prefix}train.csv"
        if not key or key.endswith("/"):
            raise ValueError(f"an object key names a file, not {key!r}")
        answer = self.client("s3").put_object(
            Bucket=deployed.data_bucket, Key=key, Body=body, ContentType="text/csv"
        )
        return DataObject(
            uri=f"s3://{deployed.data_bucket}/{key}",
            bucket=deployed.data_bucket,
            key=key,
            version_id=answer.get("VersionId"),
            etag=str(answer["ETag"]).strip('"'),
        )

    def data_version(self, prefix: str | None = None) -> str:
        """The fingerprint of the data under `prefix` (default: the data prefix) that the start-training
        Lambda records as DataVersion (the deployer's own function: keys, sizes and ETags)."""
        deployed = self.deployment
        return data_version(
            self.client("s3"), deployed.data_bucket, deployed.data_prefix if prefix is None else prefix
        )

    def register_image(self, tree: Path = REPO_ROOT) -> Image:
        """The process runtime's "image": a source tree with container/train and container/serve,
        registered and addressed by its content hash under the stack's ECR repository."""
        runtime = self.plane.runtime
        if not isinstance(runtime, ProcessRuntime):
            raise LocalAwsError(
                f"register_image() serves the process runtime; this stack runs {runtime.name} "
                "(use docker_image() with the built image's tag)"
            )
        digest = runtime.register(tree)
        return Image(uri=f"{self._repository_uri()}@{digest}", digest=digest)

    def docker_image(self, reference: str) -> Image:
        """An image the Docker engine holds (a tag or id), named by its id under the ECR repository."""
        resolved = self.plane.runtime.resolve(reference)
        return Image(uri=f"{self._repository_uri()}@{resolved.digest}", digest=resolved.digest)

    def _repository_uri(self) -> str:
        if self._deployment is not None:
            return self._deployment.image_repository_uri
        return f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/byoc"

    def write_build_record(self, image: Image, commit_id: str, hyperparameters: Mapping[str, str]) -> str:
        """Writes `build.json` to `s3://<ArtifactBucket>/builds/latest.json`, as the Train action copies
        the Build stage's record there, so that new data trains this image. Returns the S3 URI."""
        record = contracts.BuildRecord(image.uri, image.digest, commit_id, dict(hyperparameters))
        bucket = self.deployment.artifact_bucket
        key = contracts.LATEST_BUILD_KEY
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=record.to_json().encode("utf-8"))
        return f"s3://{bucket}/{key}"

    # -- executions ----------------------------------------------------------------------------------
    def execution_input(
        self,
        image: Image,
        data_uri: str,
        hyperparameters: Mapping[str, str],
        quality_threshold: float,
        endpoint_name: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The state machine's input (deployer/README.md "State machine execution input"). `extra`
        holds the fields that travel on untouched: CommitId, DataVersion, Trigger."""
        if not data_uri.startswith("s3://"):
            raise ValueError(f"the training data is an s3:// URI, not {data_uri!r}")
        deployed = self.deployment
        return contracts.execution_input(
            training_image=image.uri,
            training_data=data_uri,
            output_path=f"s3://{deployed.artifact_bucket}/models/",
            hyperparameters=hyperparameters,
            quality_threshold=quality_threshold,
            endpoint_name=endpoint_name or deployed.endpoint_name,
            image_digest=image.digest,
            travelling=extra,
        )

    def start_execution(self, name: str, execution_input: Mapping[str, Any]) -> str:
        """Starts the training state machine; returns the execution ARN."""
        answer = self.client("stepfunctions").start_execution(
            stateMachineArn=self.deployment.state_machine_arn, name=name, input=json.dumps(execution_input)
        )
        return str(answer["executionArn"])

    def wait_for_execution(self, execution_arn: str, timeout_s: float = 600.0) -> ExecutionResult:
        """Polls the execution until it ends; raises TimeoutError when it still runs after `timeout_s`."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout_s
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] in contracts.TERMINAL_STATUSES:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still runs after {timeout_s} s")
            time.sleep(0.25)
        output = described.get("output")
        return ExecutionResult(
            arn=execution_arn,
            name=str(described["name"]),
            status=str(described["status"]),
            error=described.get("error"),
            cause=described.get("cause"),
            output=json.loads(output) if output else None,
        )

    def executions(self) -> list[dict[str, Any]]:
        """The training state machine's executions, newest first (ListExecutions)."""
        answer = self.client("stepfunctions").list_executions(
            stateMachineArn=self.deployment.state_machine_arn
        )
        return list(answer["executions"])

    def training_log(self, job_name: str) -> str:
        """The training container's log (stdout and stderr) of a job the compute plane ran."""
        job = self.plane.training.get(ACCOUNT_ID, REGION, job_name)
        if job is None:
            raise LocalAwsError(f"the compute plane ran no training job named {job_name}")
        return job.log_text()

    def training_cache_hits(self) -> int:
        """How many of the compute plane's training jobs reused an earlier job's model (step caching)."""
        return sum(reused_from(job.log_text()) is not None for job in self.plane.training.jobs())

    # -- serving -------------------------------------------------------------------------------------
    def describe_endpoint(self, endpoint_name: str | None = None) -> dict[str, Any]:
        name = endpoint_name or self.deployment.endpoint_name
        return dict(self.client("sagemaker").describe_endpoint(EndpointName=name))

    def invoke_endpoint(self, inputs: str | list[str], endpoint_name: str | None = None) -> dict[str, Any]:
        """InvokeEndpoint (sagemaker-runtime) with `{"inputs": ...}`; returns the container's JSON."""
        name = endpoint_name or self.deployment.endpoint_name
        answer = self.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name, Body=json.dumps({"inputs": inputs}), ContentType="application/json"
        )
        body: dict[str, Any] = json.loads(answer["Body"].read())
        return body

    # -- the API -------------------------------------------------------------------------------------
    def publish_api(self) -> dict[str, Any]:
        """Creates or updates the API stack by invoking the deployer's publish-api Lambda with `{}`
        (its direct-invoke contract); returns its answer (the stack's outputs)."""
        answer = self.client("lambda").invoke(
            FunctionName=self.deployment.publish_api_function, Payload=b"{}"
        )
        payload: dict[str, Any] = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            raise LocalAwsError(f"publish-api failed: {payload}")
        return payload

    def api(self) -> ApiAccess:
        """The API stack's URL and key; `local_url` is the gateway's URL for it (None when external)."""
        client = AwsClient(self.session(), endpoint_url=self.endpoint_url)
        stack_name = self.deployment.api_stack_name
        outputs = client.outputs(stack_name) if client.describe(stack_name) is not None else {}
        if "ApiUrl" not in outputs:
            raise LocalAwsError(
                f"the API stack {self.deployment.api_stack_name} is not published: call publish_api()"
            )
        key_id = outputs.get("ApiKeyId")
        key = None
        if key_id:
            key = str(self.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])
        return ApiAccess(
            invoke_url=outputs["ApiUrl"],
            local_url=self._gateway.local_url(outputs["ApiUrl"]) if self._gateway is not None else None,
            api_key=key,
            api_id=outputs["ApiId"],
            stage=outputs["StageName"],
        )
