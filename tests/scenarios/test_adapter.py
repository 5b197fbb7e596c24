"""The scenario adapter's own logic, fast: the scratch source repository, where a failed execution's
failure began (on the deployed state machine's definition), and the wiring of the factory.

The whole adapter over the real stack is exercised by the scenario set itself (`mlops scenario run
scenarios/`), which takes minutes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.pipeline.model import ActionResult, PipelineResult, StageResult
from harness.scenarios import adapter
from harness.scenarios.adapter import (
    HarnessError,
    LocalScenarioHarness,
    PipelineRun,
    commit_changes,
    doomed_states,
    failure_origin,
    scratch_repository,
    training_examples,
)
from harness.scenarios.binding import resolve_harness_factory
from harness.scenarios.interface import HarnessSettings
from tests.gitrepo import git

ASL = Path(__file__).resolve().parents[2] / "deployer" / "statemachine" / "training.asl.json"


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A user's repository: one commit, then an uncommitted edit and an untracked and an ignored file."""
    root = tmp_path / "origin"
    (root / "deployer").mkdir(parents=True)
    (root / "deployer" / "training.json").write_text(
        json.dumps({"Comment": "c", "Hyperparameters": {"epochs": "8", "seed": "42"}}), encoding="utf-8"
    )
    (root / "app.txt").write_text("committed\n", encoding="utf-8")
    (root / ".gitignore").write_text("ignored.txt\n", encoding="utf-8")
    git(root.parent, "init", "-q", "-b", "main", str(root))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    (root / "app.txt").write_text("edited, not committed\n", encoding="utf-8")
    (root / "new.txt").write_text("untracked\n", encoding="utf-8")
    (root / "ignored.txt").write_text("ignored\n", encoding="utf-8")
    return root


def test_the_scratch_clone_starts_from_the_working_tree_and_leaves_the_user_repository_alone(
    origin: Path, tmp_path: Path
) -> None:
    head, status = git(origin, "rev-parse", "HEAD"), git(origin, "status", "--porcelain")
    scratch = scratch_repository(tmp_path / "scratch", {"epochs": 2, "learning_rate": 0.0015}, origin)

    assert (scratch / "app.txt").read_text(encoding="utf-8") == "edited, not committed\n"
    assert (scratch / "new.txt").is_file()
    assert not (scratch / "ignored.txt").exists()
    training = json.loads((scratch / "deployer" / "training.json").read_text(encoding="utf-8"))
    assert training["Hyperparameters"] == {"epochs": "2", "seed": "42", "learning_rate": "0.0015"}
    assert git(scratch, "status", "--porcelain") == ""
    assert head in git(scratch, "log", "--format=%H").splitlines()  # the user's history is its history
    assert git(origin, "rev-parse", "HEAD") == head
    assert git(origin, "status", "--porcelain") == status
    assert git(origin, "branch", "--format=%(refname:short)") == "main"


def test_a_commit_writes_files_and_hyperparameters_and_is_a_new_revision(
    origin: Path, tmp_path: Path
) -> None:
    scratch = scratch_repository(tmp_path / "scratch", {}, origin)
    first = commit_changes(scratch, "change", {"sub/dir/file.txt": "hello\n"}, {"seed": 7})
    assert git(scratch, "rev-parse", "HEAD") == first
    assert git(scratch, "show", f"{first}:sub/dir/file.txt") == "hello"
    shown = json.loads(git(scratch, "show", f"{first}:deployer/training.json"))
    assert shown["Hyperparameters"]["seed"] == "7"
    assert git(scratch, "log", "-1", "--format=%s") == "change"

    again = commit_changes(scratch, "nothing changed", {}, {})
    assert again != first
    assert git(scratch, "rev-parse", f"{again}^") == first


def test_a_commit_refuses_paths_outside_the_repository(origin: Path, tmp_path: Path) -> None:
    scratch = scratch_repository(tmp_path / "scratch", {}, origin)
    with pytest.raises(HarnessError, match="not a path inside the repository"):
        commit_changes(scratch, "escape", {"../outside.txt": "x"}, {})
    assert not (tmp_path / "outside.txt").exists()


def test_a_failing_git_command_names_the_command_and_its_message(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="git rev-parse HEAD failed"):
        adapter.git(tmp_path, "rev-parse", "HEAD")


# ---------------------------------------------------------------------------------------------- failed state


@pytest.fixture(scope="module")
def doomed() -> frozenset[str]:
    return doomed_states(json.loads(ASL.read_text(encoding="utf-8")))


def test_doomed_states_of_the_training_state_machine(doomed: frozenset[str]) -> None:
    for name in ("ExecutionFailed", "BelowThreshold", "MetricMissing", "DeleteModel", "DeleteEndpointConfig"):
        assert name in doomed
    for name in ("Train", "QualityGate", "FindEndpoint", "CreateEndpoint", "DescribeEndpoint", "Deployed"):
        assert name not in doomed


def history(*steps: tuple[str, str]) -> list[Mapping[str, Any]]:
    """Events from (`entered`, state) and (`failed`, task failure type) pairs, ids in order."""
    events: list[Mapping[str, Any]] = [{"id": 1, "type": "ExecutionStarted"}]
    for number, (kind, value) in enumerate(steps, start=2):
        if kind == "entered":
            details = {"name": value}
            events.append({"id": number, "type": "TaskStateEntered", "stateEnteredEventDetails": details})
        else:
            events.append({"id": number, "type": value})
    return list(reversed(events))  # the order given must not matter: ids decide


def test_a_task_failure_that_leads_to_the_fail_state_names_its_task(doomed: frozenset[str]) -> None:
    events = history(("entered", "Train"), ("failed", "TaskFailed"), ("entered", "ExecutionFailed"))
    assert failure_origin(events, doomed) == "Train"


def test_a_task_failure_caught_into_a_choice_that_leads_to_the_fail_state_names_its_task(
    doomed: frozenset[str],
) -> None:
    # Train's failure is caught into CapacityShortage (a Choice: a capacity error waits and trains
    # again, any other failure goes to ExecutionFailed).
    assert "CapacityShortage" not in doomed
    events: list[Mapping[str, Any]] = [
        {"id": 1, "type": "ExecutionStarted"},
        {"id": 2, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Train"}},
        {"id": 3, "type": "TaskFailed"},
        {"id": 4, "type": "ChoiceStateEntered", "stateEnteredEventDetails": {"name": "CapacityShortage"}},
        {"id": 5, "type": "FailStateEntered", "stateEnteredEventDetails": {"name": "ExecutionFailed"}},
    ]
    assert failure_origin(events, doomed) == "Train"


def test_a_failure_without_a_task_error_names_the_first_state_of_the_failure_path(
    doomed: frozenset[str],
) -> None:
    events = history(
        ("entered", "Train"),
        ("entered", "HasMetrics"),
        ("entered", "ReadMetrics"),
        ("entered", "QualityGate"),
        ("entered", "BelowThreshold"),
        ("entered", "ExecutionFailed"),
    )
    assert failure_origin(events, doomed) == "BelowThreshold"


def test_a_caught_failure_that_recovers_is_not_where_the_failure_began(doomed: frozenset[str]) -> None:
    # FindEndpoint fails on a first deployment (no endpoint yet) and is caught into CreateEndpoint.
    events = history(
        ("entered", "FindEndpoint"),
        ("failed", "TaskFailed"),
        ("entered", "CreateEndpoint"),
        ("entered", "DescribeEndpoint"),
        ("failed", "TaskFailed"),
        ("entered", "EndpointFailed"),
        ("entered", "CreatedOrUpdated"),
        ("entered", "DeleteFailedEndpoint"),
        ("entered", "ExecutionFailed"),
    )
    assert failure_origin(events, doomed) == "DescribeEndpoint"


def test_a_succeeded_history_has_no_failed_state(doomed: frozenset[str]) -> None:
    events = history(
        ("entered", "Train"),
        ("entered", "FindEndpoint"),
        ("failed", "TaskFailed"),
        ("entered", "CreateEndpoint"),
        ("entered", "Deployed"),
    )
    assert failure_origin(events, doomed) is None


# ---------------------------------------------------------------------------------------------- wiring


def test_the_data_settings_name_real_rows(tmp_path: Path) -> None:
    clinc10 = training_examples("clinc10")
    assert len({example.intent for example in clinc10}) == 10
    csv = tmp_path / "d.csv"
    csv.write_text("Query,Intent\nhello there,greeting\n", encoding="utf-8")
    assert [(e.query, e.intent) for e in training_examples(csv)] == [("hello there", "greeting")]


def test_the_default_harness_is_this_adapter() -> None:
    assert resolve_harness_factory() is adapter.open_harness


# ------------------------------------------------------------------------------------------ pipeline views


STAGES = ["Source", "Build", "Train", "Approve", "Register", "PublishApi"]


def finished_run(statuses: dict[str, str], error: str | None = None) -> PipelineRun:
    result = PipelineResult("p", "exec-1", "Failed" if "Failed" in statuses.values() else "Succeeded", 1.0)
    for name, status in statuses.items():
        stage = StageResult(name, status, 1.0, 2.0)  # type: ignore[arg-type]
        action_error = error if status == "Failed" else None
        stage.actions.append(
            ActionResult(
                name,
                f"{name}Action",
                "Approval",
                "Manual",
                status,
                1.0,
                2.0,
                error=action_error,  # type: ignore[arg-type]
            )
        )
        result.stages.append(stage)
    return PipelineRun("c0ffee", result=result, started=True)


def test_a_finished_run_reports_every_stage_with_not_run_for_those_never_reached(tmp_path: Path) -> None:
    harness = LocalScenarioHarness(settings(tmp_path))
    run = finished_run(
        {"Source": "Succeeded", "Build": "Succeeded", "Train": "Succeeded", "Approve": "Failed"},
        "Rejected by scenario: accuracy dropped",
    )
    view = harness._pipeline_view(run, STAGES, {"exec-1"})
    assert view.execution_id == "exec-1" and view.status == "Failed" and view.trigger == "c0ffee"
    assert [(stage.name, stage.status) for stage in view.stages] == [
        ("Source", "Succeeded"),
        ("Build", "Succeeded"),
        ("Train", "Succeeded"),
        ("Approve", "Failed"),
        ("Register", "NotRun"),
        ("PublishApi", "NotRun"),
    ]
    assert view.failed_stage == "Approve"
    assert view.reason == "Rejected by scenario: accuracy dropped"


def test_queued_and_unrunnable_runs_are_visible_at_once(tmp_path: Path) -> None:
    harness = LocalScenarioHarness(settings(tmp_path))
    queued = harness._pipeline_view(PipelineRun("abc"), STAGES, set())
    assert queued.status == "InProgress" and {stage.status for stage in queued.stages} == {"NotRun"}
    unrunnable = PipelineRun("abc", error="GitError: bad ref", started=True)
    broken = harness._pipeline_view(unrunnable, STAGES, set())
    assert broken.status == "Failed" and broken.failed_stage == "Source"
    assert broken.reason == "GitError: bad ref"


def settings(tmp_path: Path) -> HarnessSettings:
    return HarnessSettings(scenario="s", work_dir=tmp_path, runtime="process", data="clinc10")
