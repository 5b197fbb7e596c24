"""The state machine definition is checked before anything is deployed: deployer.asl."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from deployer import asl
from deployer.compile import ASL_PATH


def definition() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(ASL_PATH.read_text(encoding="utf-8"))
    return loaded


def problems_of(broken: object) -> list[str]:
    with pytest.raises(asl.AslError) as caught:
        asl.validate(broken)
    return caught.value.problems


def test_the_training_state_machine_is_valid() -> None:
    asl.validate(definition())


def test_every_task_resource_of_the_training_state_machine_is_known() -> None:
    resources = {state["Resource"] for state in definition()["States"].values() if state["Type"] == "Task"}
    assert resources <= asl.KNOWN_TASK_RESOURCES
    assert "arn:aws:states:::sagemaker:createTrainingJob.sync" in resources


def test_a_next_naming_no_state_is_rejected() -> None:
    broken = definition()
    broken["States"]["CreateModel"]["Next"] = "CreateEndpointCnfig"
    assert any("'CreateEndpointCnfig', which is not a state" in p for p in problems_of(broken))


def test_a_catch_target_naming_no_state_is_rejected() -> None:
    broken = definition()
    broken["States"]["Train"]["Catch"][0]["Next"] = "Nowhere"
    assert any("Catch[0].Next names 'Nowhere'" in p for p in problems_of(broken))


def test_an_unreachable_state_is_rejected() -> None:
    broken = definition()
    broken["States"]["Orphan"] = {"Type": "Succeed"}
    assert problems_of(broken) == ["Orphan: not reachable from StartAt 'FirstTrainingAttempt'"]


def test_an_unknown_task_resource_is_rejected() -> None:
    broken = definition()
    broken["States"]["CreateModel"]["Resource"] = "arn:aws:states:::sagemaker:createModle"
    assert any("unknown Task resource" in p and "createModle" in p for p in problems_of(broken))


def test_a_missing_start_and_a_dead_end_are_rejected() -> None:
    broken = definition()
    broken["StartAt"] = "Begin"
    del broken["States"]["WaitForEndpoint"]["Next"]
    found = problems_of(broken)
    assert "StartAt: 'Begin' is not a state" in found
    assert "WaitForEndpoint: needs exactly one of Next or End: true" in found


def test_a_choice_without_rules_and_a_wait_without_time_are_rejected() -> None:
    broken = definition()
    broken["States"]["QualityGate"]["Choices"] = []
    del broken["States"]["WaitForEndpoint"]["Seconds"]
    found = problems_of(broken)
    assert "QualityGate: a Choice state needs a non-empty Choices list" in found
    assert any(p.startswith("WaitForEndpoint: a Wait state needs exactly one of") for p in found)


def test_nested_branches_are_checked() -> None:
    parallel = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "End": True,
                "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Missing"}}}],
            }
        },
    }
    assert problems_of(parallel) == ["Both.Branches[0].A: Next names 'Missing', which is not a state"]


def test_parse_rejects_text_that_is_not_json() -> None:
    with pytest.raises(asl.AslError, match="not JSON"):
        asl.parse('{"StartAt": ')


def test_validation_leaves_the_definition_unchanged() -> None:
    original = definition()
    checked = copy.deepcopy(original)
    asl.validate(checked)
    assert checked == original
