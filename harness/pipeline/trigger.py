"""What starts the pipeline: a commit reaching the source repository, as on AWS.

A commit does not start the runner directly. `PipelineTrigger.commit(repository, ref)` pushes the commit
to the branch the pipeline's Source action follows, in the stand-in for the source repository (this
object keeps the branch head; the local git repository holds the commit), and then the source provider
does what AWS documents (CodePipeline user guide, "Start a pipeline execution in CodePipeline", "Source
actions and change detection methods"):

- CodeCommit: CodeCommit sends its "CodeCommit Repository State Change" event to the default event
  bus (`harness.pipeline.source.codecommit_event`, `harness.seams.events.emit_service_event`); the
  platform's SourceChangedRule matches it and EventBridge calls StartPipelineExecution with the rule's
  role (harness/seams/events.py). The execution's trigger is `CloudWatchEvent`. A commit to another
  branch, or a stack without the rule, starts nothing, as on AWS.
- CodeStarSourceConnection with DetectChanges (default true): the connection's change detection starts
  the pipeline itself (no rule, no webhook to create); the trigger is `Webhook` ("Webhook events for
  third-party sources ... connections configured for code push"), its detail the connection's ARN.
  DetectChanges false starts nothing.

A push of the commit the branch already points to changes no reference: no event, no detection. The
harness then does what a user does on AWS to run the pipeline again on the same revision (the
console's "Release change"): StartPipelineExecution, whose trigger is `StartPipelineExecution`.

StartPipelineExecution reaches this object through the CodePipeline seam (`register_pipeline_start`):
`_start` runs the execution in a thread of its own with the branch head as the Source action's
revision, as CodePipeline runs an execution in the background; `wait()` blocks for its result. The
trigger of each execution is what ListPipelineExecutions shows (`trigger_of`, for
harness.pipeline.state.state_listener).
"""

from __future__ import annotations

import datetime
import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import boto3

from harness.identity import FAKE_CREDENTIALS
from harness.pipeline.definition import Action, Pipeline
from harness.pipeline.model import PipelineResult, SourceRequest
from harness.pipeline.runner import PipelineRunner
from harness.pipeline.source import Commit, codecommit_event, snapshot_commit
from harness.seams.codepipeline import pipeline_starts, start_pipeline_as
from harness.seams.events import emit_service_event

# How long a pushed commit may take to start an execution (delivery is synchronous in the emulator:
# PutEvents' rule match and StartPipelineExecution finish before the push returns).
START_TIMEOUT_S = 30.0


class TriggerError(RuntimeError):
    """A commit that started no execution, or an execution that did not finish in time."""


@dataclass(frozen=True)
class _Head:
    repository: Path
    commit: Commit


@dataclass
class _Execution:
    source: SourceRequest
    trigger: dict[str, str]
    commit_id: str
    done: threading.Event
    result: PipelineResult | None = None
    error: BaseException | None = None


class PipelineTrigger:
    """The pipeline's source repository and change detection, and the executions they start."""

    def __init__(self, pipeline: Pipeline, account_id: str, region: str, endpoint_url: str) -> None:
        self.pipeline = pipeline
        self.account_id = account_id
        self.region = region
        self.endpoint_url = endpoint_url
        self._source = _source_action(pipeline)
        self._runner: PipelineRunner | None = None
        self._head: _Head | None = None
        self._executions: dict[str, _Execution] = {}
        self._changed = threading.Condition()

    @property
    def pipeline_arn(self) -> str:
        return f"arn:aws:codepipeline:{self.region}:{self.account_id}:{self.pipeline.name}"

    def register(self, runner: PipelineRunner) -> PipelineTrigger:
        """Serves the pipeline's StartPipelineExecution calls from now on, with `runner` (whose state
        listener may read `trigger_of`)."""
        if runner.pipeline.name != self.pipeline.name:
            raise ValueError(f"the runner runs {runner.pipeline.name}, not {self.pipeline.name}")
        self._runner = runner
        pipeline_starts(self.account_id, self.region).register(self.pipeline.name, self._start)
        return self

    def unregister(self) -> None:
        pipeline_starts(self.account_id, self.region).unregister(self.pipeline.name, self._start)

    # -- a commit in ----------------------------------------------------------------------------------
    def push(self, repository: Path, ref: str | None = None) -> tuple[Commit, bool]:
        """Pushes a commit of `repository` (`ref`, or the working tree as a commit) to the branch the
        Source action follows, and lets the source provider detect the change. Returns the commit, and
        whether the branch moved (a push of its head changes nothing and is detected by nothing)."""
        branch = self._source.configuration.get("BranchName") or "main"
        commit = replace(snapshot_commit(repository, ref), branch=branch)
        with self._changed:
            previous, self._head = self._head, _Head(repository, commit)
        if previous is not None and (previous.repository, previous.commit.commit_id) == (
            repository,
            commit.commit_id,
        ):
            return commit, False
        provider = self._source.action_type.provider
        if provider == "CodeCommit":
            name = self._source.configuration.get("RepositoryName") or repository.name
            stamp = datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            old = previous.commit.commit_id if previous is not None else None
            emit_service_event(
                codecommit_event(commit, name, self.region, self.account_id, old, str(uuid.uuid4()), stamp)
            )
        elif provider == "CodeStarSourceConnection":
            if self._source.configuration.get("DetectChanges", "true").lower() == "true":
                detail = self._source.configuration.get("ConnectionArn", "")
                start_pipeline_as(
                    None,
                    self.pipeline_arn,
                    {"triggerType": "Webhook", "triggerDetail": detail},
                    self.endpoint_url,
                )
        else:
            raise TriggerError(f"no change detection for a {provider} source here")
        return commit, True

    def commit(
        self, repository: Path, ref: str | None = None, timeout_s: float | None = None
    ) -> PipelineResult:
        """Pushes a commit and waits for the execution it starts (`timeout_s`: None waits as long as it
        runs); a commit that starts no execution within START_TIMEOUT_S is a TriggerError. The branch's
        head pushed again is released again (`release_change`)."""
        commit, moved = self.push(repository, ref)
        if not moved:
            return self.wait(self.release_change(), timeout_s)
        return self.wait(self.started_for(commit.commit_id), timeout_s)

    def release_change(self) -> str:
        """StartPipelineExecution as a user calls it (the console's "Release change"); the execution id."""
        client = boto3.client(
            "codepipeline", region_name=self.region, endpoint_url=self.endpoint_url, **FAKE_CREDENTIALS
        )
        return str(client.start_pipeline_execution(name=self.pipeline.name)["pipelineExecutionId"])

    # -- executions -----------------------------------------------------------------------------------
    def _start(self, execution_id: str, trigger: dict[str, str]) -> None:
        """StartPipelineExecution's work (called by the CodePipeline seam): run it in the background."""
        with self._changed:
            head = self._head
            if self._runner is None:
                raise TriggerError(f"{self.pipeline.name}: no runner is registered")
            if head is None:
                raise TriggerError(f"{self.pipeline.name}: the source repository has no commit to run")
            execution = _Execution(
                SourceRequest(head.repository, head.commit.commit_id),
                dict(trigger),
                head.commit.commit_id,
                threading.Event(),
            )
            self._executions[execution_id] = execution
            self._changed.notify_all()
        threading.Thread(
            target=self._run, args=(execution_id, execution), name=f"pipeline-{execution_id[:8]}", daemon=True
        ).start()

    def _run(self, execution_id: str, execution: _Execution) -> None:
        try:
            assert self._runner is not None  # checked by _start
            execution.result = self._runner.run(execution.source, execution_id)
        except BaseException as error:  # handed to the waiter, which raises it
            execution.error = error
        finally:
            execution.done.set()

    def trigger_of(self, execution_id: str) -> dict[str, str] | None:
        with self._changed:
            execution = self._executions.get(execution_id)
        return dict(execution.trigger) if execution is not None else None

    def started_for(self, commit_id: str, timeout_s: float = START_TIMEOUT_S) -> str:
        """The id of the execution started for `commit_id` (the newest), once one has started."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: [i for i, e in self._executions.items() if e.commit_id == commit_id], timeout_s
            )
        if not found:
            raise TriggerError(
                f"the commit {commit_id[:12]} started no execution of {self.pipeline.name} within "
                f"{timeout_s:.0f} s: nothing detected the change (the source action's change detection: "
                "the CodeCommit rule's branch and repository, or the connection's DetectChanges)"
            )
        return found[-1]

    def wait(self, execution_id: str, timeout_s: float | None = None) -> PipelineResult:
        """The execution's result, once it has finished; its error, raised, if the runner raised."""
        with self._changed:
            execution = self._executions.get(execution_id)
        if execution is None:
            raise TriggerError(f"no execution {execution_id} of {self.pipeline.name} was started here")
        if not execution.done.wait(timeout_s):
            raise TriggerError(f"the execution {execution_id} did not finish within {timeout_s:.0f} s")
        if execution.error is not None:
            raise execution.error
        assert execution.result is not None
        return execution.result


def _source_action(pipeline: Pipeline) -> Action:
    sources = [a for s in pipeline.stages for a in s.actions if a.action_type.category == "Source"]
    if len(sources) != 1:
        raise TriggerError(f"{pipeline.name}: the harness triggers pipelines with exactly one source action")
    return sources[0]
