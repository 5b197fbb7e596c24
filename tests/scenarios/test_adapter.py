"""The scenario adapter's own logic, fast: the data settings, the pipeline views and the wiring of the
factory (the scratch repository and the failure origin have their own test modules).

The whole adapter over the real stack is exercised by the scenario set itself (`mlops scenario run
scenarios/`), which takes minutes.
"""

from __future__ import annotations

from pathlib import Path

from harness.pipeline.model import ActionResult, PipelineResult, StageResult
from harness.scenarios import adapter
from harness.scenarios.adapter import (
    LocalScenarioHarness,
    PipelineRun,
    training_examples,
)
from harness.scenarios.binding import resolve_harness_factory
from harness.scenarios.interface import HarnessSettings


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
                status,  # type: ignore[arg-type]
                1.0,
                2.0,
                error=action_error,
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
