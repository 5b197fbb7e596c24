"""The scenario set in scenarios/: every file loads, and the set stays fast enough for CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.scenarios.loader import LoadedScenario, load_all
from harness.scenarios.schema import FaultStep, RequestsStep, RerunStep, S3PutStep, step_kind

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
EXPECTED = {
    "happy-commit",
    "s3-data-change",
    "training-fails-bad-data",
    "quality-gate-rejects",
    "endpoint-never-healthy",
    "lambda-action-fails",
    "approval-rejected",
    "second-commit-no-failed-request",
    "two-triggers-at-once",
    "bad-requests",
    "rerun-changes-nothing",
    "capacity-failure-retried",
    "training-quota-exceeded",
    "api-throttled-retried",
    "endpoint-update-rolled-back",
    "lambda-action-raises-retried",
    "model-server-dies-replaced",
}


@pytest.fixture(scope="module")
def scenario_set() -> list[LoadedScenario]:
    return load_all([SCENARIOS])


def test_every_scenario_of_the_issue_is_a_file_that_loads(scenario_set: list[LoadedScenario]) -> None:
    assert {item.scenario.name for item in scenario_set} == EXPECTED
    for item in scenario_set:
        assert item.path.stem == item.scenario.name, "one scenario per file, named after it"


def test_the_set_is_small_enough_for_ci(scenario_set: list[LoadedScenario]) -> None:
    for item in scenario_set:
        settings = item.scenario.settings
        assert settings.runtime == "process", item.path
        assert settings.data == "clinc10", item.path
        assert settings.hyperparameters.model_preset == "tiny", item.path
        assert (settings.hyperparameters.epochs or 8) <= 8, item.path
        assert settings.time_scale is not None and settings.time_scale <= 0.01, item.path


def test_the_set_exercises_every_trigger_and_fault(scenario_set: list[LoadedScenario]) -> None:
    steps = [step for item in scenario_set for step in item.scenario.steps]
    assert {"commit", "s3_put", "rerun", "approval", "requests", "fault", "wait"} <= {
        step_kind(s) for s in steps
    }
    faults = {step.fault.kind for step in steps if isinstance(step, FaultStep)}
    assert faults == {
        "bad_data",
        "endpoint_unhealthy",
        "lambda_raises",
        "capacity_shortage",
        "api_error",
        "server_dies",
        "clear",
    }
    assert any(isinstance(step, S3PutStep) for step in steps) and any(isinstance(s, RerunStep) for s in steps)


def test_bad_requests_cover_the_four_refusals(scenario_set: list[LoadedScenario]) -> None:
    (bad,) = [item.scenario for item in scenario_set if item.scenario.name == "bad-requests"]
    requests = [step for step in bad.steps if isinstance(step, RequestsStep)]
    assert any(step.requests.key == "none" for step in requests)
    assert any(
        step.requests.text is not None and step.requests.content_type == "application/json"
        for step in requests
    )
    assert any((step.requests.filler_bytes or 0) > 6 * 1024 * 1024 for step in requests)
    assert any(step.requests.content_type == "text/plain" for step in requests)
