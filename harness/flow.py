"""The main job: a commit in, a working HTTP API out, on the local stand-in for AWS (`mlops run`).

`LocalFlow` composes what exists and re-implements none of it:

1. `harness.local.LocalAws`, which assembles the whole stack (emulator, compute plane, Lambda
   runtime, API gateway, pipeline runner and image registry); `deploy()` with the flow's parameters;
2. the training data (a `Query,Intent` CSV) put under the data prefix of the data bucket;
3. `LocalAws.pipeline_runner()`: the deployed CodePipeline, started by a commit (`LocalAws.trigger`;
   this repository's working tree by default) → Build → Train → Approve → Register → PublishApi;
4. the API called over HTTP (the local gateway, with the key) with sample queries;
5. `harness.run_report`: the run's report folder.

Around it: `harness.flow_model` (options, each an `mlops run` option; errors; outcome), `harness.inputs`,
`harness.api_client`, `harness.model_registry`, `harness.log_follower`; the terminal text is
`mlops.run_commands`'s. Output is quiet: a line per stage and the training job's epoch and metric lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from harness import datasets, model_registry
from harness.api_client import ApiClient, ask
from harness.compute.training_cache import default_cache_root
from harness.control import ControlChannel
from harness.datasets import LabelledQuery
from harness.flow_model import (
    API_STAGE,
    SETUP_STAGE,
    FlowError,
    FlowOptions,
    FlowSummary,
    Query,
    SampleAnswer,
)
from harness.iam.reporting import with_denials
from harness.identity import ACCOUNT_ID, REGION
from harness.inputs import resolve_runtime, training_and_queries
from harness.local import DataObject, LocalAws, LocalAwsOptions
from harness.log_follower import TrainingLogFollower
from harness.pipeline import (
    ApprovalPolicy,
    PipelineEvent,
    PipelineResult,
    PipelineRunner,
    ProgressPrinter,
    PromptApproval,
    policy_named,
)
from harness.pipeline.trigger import TriggerError
from harness.run_report import write_run_report
from harness.seams.codepipeline import EmulatorApprovalBoard

LOG = logging.getLogger(__name__)


class LocalFlow:
    """The local stack with the deployed definitions and a pipeline runner over them."""

    def __init__(
        self,
        options: FlowOptions,
        write: Callable[[str], None] = print,
        events: Callable[[PipelineEvent], None] | None = None,
    ) -> None:
        """`write` takes the flow's lines; `events` the pipeline's (default: one line per event)."""
        self.options = options
        self.write = write
        self._pipeline_events = events if events is not None else ProgressPrinter(write)
        self.runtime = ""
        self.aws: LocalAws | None = None
        self.data: DataObject | None = None
        self._runner: PipelineRunner | None = None
        self.control = ControlChannel(options.work_dir)

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> LocalFlow:
        """Starts the stack, deploys the definitions and makes the pipeline runner."""
        options = self.options
        self.runtime = resolve_runtime(options.runtime)
        options.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            parameters = {
                "StartTrainingPollSeconds": f"{options.poll_seconds:g}",
                "PublishApiPollSeconds": f"{options.poll_seconds:g}",
                **options.parameters,
            }
            self.aws = LocalAws(
                LocalAwsOptions(
                    work_dir=options.work_dir,
                    runtime=self.runtime,
                    time_scale=options.time_scale,
                    timing=options.timing,
                    parameters=parameters,
                    training_cache=default_cache_root() if options.training_cache else None,
                    iam=options.iam,
                )
            ).start()
            self.aws.deploy()
            self._runner = self.aws.pipeline_runner(self._approval_policy(), self._pipeline_events)
        except BaseException:
            self.stop()
            raise
        return self

    def _approval_policy(self) -> ApprovalPolicy:
        if self.options.approval == "prompt":
            # The question goes to stderr (as a shell's `read -p` does): stdout stays the output, so
            # that `--json` keeps its summary as stdout's last line.
            return PromptApproval(stdout=sys.stderr)
        # `wait`: decided by PutApprovalResult (`mlops approve`, the console) or the channel's files.
        return policy_named(
            self.options.approval, self.control.approvals, board=EmulatorApprovalBoard(ACCOUNT_ID, REGION)
        )

    def stop(self) -> None:
        """Stops the stack: registry, gateway, endpoints, workers, emulator (newest first)."""
        aws, self.aws, self._runner = self.aws, None, None
        if aws is not None:
            aws.stop()

    def __enter__(self) -> LocalFlow:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def stack(self) -> LocalAws:
        if self.aws is None:
            raise FlowError(SETUP_STAGE, "the local stack is not started")
        return self.aws

    # -- steps ---------------------------------------------------------------------------------------
    def put_data(self, examples: Iterable[LabelledQuery], key: str | None = None) -> DataObject:
        """The training CSV under the data prefix (default key `<DataPrefix>train.csv`)."""
        self.data = self.stack.put_training_data(examples, key)
        return self.data

    def run_pipeline(self, source: Path | None = None, ref: str | None = None) -> PipelineResult:
        """The execution a commit of `source` (default: the options' repository) starts, as on AWS."""
        if self._runner is None:
            raise FlowError(SETUP_STAGE, "the flow is not started")
        follower = TrainingLogFollower(self.stack.options.work_dir / "compute", self.write).start()
        try:
            return self.stack.trigger.commit(source or self.options.source, ref)
        except TriggerError as error:
            raise FlowError("Source", str(error)) from error
        finally:
            follower.stop()

    def retrain_on_data(self, csv_path: Path, timeout_s: float = 900.0) -> dict[str, Any]:
        """Puts a CSV under the data prefix, which starts an execution through the definitions' own
        S3 -> EventBridge -> start-training path (no pipeline: it trains the last build), and waits
        for that execution. Returns its ARN, status, error and cause."""
        examples = datasets.read_csv(csv_path)
        before = {execution["executionArn"] for execution in self.stack.executions()}
        data = self.put_data(examples, f"{self.stack.deployment.data_prefix}{csv_path.name}")
        self.write(f"data: {len(examples)} rows -> {data.uri}; waiting for the execution it starts")
        deadline = time.monotonic() + 60
        started: list[dict[str, Any]] = []
        while not started:
            if time.monotonic() > deadline:
                raise FlowError("Data", f"putting {data.uri} started no execution within 60 s")
            time.sleep(0.5)
            started = [e for e in self.stack.executions() if e["executionArn"] not in before]
        follower = TrainingLogFollower(self.stack.options.work_dir / "compute", self.write).start()
        try:
            result = self.stack.wait_for_execution(started[0]["executionArn"], timeout_s)
        finally:
            follower.stop()
        return {
            "status": "succeeded" if result.succeeded else "failed",
            "execution_arn": result.arn,
            "execution_status": result.status,
            "error": result.error,
            "cause": result.cause,
            "data_uri": data.uri,
        }

    def ask_api(self, queries: Sequence[Query]) -> tuple[str, str, list[SampleAnswer], int]:
        """The queries through the published API, batched and throttle-aware: (URL, key, answers, 429s)."""
        access = self.stack.api()
        if access.local_url is None or access.api_key is None:
            raise FlowError(API_STAGE, "the API stack has no local URL or no API key")
        with ApiClient(access.local_url, access.api_key, self.options.api_batch_size) as client:
            return access.local_url, access.api_key, ask(client, queries), client.throttled

    def registry_item(self, version: str) -> dict[str, Any]:
        """The registry table's item for `version`, as plain JSON (DynamoDB types removed)."""
        table = self.stack.deployment.registry_table
        item = model_registry.registry_item(self.stack.client("dynamodb"), table, self.model_name, version)
        if item is None:
            raise FlowError("Register", f"the registry has no version {version} of {self.model_name}")
        return item

    def registry_versions(self) -> list[str]:
        """Every version in the registry table, sorted."""
        table = self.stack.deployment.registry_table
        return model_registry.registry_versions(self.stack.client("dynamodb"), table)

    @property
    def model_name(self) -> str:
        """The registry's ModelName: the register-model Lambda's MODEL_NAME (platform.yaml)."""
        lambdas, function = self.stack.client("lambda"), self.stack.deployment.register_model_function
        return model_registry.registered_model_name(lambdas, function)

    # -- one full run --------------------------------------------------------------------------------
    def complete_run(
        self,
        result: PipelineResult,
        queries: Sequence[Query],
        summary: FlowSummary,
        report_folder: Path | None = None,
    ) -> FlowSummary:
        """Fills `summary` from a pipeline result, calls the API with `queries`, writes the report (to
        `report_folder`, default the options' report folder)."""
        summary.stage_timings_s.update(result.stage_timings_s())
        summary.execution_id = result.execution_id
        train = result.variables.get("TrainVariables", {})
        summary.execution_arn = train.get("ExecutionArn") or None
        # Train deploys to the candidate endpoint; a succeeded run's PublishApi promoted the config to
        # the serving endpoint, the one the API calls.
        if result.succeeded:
            summary.endpoint_name = self.stack.deployment.endpoint_name
        else:
            summary.endpoint_name = train.get("EndpointName") or None
        summary.commit_id = result.variables.get("SourceVariables", {}).get("CommitId")
        summary.image_digest = result.variables.get("BuildVariables", {}).get("IMAGE_DIGEST")
        summary.model_version = result.variables.get("RegisterVariables", {}).get("ModelVersion")
        if summary.execution_arn:
            sfn = self.stack.client("stepfunctions")
            execution_input = json.loads(sfn.describe_execution(executionArn=summary.execution_arn)["input"])
            summary.data_version = execution_input.get("DataVersion")
        if not result.succeeded:
            summary.failed_stage = result.failed_stage
            summary.reason = result.reason
        else:
            try:
                if summary.model_version:
                    summary.registry_item = self.registry_item(summary.model_version)
                started = time.monotonic()
                summary.api_url, summary.api_key, summary.sample_answers, summary.api_throttled = (
                    self.ask_api(queries)
                )
                summary.stage_timings_s[API_STAGE] = round(time.monotonic() - started, 3)
                failed = [a for a in summary.sample_answers if a.http_status != 200 or a.intent is None]
                if failed:
                    count = f"{len(failed)} of {len(summary.sample_answers)}"
                    raise FlowError(API_STAGE, f"{count} API calls failed, the first: {failed[0]}")
                summary.status = "succeeded"
            except FlowError as error:
                summary.failed_stage, summary.reason = error.stage, error.reason
        summary.access_denied = self.stack.access_denials()
        if not summary.succeeded:
            summary.reason = with_denials(summary.reason, summary.access_denied)
        folder = report_folder if report_folder is not None else self.options.report_folder
        try:
            write_run_report(self.stack, result, summary, folder)
            summary.report_dir = str(folder)
        except Exception as error:
            LOG.warning("the report could not be written: %s", error)
            if summary.succeeded:
                summary.status, summary.failed_stage = "failed", "Report"
                summary.reason = f"the report could not be written: {error}"
        return summary


def run_flow(options: FlowOptions, write: Callable[[str], None] = print) -> FlowSummary:
    """`mlops run`: start, deploy, data, pipeline, API calls, report; then stop everything."""
    with LocalFlow(options, write) as flow:
        return run_once(flow, write)


def run_once(flow: LocalFlow, write: Callable[[str], None] = print) -> FlowSummary:
    """The flow's steps on a started `LocalFlow` (the stack stays up afterwards)."""
    options = flow.options
    summary = FlowSummary(runtime=flow.runtime, emulator_url=flow.stack.endpoint_url)
    started = time.monotonic()
    try:
        training, queries = training_and_queries(options.data, options.queries, options.samples)
        data = flow.put_data(training)
        version = f" (version {data.version_id})" if data.version_id else ""
        write(f"data: {len(training)} rows -> {data.uri}{version}")
    except (FlowError, ValueError) as error:
        summary.failed_stage, summary.reason = SETUP_STAGE, str(error)
        return summary
    result = flow.run_pipeline(options.source, options.ref)
    flow.complete_run(result, queries, summary)
    summary.wall_s = round(time.monotonic() - started, 3)
    return summary
