"""Where a failed Step Functions execution's failure began, from its history and the state machine.

`doomed_states(definition)` are the states from which every way on ends in a Fail state;
`failure_origin(history, doomed)` is the state whose task failure led onto that path, else the path's
first state. A scenario's `failed_state` expectation reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from deployer.asl import transitions

# Step Functions history events that end a task state badly.
_TASK_FAILURES: Final = frozenset(
    {"TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskSubmitFailed", "TaskStartedFailed"}
)


def doomed_states(definition: Mapping[str, Any]) -> frozenset[str]:
    """The states from which every way on ends in a Fail state (a fixed point over Next, Choices,
    Default and Catch): entering one means the execution is failing."""
    states: Mapping[str, Mapping[str, Any]] = definition.get("States", {})

    def successors(state: Mapping[str, Any]) -> set[str]:
        return {str(target) for _, target in transitions(state)}

    doomed = {name for name, state in states.items() if state.get("Type") == "Fail"}
    changed = True
    while changed:
        changed = False
        for name, state in states.items():
            if name in doomed or state.get("Type") in ("Succeed", "Fail") or state.get("End"):
                continue
            following = successors(state)
            if following and following <= doomed:
                doomed.add(name)
                changed = True
    return frozenset(doomed)


def failure_origin(history: Sequence[Mapping[str, Any]], doomed: frozenset[str]) -> str | None:
    """The state where a failed execution's failure began: the state whose task failure led onto the
    failure path (e.g. `Train`), else the first state of that path (e.g. the Pass `BelowThreshold`)."""
    entered: str | None = None
    task_failed_in: str | None = None
    for event in sorted(history, key=lambda item: int(item.get("id", 0))):
        kind = str(event.get("type", ""))
        if kind.endswith("StateEntered"):
            name = str(event.get("stateEnteredEventDetails", {}).get("name", ""))
            if name in doomed:
                return task_failed_in if task_failed_in is not None else name
            if kind == "ChoiceStateEntered" and task_failed_in is not None:
                continue  # a Choice only routes: the caught task failure goes on through it
            entered, task_failed_in = name, None
        elif kind in _TASK_FAILURES:
            task_failed_in = entered
    return None
