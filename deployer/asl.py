"""Static checks of an Amazon States Language definition, before anything is deployed.

`validate(definition)` raises `AslError` listing every problem it finds: the structure (StartAt, States,
each state's type and its required fields), every transition target (Next, Default, Choices, Catch)
exists, every state is reachable from StartAt, every non-terminal state leads somewhere, and every Task
resource is one this project knows (`KNOWN_TASK_RESOURCES`). Parallel branches and Map processors are
checked as definitions of their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["KNOWN_TASK_RESOURCES", "AslError", "parse", "transitions", "validate"]

# The service integrations this project's state machines may call. A typo in a Resource would
# otherwise only show when an execution reaches that state.
KNOWN_TASK_RESOURCES = frozenset(
    {
        "arn:aws:states:::sagemaker:createTrainingJob",
        "arn:aws:states:::sagemaker:createTrainingJob.sync",
        "arn:aws:states:::sagemaker:createModel",
        "arn:aws:states:::sagemaker:createEndpointConfig",
        "arn:aws:states:::sagemaker:createEndpoint",
        "arn:aws:states:::sagemaker:updateEndpoint",
        "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
        "arn:aws:states:::aws-sdk:sagemaker:deleteEndpoint",
        "arn:aws:states:::aws-sdk:sagemaker:deleteEndpointConfig",
        "arn:aws:states:::aws-sdk:sagemaker:deleteModel",
        "arn:aws:states:::lambda:invoke",
    }
)

_STATE_TYPES = frozenset({"Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map"})
_TERMINAL_TYPES = frozenset({"Succeed", "Fail"})
_WAIT_FIELDS = ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")


class AslError(ValueError):
    """The definition is not valid; `problems` lists every finding."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid state machine definition:\n  - " + "\n  - ".join(problems))


def parse(text: str) -> dict[str, Any]:
    """Parse ASL JSON text, validate it and return it."""
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as error:
        raise AslError([f"not JSON: {error}"]) from error
    validate(definition)
    if not isinstance(definition, dict):  # validate() has rejected it already; this narrows the type
        raise AslError(["the definition is not a JSON object"])
    return definition


def validate(definition: object) -> None:
    """Raise `AslError` unless `definition` is a valid, fully connected state machine."""
    problems = list(_problems(definition, where=""))
    if problems:
        raise AslError(problems)


def _problems(definition: object, where: str) -> Iterator[str]:
    if not isinstance(definition, Mapping):
        yield f"{where or 'definition'}: not a JSON object"
        return
    states = definition.get("States")
    start = definition.get("StartAt")
    if not isinstance(states, Mapping) or not states:
        yield f"{where}States: missing or empty"
        return
    if not isinstance(start, str) or start not in states:
        yield f"{where}StartAt: {start!r} is not a state"
    for name, state in states.items():
        yield from _state_problems(f"{where}{name}", state, states)
    if isinstance(start, str) and start in states:
        unreachable = sorted(set(states) - _reachable(start, states))
        for name in unreachable:
            yield f"{where}{name}: not reachable from StartAt {start!r}"


def _state_problems(where: str, state: object, states: Mapping[str, Any]) -> Iterator[str]:
    if not isinstance(state, Mapping):
        yield f"{where}: not a JSON object"
        return
    kind = state.get("Type")
    if kind not in _STATE_TYPES:
        yield f"{where}: unknown Type {kind!r}"
        return
    for field, target in transitions(state):
        if target not in states:
            yield f"{where}: {field} names {target!r}, which is not a state"
    if kind in _TERMINAL_TYPES:
        if "Next" in state or "End" in state:
            yield f"{where}: a {kind} state takes neither Next nor End"
    elif kind == "Choice":
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            yield f"{where}: a Choice state needs a non-empty Choices list"
        elif any(not isinstance(rule, Mapping) or "Next" not in rule for rule in choices):
            yield f"{where}: every choice rule needs a Next"
    elif ("Next" in state) == (state.get("End") is True):
        yield f"{where}: needs exactly one of Next or End: true"
    if kind == "Task":
        resource = state.get("Resource")
        if resource not in KNOWN_TASK_RESOURCES:
            yield f"{where}: unknown Task resource {resource!r}"
    if kind == "Wait" and sum(field in state for field in _WAIT_FIELDS) != 1:
        yield f"{where}: a Wait state needs exactly one of {', '.join(_WAIT_FIELDS)}"
    for field in ("Retry", "Catch"):
        for rule in state.get(field, []):
            if not isinstance(rule, Mapping) or not rule.get("ErrorEquals"):
                yield f"{where}: every {field} rule needs a non-empty ErrorEquals"
    if kind == "Parallel":
        for index, branch in enumerate(state.get("Branches", [])):
            yield from _problems(branch, where=f"{where}.Branches[{index}].")
    if kind == "Map":
        processor = state.get("ItemProcessor", state.get("Iterator"))
        yield from _problems(processor, where=f"{where}.ItemProcessor.")


def transitions(state: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """A state's outgoing transitions as (field, target): Next, Default, each Choices[i].Next and
    each Catch[i].Next (the one reading of the ASL's edges; the scenarios' views use it too)."""
    if "Next" in state:
        yield "Next", state["Next"]
    if "Default" in state:
        yield "Default", state["Default"]
    for index, rule in enumerate(state.get("Choices", [])):
        if isinstance(rule, Mapping) and "Next" in rule:
            yield f"Choices[{index}].Next", rule["Next"]
    for index, rule in enumerate(state.get("Catch", [])):
        if isinstance(rule, Mapping) and "Next" in rule:
            yield f"Catch[{index}].Next", rule["Next"]


def _reachable(start: str, states: Mapping[str, Any]) -> set[str]:
    seen = {start}
    pending = [start]
    while pending:
        state = states[pending.pop()]
        if not isinstance(state, Mapping):
            continue
        for _, target in transitions(state):
            if target in states and target not in seen:
                seen.add(target)
                pending.append(target)
    return seen
