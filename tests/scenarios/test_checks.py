"""The expectation checker: observed state and an expectation in, pass/fail with expected and actual out."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import JsonValue, TypeAdapter

from harness.scenarios.checks import ABSENT, CheckContext, CheckResult, check, match_field
from harness.scenarios.interface import (
    EndpointView,
    ExecutionView,
    HttpExchange,
    Observation,
    PipelineExecutionView,
    StageView,
)
from harness.scenarios.schema import Expectation, Matcher

EXPECTATION: TypeAdapter[Any] = TypeAdapter(Expectation)


def expect(data: dict[str, Any]) -> Any:
    return EXPECTATION.validate_python(data)


def run(data: dict[str, Any], context: CheckContext) -> list[CheckResult]:
    return check(expect(data), context)


def failed(results: list[CheckResult]) -> list[str]:
    return [str(result) for result in results if not result.passed]


STAGES = ("Source", "Build", "Train", "Approve", "Register", "PublishApi")


def pipeline_run(
    execution_id: str, status: str, failed_at: str | None = None, reason: str = ""
) -> PipelineExecutionView:
    stages = []
    reached = True
    for name in STAGES:
        if not reached:
            stages.append(StageView(name, "NotRun"))
        elif name == failed_at:
            stages.append(StageView(name, "Failed", reason))
            reached = False
        else:
            stages.append(StageView(name, "Succeeded"))
    return PipelineExecutionView(execution_id, status, tuple(stages))


FIRST: dict[str, JsonValue] = {
    "Version": "intent-aaaa",
    "CommitId": "c1",
    "Accuracy": 0.92,
    "Hyperparameters": {"epochs": "8"},
    "ImageDigest": "sha256:" + "a" * 64,
}
SECOND: dict[str, JsonValue] = {
    "Version": "intent-bbbb",
    "CommitId": "c2",
    "Accuracy": 0.88,
    "Hyperparameters": {"epochs": "4"},
}


def test_pipeline_status_stages_and_failure_reason() -> None:
    now = Observation(
        pipeline_executions=(
            pipeline_run("p1", "Succeeded"),
            pipeline_run("p2", "Failed", failed_at="Register", reason="Exception: injected registry outage"),
        )
    )
    context = CheckContext(now=now)
    good = {
        "pipeline": {
            "status": "Failed",
            "failed_stage": "Register",
            "reason_contains": "registry outage",
            "stages": {"Approve": "Succeeded", "Register": "Failed", "PublishApi": "NotRun"},
            "count": 2,
        }
    }
    results = run(good, context)
    assert len(results) == 7 and failed(results) == []
    bad = {"pipeline": {"status": "Succeeded", "stages": {"Deploy": "Succeeded"}, "failed_stage": "Train"}}
    assert failed(run(bad, context)) == [
        "pipeline[latest].status: FAILED: expected Succeeded, actual Failed",
        "pipeline[latest].stages.Deploy: FAILED: expected Succeeded, actual <absent>",
        "pipeline[latest].failed_stage: FAILED: expected Train, actual Register",
    ]
    assert failed(run({"pipeline": {"which": "all", "status": "Succeeded"}}, context)) == [
        "pipeline[#2].status: FAILED: expected Succeeded, actual Failed"
    ]


def test_pipeline_expectation_without_any_run_fails_rather_than_passing_vacuously() -> None:
    results = run({"pipeline": {"status": "Succeeded"}}, CheckContext(now=Observation()))
    assert failed(results) == ["pipeline: FAILED: expected an execution, actual no pipeline execution"]


def test_execution_failed_state_error_cause_and_distinct_names() -> None:
    now = Observation(
        executions=(
            ExecutionView("intent-aaaa", "SUCCEEDED"),
            ExecutionView(
                "intent-aaaa",
                "FAILED",
                "Train",
                "TrainingPipelineFailed",
                "States.TaskFailed: channel 'training' lacks column(s) Query, Intent",
            ),
        )
    )
    context = CheckContext(now=now)
    ok = {
        "execution": {
            "status": "FAILED",
            "failed_state": "Train",
            "error": "TrainingPipelineFailed",
            "cause_contains": "lacks column",
            "count": 2,
        }
    }
    assert failed(run(ok, context)) == []
    assert failed(
        run({"execution": {"distinct_names": True, "failed_state": "BelowThreshold"}}, context)
    ) == [
        'execution.distinct_names: FAILED: expected no repeated name, actual ["intent-aaaa"]',
        "execution[latest].failed_state: FAILED: expected BelowThreshold, actual Train",
    ]
    assert failed(run({"execution": {"which": "all", "status": "SUCCEEDED"}}, context)) == [
        "execution[#2].status: FAILED: expected SUCCEEDED, actual FAILED in Train: TrainingPipelineFailed: "
        "States.TaskFailed: channel 'training' lacks column(s) Query, Intent"
    ]


def test_registry_fields_matchers_and_commit_references() -> None:
    context = CheckContext(now=Observation(registry=(FIRST, SECOND)), commits={"first": "c1", "second": "c2"})
    ok = {
        "registry": {
            "count": 2,
            "latest": {
                "CommitId": {"equals_commit_of": "second"},
                "Hyperparameters.epochs": "4",
                "Accuracy": {"ge": 0.8, "lt": 0.9},
            },
            "each": {"Version": {"matches": "^intent-", "not_equals": "x"}, "Accuracy": {"gt": 0.5}},
        }
    }
    assert failed(run(ok, context)) == []
    bad = {
        "registry": {
            "count": 1,
            "latest": {"CommitId": {"equals_commit_of": "first"}, "Missing": {"present": True}},
        }
    }
    assert failed(run(bad, context)) == [
        "registry.count: FAILED: expected 1, actual 2",
        "registry.latest.CommitId: FAILED: expected equals_commit_of first, actual c2",
        "registry.latest.Missing: FAILED: expected present true, actual <absent>",
    ]


def test_registry_consistency_needs_unique_versions_of_succeeded_executions() -> None:
    executions = (ExecutionView("intent-aaaa", "SUCCEEDED"), ExecutionView("intent-bbbb", "FAILED"))
    consistent = {"registry": {"consistent": True}}
    good = CheckContext(now=Observation(executions=executions, registry=(FIRST,)))
    assert failed(run(consistent, good)) == []
    bad = CheckContext(now=Observation(executions=executions, registry=(FIRST, FIRST, SECOND)))
    assert failed(run(consistent, bad)) == [
        "registry.consistent: FAILED: expected each Version once, each a succeeded execution, "
        "actual repeated: intent-aaaa; not a succeeded execution: intent-bbbb"
    ]


def test_registry_unchanged_since_a_step() -> None:
    before = Observation(registry=(FIRST,))
    unchanged = CheckContext(now=Observation(registry=(FIRST,)), snapshots={"good": before})
    assert failed(run({"registry": {"unchanged_since": "good"}}, unchanged)) == []
    grown = CheckContext(now=Observation(registry=(FIRST, SECOND)), snapshots={"good": before})
    (problem,) = failed(run({"registry": {"unchanged_since": "good"}}, grown))
    assert problem.startswith("registry: FAILED: expected unchanged since good:") and "intent-bbbb" in problem


def test_endpoint_config_changed_unchanged_and_pattern() -> None:
    old = Observation(endpoint=EndpointView("intent", "InService", "intent-aaaa-config"))
    new = Observation(endpoint=EndpointView("intent", "InService", "intent-bbbb-config"))
    moved = CheckContext(now=new, snapshots={"first": old})
    assert (
        failed(
            run(
                {
                    "endpoint": {
                        "status": "InService",
                        "config_changed_since": "first",
                        "config_name_matches": "-config$",
                    }
                },
                moved,
            )
        )
        == []
    )
    assert failed(run({"endpoint": {"config_unchanged_since": "first"}}, moved)) == [
        "endpoint.config: FAILED: expected unchanged since first (was intent-aaaa-config), "
        "actual intent-bbbb-config"
    ]
    gone = CheckContext(now=Observation(), snapshots={"first": old})
    assert failed(run({"endpoint": {"exists": False}}, gone)) == []
    assert failed(run({"endpoint": {"status": "InService", "config_unchanged_since": "first"}}, gone)) == [
        "endpoint.status: FAILED: expected InService, actual <absent>",
        "endpoint.config: FAILED: expected unchanged since first (was intent-aaaa-config), actual <absent>",
    ]


def answer(
    status: int | None, body: object, request: object = None, error: str | None = None
) -> HttpExchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = json.dumps(request).encode() if request is not None else b""
    return HttpExchange("POST", "/predict", sent, status, raw, error=error)


KNOWN = frozenset({"weather", "freeze_account"})


def test_http_status_body_and_predicates() -> None:
    request = {"inputs": ["what's the weather", "freeze my card"]}
    good = answer(200, {"predictions": [{"intent": "weather"}, {"intent": "freeze_account"}]}, request)
    context = CheckContext(now=Observation(), exchanges=[good, good], known_intents=KNOWN)
    every = {
        "http": {
            "status": 200,
            "body_contains": "predictions",
            "predicates": [
                "all_succeeded",
                "intent_in_known_intents",
                "one_prediction_per_input",
                "json_body",
            ],
        }
    }
    results = run(every, context)
    assert len(results) == 6 and failed(results) == []
    assert results[0].actual == "all 2 answers"


def test_http_failures_count_and_show_the_first_offender() -> None:
    unknown = answer(200, {"predictions": [{"intent": None}]}, {"inputs": "hum"})
    refused = answer(None, b"", error="Connection refused")
    context = CheckContext(now=Observation(), exchanges=[unknown, refused, unknown], known_intents=KNOWN)
    assert failed(
        run(
            {"http": {"status": [200, 201], "predicates": ["all_succeeded", "intent_in_known_intents"]}},
            context,
        )
    ) == [
        "http.status: FAILED: expected one of [200, 201], actual 1 of 3 answers differ; first (#2): "
        "no answer (Connection refused)",
        "http.all_succeeded: FAILED: expected every answer, actual 1 of 3 answers differ; first (#2): "
        "no answer (Connection refused) ",
        "http.intent_in_known_intents: FAILED: expected every answer, "
        "actual 3 of 3 answers differ; first (#1): "
        '200 {"predictions": [{"intent": null}]}',
    ]


def test_http_body_equals_compares_json_or_text() -> None:
    forbidden = answer(403, {"message": "Forbidden"})
    text = answer(400, b"bad request")
    assert (
        failed(
            run(
                {"http": {"body_equals": {"message": "Forbidden"}}},
                CheckContext(now=Observation(), exchanges=[forbidden]),
            )
        )
        == []
    )
    assert (
        failed(
            run({"http": {"body_equals": "bad request"}}, CheckContext(now=Observation(), exchanges=[text]))
        )
        == []
    )
    (problem,) = failed(
        run(
            {"http": {"body_equals": {"message": "Forbidden"}}},
            CheckContext(now=Observation(), exchanges=[text]),
        )
    )
    assert problem.endswith("first (#1): bad request")


def test_http_without_requests_fails() -> None:
    assert failed(run({"http": {"status": 200}}, CheckContext(now=Observation()))) == [
        "http: FAILED: expected answers to the step's requests, actual no request was sent"
    ]


def test_time_budget_of_the_step_and_the_scenario() -> None:
    context = CheckContext(now=Observation(), step_elapsed_s=12.34, scenario_elapsed_s=70.0)
    assert failed(run({"time": {"within_s": 20}}, context)) == []
    assert failed(run({"time": {"within_s": 60, "since": "scenario"}}, context)) == [
        "time.scenario: FAILED: expected <= 60 s, actual 70.0 s"
    ]


@pytest.mark.parametrize(
    ("check", "value", "passes"),
    [
        ("8", "8", True),
        (8, "8", False),  # a plain value is compared exactly: DynamoDB strings stay strings
        (Matcher(equals=None), None, True),
        (Matcher(one_of=["a", "b"]), "b", True),
        (Matcher(contains="conf"), "x-config", True),
        (Matcher(contains="conf"), ["config"], False),  # in a list, `contains` means an element
        (Matcher(gt=1, le=2), Decimal("2"), True),
        (Matcher(gt=1), "not a number", False),
        (Matcher(present=True), None, True),  # a null field is present
        (Matcher(not_equals="x"), None, True),
    ],
)
def test_field_matchers(check: Any, value: Any, passes: bool) -> None:
    assert match_field("f", value, check, {}).passed is passes


def test_an_absent_field_is_absent_not_null() -> None:
    assert match_field("f", ABSENT, Matcher(present=False), {}).passed
    assert not match_field("f", ABSENT, Matcher(equals=None), {}).passed
    assert match_field("f", ABSENT, None, {}).actual == "<absent>"
