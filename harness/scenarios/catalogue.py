"""The catalogue of steps (triggers and other actions), faults, waits and expectations, made from the schema.

`describe_catalogue()` is what `mlops scenario run --help` prints; it reads the models' docstrings,
fields, types, defaults and descriptions, so it cannot drift from what the loader accepts.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from harness.scenarios.schema import (
    FAULT_MODELS,
    HTTP_PREDICATES,
    ApiRequests,
    ApprovalChoice,
    CommitTrigger,
    EndpointExpectation,
    ExecutionExpectation,
    HttpExpectation,
    Matcher,
    PipelineExpectation,
    RegistryExpectation,
    RerunTrigger,
    S3PutTrigger,
    ScenarioSettings,
    TimeExpectation,
    WaitExecution,
    WaitForApproval,
    WaitPipeline,
)

STEPS: dict[str, type[BaseModel]] = {
    "commit": CommitTrigger,
    "s3_put": S3PutTrigger,
    "rerun": RerunTrigger,
    "approval": ApprovalChoice,
    "requests": ApiRequests,
}
WAITS: dict[str, type[BaseModel]] = {
    "pipeline": WaitPipeline,
    "execution": WaitExecution,
    "approval": WaitForApproval,
}
EXPECTATIONS: dict[str, type[BaseModel]] = {
    "pipeline": PipelineExpectation,
    "execution": ExecutionExpectation,
    "registry": RegistryExpectation,
    "endpoint": EndpointExpectation,
    "http": HttpExpectation,
    "time": TimeExpectation,
}


def describe_catalogue() -> str:
    """A plain-text listing of settings, triggers and actions, faults, waits, expectations and predicates."""
    sections = [
        "SETTINGS (settings:)",
        *_fields(ScenarioSettings, indent=2),
        "",
        "STEPS (steps: a list; each step has exactly one of these keys, plus optional `name:` and `expect:`)",
        *_entries(STEPS),
        f"  {'fault':<19} Injects a fault (one of FAULTS below).",
        f"  {'wait':<19} Waits for a status (one of WAITS below).",
        "",
        "FAULTS (fault: {kind: ...})",
        *_entries({_kind(model): model for model in FAULT_MODELS}, skip={"kind"}),
        "",
        "WAITS (wait: exactly one of these keys)",
        *_entries(WAITS),
        "",
        "EXPECTATIONS (expect: a list; each entry has exactly one of these keys)",
        *_entries(EXPECTATIONS),
        "",
        "FIELD CHECKS (registry latest/each: field -> a value, or a matcher whose operators must all hold)",
        *_fields(Matcher, indent=2),
        "",
        "HTTP PREDICATES (http: {predicates: [...]})",
        *(f"  {name:<25} {text}" for name, text in HTTP_PREDICATES.items()),
    ]
    return "\n".join(sections)


def _kind(model: type[BaseModel]) -> str:
    (value,) = typing.get_args(model.model_fields["kind"].annotation)
    return str(value)


def _entries(models: dict[str, type[BaseModel]], skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
    lines: list[str] = []
    for key, model in models.items():
        lines.append(f"  {key:<19} {_first_line(model.__doc__)}")
        lines.extend(_fields(model, indent=24, skip=skip))
    return lines


def _fields(model: type[BaseModel], indent: int, skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
    lines = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        key = info.alias or name
        text = f"{' ' * indent}{key}: {_type(info.annotation)}{_default(info)}"
        if info.description:
            text += f"  -- {info.description}"
        lines.append(text)
    return lines


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return " (required)"
    if info.default_factory is not None or info.default is None or info.default is PydanticUndefined:
        return ""
    return f" = {info.default!r}"


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def _type(annotation: Any) -> str:
    """A short, readable form of a field's type: `'a' | 'b'`, `[str]`, `{str: int}`, `int`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is typing.Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type(arg) for arg in args if arg is not type(None))
    if origin is list:
        return f"[{_type(args[0])}]"
    if origin is dict:
        return f"{{{_type(args[0])}: {_type(args[1])}}}"
    if hasattr(annotation, "__value__"):  # a type alias such as pydantic's JsonValue
        return "json"
    if annotation is Matcher:
        return "matcher"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "{" + ", ".join(annotation.model_fields) + "}"
    return getattr(annotation, "__name__", str(annotation))


if (
    __name__ == "__main__"
):  # `python -m harness.scenarios.catalogue` prints it (to refresh scenarios/README.md)
    print(describe_catalogue())
