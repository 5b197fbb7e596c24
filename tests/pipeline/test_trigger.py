"""A commit starts the deployed pipeline as on AWS (harness/pipeline/trigger.py).

Sources: CodePipeline user guide, "CodeCommit source actions and EventBridge" (a pipeline made by
CloudFormation with PollForSourceChanges false starts through an EventBridge rule whose target is the
pipeline, with a role allowing codepipeline:StartPipelineExecution) and "Start a pipeline execution in
CodePipeline" (trigger types: `CloudWatchEvent` for change detection on a code push to CodeCommit,
`Webhook` for connections configured for code push); CodeCommit user guide, "Monitoring CodeCommit
events in Amazon EventBridge" (the event); CodePipeline API reference, "ExecutionTrigger".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.emulator import ACCOUNT_ID, REGION, EmbeddedEmulator
from harness.pipeline.artifacts import ArtifactStore
from harness.pipeline.runner import PipelineRunner
from harness.pipeline.source import codecommit_event, git_source_action, snapshot_commit
from harness.pipeline.state import state_listener
from harness.pipeline.trigger import PipelineTrigger, TriggerError
from harness.pipeline.wiring import DeployedPipeline
from harness.seams.events import emit_service_event
from tests.pipeline.conftest import git
from tests.pipeline.platform import deploy_platform

CONNECTION = f"arn:aws:codestar-connections:{REGION}:{ACCOUNT_ID}:connection/abc"


@pytest.fixture(scope="module")
def platforms(
    emulator: EmbeddedEmulator,
) -> Iterator[tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline]]:
    codecommit = deploy_platform(emulator, "trig")
    connection = deploy_platform(
        emulator,
        "trig-gh",
        SourceProvider="CodeStarConnection",
        FullRepositoryId="me/repo",
        ConnectionArn=CONNECTION,
    )
    yield emulator, codecommit, connection


def _trigger(emulator: EmbeddedEmulator, deployed: DeployedPipeline, tmp_path: Path) -> PipelineTrigger:
    """The deployed pipeline's Source stage alone, run by a runner registered for StartPipelineExecution."""
    pipeline = replace(deployed.pipeline, stages=deployed.pipeline.stages[:1])
    trigger = PipelineTrigger(pipeline, ACCOUNT_ID, REGION, emulator.endpoint_url)
    store = ArtifactStore(
        tmp_path / "artifacts", pipeline.artifact_bucket, pipeline.name, emulator.client("s3")
    )
    states = emulator.context.pipeline_states(ACCOUNT_ID, REGION)
    runner = PipelineRunner(
        pipeline,
        {
            ("Source", "CodeCommit"): git_source_action,
            ("Source", "CodeStarSourceConnection"): git_source_action,
        },
        store,
        tmp_path / "work",
        state_listener=state_listener(states, ACCOUNT_ID, REGION, trigger.trigger_of),
    )
    return trigger.register(runner)


def test_a_codecommit_commit_starts_the_pipeline_through_the_rule(
    platforms: tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline], repository: Path, tmp_path: Path
) -> None:
    emulator, deployed, _ = platforms
    trigger = _trigger(emulator, deployed, tmp_path)
    try:
        result = trigger.commit(repository, timeout_s=60)
        assert result.status == "Succeeded", result.reason
        assert result.variables["SourceVariables"]["CommitId"] == git(repository, "rev-parse", "HEAD")
        (summary,) = emulator.client("codepipeline").list_pipeline_executions(pipelineName="trig-pipeline")[
            "pipelineExecutionSummaries"
        ]
        assert summary["pipelineExecutionId"] == result.execution_id
        assert summary["trigger"] == {
            "triggerType": "CloudWatchEvent",
            "triggerDetail": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{_rule_name(emulator)}",
        }
    finally:
        trigger.unregister()


def _rule_name(emulator: EmbeddedEmulator) -> str:
    rules = emulator.client("events").list_rules()["Rules"]
    (rule,) = [r for r in rules if "trig-platform" in r["Name"] and "SourceChanged" in r["Name"]]
    return str(rule["Name"])


def test_a_commit_to_another_branch_starts_nothing(
    platforms: tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline], repository: Path, tmp_path: Path
) -> None:
    emulator, deployed, _ = platforms
    trigger = _trigger(emulator, deployed, tmp_path)
    try:
        commit = replace(snapshot_commit(repository), branch="feature")
        emit_service_event(codecommit_event(commit, "gptneo-intent", REGION, ACCOUNT_ID))
        with pytest.raises(TriggerError, match="started no execution"):
            trigger.started_for(commit.commit_id, timeout_s=1)
    finally:
        trigger.unregister()


def test_a_connection_detects_the_push_itself(
    platforms: tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline], repository: Path, tmp_path: Path
) -> None:
    emulator, _, deployed = platforms
    trigger = _trigger(emulator, deployed, tmp_path)
    try:
        result = trigger.commit(repository, timeout_s=60)
        assert result.status == "Succeeded", result.reason
        assert result.variables["SourceVariables"]["ConnectionArn"] == CONNECTION
        (summary,) = emulator.client("codepipeline").list_pipeline_executions(
            pipelineName="trig-gh-pipeline"
        )["pipelineExecutionSummaries"]
        assert summary["trigger"] == {"triggerType": "Webhook", "triggerDetail": CONNECTION}
    finally:
        trigger.unregister()


def test_start_pipeline_execution_by_a_caller_is_that_trigger(
    platforms: tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline], repository: Path, tmp_path: Path
) -> None:
    emulator, deployed, _ = platforms
    trigger = _trigger(emulator, deployed, tmp_path)
    try:
        trigger.push(repository)  # the branch has a head; a console user then starts the pipeline
        codepipeline = emulator.client("codepipeline")
        execution_id = codepipeline.start_pipeline_execution(name="trig-pipeline")["pipelineExecutionId"]
        assert trigger.wait(execution_id, 60).status == "Succeeded"
        summaries = codepipeline.list_pipeline_executions(pipelineName="trig-pipeline")[
            "pipelineExecutionSummaries"
        ]
        mine = next(s for s in summaries if s["pipelineExecutionId"] == execution_id)
        assert mine["trigger"]["triggerType"] == "StartPipelineExecution"
        execution = codepipeline.get_pipeline_execution(
            pipelineName="trig-pipeline", pipelineExecutionId=execution_id
        )["pipelineExecution"]
        assert (execution["status"], execution["pipelineVersion"]) == ("Succeeded", 1)
        assert execution["trigger"]["triggerType"] == "StartPipelineExecution"
        assert execution["artifactRevisions"][0]["revisionId"] == git(repository, "rev-parse", "HEAD")
    finally:
        trigger.unregister()


def test_the_same_commit_again_is_released_again(
    platforms: tuple[EmbeddedEmulator, DeployedPipeline, DeployedPipeline], repository: Path, tmp_path: Path
) -> None:
    """A push of the branch's head changes no reference (no CodeCommit event); running the pipeline
    again on it is a StartPipelineExecution (the console's "Release change")."""
    emulator, deployed, _ = platforms
    trigger = _trigger(emulator, deployed, tmp_path)
    try:
        first = trigger.commit(repository, timeout_s=60)
        commit, moved = trigger.push(repository)
        assert not moved and commit.commit_id == first.variables["SourceVariables"]["CommitId"]
        again = trigger.commit(repository, timeout_s=60)
        assert again.status == "Succeeded" and again.execution_id != first.execution_id
        assert trigger.trigger_of(first.execution_id) == {
            "triggerType": "CloudWatchEvent",
            "triggerDetail": f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{_rule_name(emulator)}",
        }
        assert trigger.trigger_of(again.execution_id) == {
            "triggerType": "StartPipelineExecution",
            "triggerDetail": "",
        }
    finally:
        trigger.unregister()
