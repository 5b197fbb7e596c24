"""Where a failed execution's failure began (harness/scenarios/failure_origin.py), on the deployed state
machine's definition."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.scenarios.failure_origin import doomed_states, failure_origin

ASL = Path(__file__).resolve().parents[2] / "deployer" / "statemachine" / "training.asl.json"


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
