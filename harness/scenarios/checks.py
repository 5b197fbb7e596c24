"""The expectation checker: pure functions from observed state and an expectation to pass/fail results.

Each result names what was checked and shows the expected and the actual value as text, so that a
failure report reads "registry.count: expected 1, actual 2" without the harness at hand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import JsonValue

from harness.scenarios.interface import ExecutionView, HttpExchange, Observation, PipelineExecutionView
from harness.scenarios.schema import (
    EndpointExpectation,
    ExecutionExpectation,
    Expectation,
    FieldCheck,
    HttpExpectation,
    Matcher,
    PipelineExpectation,
    RegistryExpectation,
    TimeExpectation,
    expectation_body,
)

_MISSING = "<absent>"
VERSION_FIELD = "Version"  # the registry item's key besides ModelName (deployer/lambdas/register_model.py)
_Run = TypeVar("_Run", PipelineExecutionView, ExecutionView)


@dataclass(frozen=True)
class CheckResult:
    subject: str  # what was checked, e.g. `pipeline.stages.Train`
    passed: bool
    expected: str
    actual: str

    def __str__(self) -> str:
        mark = "ok" if self.passed else "FAILED"
        return f"{self.subject}: {mark}: expected {self.expected}, actual {self.actual}"


@dataclass(frozen=True)
class CheckContext:
    """Everything an expectation may be checked against, after one step."""

    now: Observation
    snapshots: Mapping[str, Observation] = field(default_factory=dict)  # after each named step
    commits: Mapping[str, str] = field(default_factory=dict)  # commit step name -> commit id
    exchanges: Sequence[HttpExchange] = ()  # the step's requests
    known_intents: frozenset[str] = frozenset()
    step_elapsed_s: float = 0.0
    scenario_elapsed_s: float = 0.0


def check(expectation: Expectation, context: CheckContext) -> list[CheckResult]:
    """Checks one `expect` entry; every condition it states gives one result."""
    body = expectation_body(expectation)
    if isinstance(body, PipelineExpectation):
        return check_pipeline(body, context.now)
    if isinstance(body, ExecutionExpectation):
        return check_execution(body, context.now)
    if isinstance(body, RegistryExpectation):
        return check_registry(body, context)
    if isinstance(body, EndpointExpectation):
        return check_endpoint(body, context)
    if isinstance(body, HttpExpectation):
        return check_http(body, context.exchanges, context.known_intents)
    return check_time(body, context)


def _result(subject: str, expected: object, actual: object, passed: bool | None = None) -> CheckResult:
    ok = expected == actual if passed is None else passed
    return CheckResult(subject, ok, _text(expected), _text(actual))


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def _selected(which: str, items: Sequence[_Run]) -> list[tuple[str, _Run]]:
    if which == "latest":
        return [("latest", items[-1])] if items else []
    return [(f"#{number + 1}", item) for number, item in enumerate(items)]


def check_pipeline(expect: PipelineExpectation, now: Observation) -> list[CheckResult]:
    runs = now.pipeline_executions
    results: list[CheckResult] = []
    if expect.count is not None:
        results.append(_result("pipeline.count", expect.count, len(runs)))
    wants_run = expect.status or expect.stages or expect.failed_stage or expect.reason_contains
    if wants_run and not runs:
        return [*results, _result("pipeline", "an execution", "no pipeline execution", passed=False)]
    for label, run in _selected(expect.which, runs):
        results.extend(_pipeline_run(f"pipeline[{label}]", expect, run))
    return results


def _pipeline_run(prefix: str, expect: PipelineExpectation, run: PipelineExecutionView) -> list[CheckResult]:
    results: list[CheckResult] = []
    if expect.status is not None:
        results.append(_result(f"{prefix}.status", expect.status, run.status))
    stages = {stage.name: stage for stage in run.stages}
    for name, status in expect.stages.items():
        actual = stages[name].status if name in stages else _MISSING
        results.append(_result(f"{prefix}.stages.{name}", status, actual))
    if expect.failed_stage is not None:
        results.append(_result(f"{prefix}.failed_stage", expect.failed_stage, run.failed_stage or _MISSING))
    if expect.reason_contains is not None:
        results.append(_contains(f"{prefix}.reason", expect.reason_contains, run.reason))
    return results


def check_execution(expect: ExecutionExpectation, now: Observation) -> list[CheckResult]:
    runs = now.executions
    results: list[CheckResult] = []
    if expect.count is not None:
        results.append(_result("execution.count", expect.count, len(runs)))
    if expect.distinct_names:
        names = [run.name for run in runs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        results.append(
            _result(
                "execution.distinct_names",
                "no repeated name",
                repeated or "no repeated name",
                passed=not repeated,
            )
        )
    wants_run = expect.status or expect.failed_state or expect.error or expect.cause_contains
    if wants_run and not runs:
        return [*results, _result("execution", "an execution", "no execution", passed=False)]
    for label, run in _selected(expect.which, runs):
        results.extend(_execution_run(f"execution[{label}]", expect, run))
    return results


def _execution_run(prefix: str, expect: ExecutionExpectation, run: ExecutionView) -> list[CheckResult]:
    results: list[CheckResult] = []
    if expect.status is not None:
        results.append(_execution_status(prefix, expect.status, run))
    if expect.failed_state is not None:
        results.append(_result(f"{prefix}.failed_state", expect.failed_state, run.failed_state or _MISSING))
    if expect.error is not None:
        results.append(_result(f"{prefix}.error", expect.error, run.error or _MISSING))
    if expect.cause_contains is not None:
        results.append(_contains(f"{prefix}.cause", expect.cause_contains, run.cause))
    return results


def _execution_status(prefix: str, wanted: str, run: ExecutionView) -> CheckResult:
    """A run in another status than `wanted` shows why it ended so (state, error, cause), not just how."""
    if run.status == wanted:
        return _result(f"{prefix}.status", wanted, run.status)
    where = f" in {run.failed_state}" if run.failed_state else ""
    why = ": ".join(part for part in (run.error, run.cause) if part)
    actual = f"{run.status}{where}: {why}" if why else f"{run.status}{where}"
    return _result(f"{prefix}.status", wanted, actual, passed=False)


def _contains(what: str, needle: str, text: str | None) -> CheckResult:
    """`text` must contain `needle`; a missing text shows as missing, not as an empty string."""
    return _result(what, f"contains {needle!r}", text or _MISSING, passed=needle in (text or ""))


def check_registry(expect: RegistryExpectation, context: CheckContext) -> list[CheckResult]:
    items = context.now.registry
    results: list[CheckResult] = []
    if expect.count is not None:
        results.append(_result("registry.count", expect.count, len(items)))
    if expect.consistent:
        results.append(_registry_consistent(items, context.now))
    if expect.latest:
        if not items:
            results.append(_result("registry.latest", "an item", "an empty registry", passed=False))
        else:
            results.extend(_fields("registry.latest", items[-1], expect.latest, context.commits))
    for number, item in enumerate(items):
        results.extend(_fields(f"registry[{number + 1}]", item, expect.each, context.commits))
    if expect.unchanged_since is not None:
        before = context.snapshots[expect.unchanged_since].registry
        results.append(
            _result(
                "registry",
                f"unchanged since {expect.unchanged_since}: {_text(list(before))}",
                list(items),
                passed=list(items) == list(before),
            )
        )
    return results


def _registry_consistent(items: Sequence[Mapping[str, JsonValue]], now: Observation) -> CheckResult:
    """Each `Version` appears once and is the name of a succeeded training execution."""
    versions = [item.get(VERSION_FIELD) for item in items]
    succeeded = {run.name for run in now.executions if run.status == "SUCCEEDED"}
    repeated = sorted({str(v) for v in versions if versions.count(v) > 1})
    strangers = sorted(str(v) for v in versions if v not in succeeded)
    problems = [f"repeated: {', '.join(repeated)}"] if repeated else []
    if strangers:
        problems.append(f"not a succeeded execution: {', '.join(strangers)}")
    expected = "each Version once, each a succeeded execution"
    return CheckResult("registry.consistent", not problems, expected, "; ".join(problems) or expected)


def _fields(
    prefix: str, item: Mapping[str, JsonValue], checks: Mapping[str, FieldCheck], commits: Mapping[str, str]
) -> list[CheckResult]:
    return [
        match_field(f"{prefix}.{name}", _lookup(item, name), check, commits) for name, check in checks.items()
    ]


ABSENT: Any = object()  # a field the item does not have (a null field is present)


def _lookup(item: Mapping[str, JsonValue], dotted: str) -> Any:
    """`metrics.accuracy` reads nested mappings; an absent field is `ABSENT`."""
    value: Any = item
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return ABSENT
        value = value[part]
    return value


def match_field(subject: str, value: Any, check: FieldCheck, commits: Mapping[str, str]) -> CheckResult:
    """Checks one value against a scalar (equality) or a `Matcher` (every operator given must hold)."""
    actual = _MISSING if value is ABSENT else _text(value)
    if not isinstance(check, Matcher):
        return CheckResult(subject, value is not ABSENT and value == check, _text(check), actual)
    failures: list[str] = []
    expected: list[str] = []
    for operator in sorted(check.model_fields_set):
        operand = getattr(check, operator)
        expected.append(f"{operator} {_text(operand)}")
        if not _holds(operator, operand, value, commits):
            failures.append(operator)
    return CheckResult(subject, not failures, " and ".join(expected), actual)


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def _holds(operator: str, operand: Any, value: Any, commits: Mapping[str, str]) -> bool:
    if operator == "present":
        return (value is not ABSENT) is bool(operand)
    if value is ABSENT:
        return operator == "not_equals"
    if operator == "equals":
        return bool(value == operand)
    if operator == "not_equals":
        return bool(value != operand)
    if operator == "contains":
        return operand in value if isinstance(value, list | str) else operand in _text(value)
    if operator == "matches":
        return re.search(operand, value if isinstance(value, str) else _text(value)) is not None
    if operator == "one_of":
        return value in operand
    if operator == "equals_commit_of":
        return operand in commits and value == commits[operand]
    number = _number(value)
    return number is not None and _COMPARISONS[operator](number, operand)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # DynamoDB numbers may arrive as strings
        except ValueError:
            return None
    return None


def check_endpoint(expect: EndpointExpectation, context: CheckContext) -> list[CheckResult]:
    endpoint = context.now.endpoint
    results: list[CheckResult] = []
    if expect.exists is not None:
        results.append(_result("endpoint.exists", expect.exists, endpoint is not None))
    if expect.status is not None:
        results.append(_result("endpoint.status", expect.status, endpoint.status if endpoint else _MISSING))
    config = endpoint.config_name if endpoint else _MISSING
    for name, changed in ((expect.config_changed_since, True), (expect.config_unchanged_since, False)):
        if name is None:
            continue
        previous = context.snapshots[name].endpoint
        before = previous.config_name if previous else _MISSING
        verb = "changed" if changed else "unchanged"
        results.append(
            _result(
                "endpoint.config",
                f"{verb} since {name} (was {before})",
                config,
                passed=(config != before) == changed and config != _MISSING,
            )
        )
    if expect.config_name_matches is not None:
        results.append(
            _result(
                "endpoint.config",
                f"matches {expect.config_name_matches!r}",
                config,
                passed=endpoint is not None
                and re.search(expect.config_name_matches, endpoint.config_name) is not None,
            )
        )
    return results


def check_http(
    expect: HttpExpectation, exchanges: Sequence[HttpExchange], known_intents: frozenset[str]
) -> list[CheckResult]:
    if not exchanges:
        return [_result("http", "answers to the step's requests", "no request was sent", passed=False)]
    results: list[CheckResult] = []
    if expect.status is not None:
        wanted = expect.status if isinstance(expect.status, list) else [expect.status]
        results.append(
            _first_bad(
                "http.status",
                f"one of {wanted}" if len(wanted) > 1 else str(wanted[0]),
                exchanges,
                lambda x: x.status in wanted,
                _status_text,
            )
        )
    if "body_equals" in expect.model_fields_set:
        results.append(
            _first_bad(
                "http.body",
                _text(expect.body_equals),
                exchanges,
                lambda x: _body_value(x) == expect.body_equals,
                _body_text,
            )
        )
    if expect.body_contains is not None:
        needle = expect.body_contains
        results.append(
            _first_bad(
                "http.body",
                f"contains {needle!r}",
                exchanges,
                lambda x: needle in x.body.decode("utf-8", "replace"),
                _body_text,
            )
        )
    for predicate in expect.predicates:
        test = _PREDICATES[predicate]
        results.append(
            _first_bad(
                f"http.{predicate}",
                "every answer",
                exchanges,
                _with_intents(test, known_intents),
                _exchange_text,
            )
        )
    return results


def _with_intents(
    test: Callable[[HttpExchange, frozenset[str]], bool], known_intents: frozenset[str]
) -> Callable[[HttpExchange], bool]:
    return lambda exchange: test(exchange, known_intents)


def _first_bad(
    subject: str,
    expected: str,
    exchanges: Sequence[HttpExchange],
    good: Callable[[HttpExchange], bool],
    show: Callable[[HttpExchange], str],
) -> CheckResult:
    bad = [number for number, exchange in enumerate(exchanges) if not good(exchange)]
    if not bad:
        return CheckResult(subject, True, expected, f"all {len(exchanges)} answers")
    first = exchanges[bad[0]]
    actual = f"{len(bad)} of {len(exchanges)} answers differ; first (#{bad[0] + 1}): {show(first)}"
    return CheckResult(subject, False, expected, actual)


def _status_text(exchange: HttpExchange) -> str:
    return str(exchange.status) if exchange.status is not None else f"no answer ({exchange.error})"


def _body_text(exchange: HttpExchange) -> str:
    text = exchange.body.decode("utf-8", "replace")
    return text if len(text) <= 300 else text[:300] + "..."


def _exchange_text(exchange: HttpExchange) -> str:
    return f"{_status_text(exchange)} {_body_text(exchange)}"


def _body_value(exchange: HttpExchange) -> Any:
    text = exchange.body.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return ABSENT


def _all_succeeded(exchange: HttpExchange, _: frozenset[str]) -> bool:
    return exchange.status is not None and 200 <= exchange.status < 300


def _json_body(exchange: HttpExchange, _: frozenset[str]) -> bool:
    return _json(exchange.body) is not ABSENT


def _predictions(exchange: HttpExchange) -> list[Any] | None:
    answer = _json(exchange.body)
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    return predictions if isinstance(predictions, list) else None


def _intent_in_known_intents(exchange: HttpExchange, known: frozenset[str]) -> bool:
    predictions = _predictions(exchange)
    return bool(predictions) and all(
        isinstance(prediction, dict) and prediction.get("intent") in known for prediction in predictions or ()
    )


def _one_prediction_per_input(exchange: HttpExchange, _: frozenset[str]) -> bool:
    request = _json(exchange.request_body)
    inputs = request.get("inputs") if isinstance(request, dict) else None
    expected = 1 if isinstance(inputs, str) else len(inputs) if isinstance(inputs, list) else None
    predictions = _predictions(exchange)
    return expected is not None and predictions is not None and len(predictions) == expected


_PREDICATES: dict[str, Callable[[HttpExchange, frozenset[str]], bool]] = {
    "all_succeeded": _all_succeeded,
    "intent_in_known_intents": _intent_in_known_intents,
    "one_prediction_per_input": _one_prediction_per_input,
    "json_body": _json_body,
}


def check_time(expect: TimeExpectation, context: CheckContext) -> list[CheckResult]:
    elapsed = context.step_elapsed_s if expect.since == "step" else context.scenario_elapsed_s
    return [
        CheckResult(
            f"time.{expect.since}",
            elapsed <= expect.within_s,
            f"<= {expect.within_s:g} s",
            f"{elapsed:.1f} s",
        )
    ]
