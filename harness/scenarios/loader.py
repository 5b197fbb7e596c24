"""Loading scenario files: YAML to a validated `Scenario`, with errors that name the file, line and field.

The YAML is composed into nodes first (which carry their line and column), then constructed into plain
data and validated. Each pydantic error's `loc` is walked through the node tree to the deepest node it
reaches, so `steps.2.commit.files` points at the line of `files:`; an unknown key points at the key
itself; a missing field at the mapping that lacks it. Union tags in a `loc` (which are not YAML keys)
are skipped. YAML syntax errors and duplicate keys (which PyYAML would silently overwrite) are reported
the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harness.scenarios.schema import Scenario

SCENARIO_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Problem:
    """One error in a scenario file, located as precisely as the YAML allows."""

    file: Path
    line: int  # 1-based
    column: int  # 1-based
    field: str  # dotted path of the field (`steps.2.commit.files`); empty for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ScenarioLoadError(Exception):
    """A scenario file that cannot be used; `problems` lists every error found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


@dataclass(frozen=True)
class LoadedScenario:
    """A validated scenario and the file it came from (paths in it are resolved against that file)."""

    scenario: Scenario
    path: Path


def load_scenario(path: Path) -> LoadedScenario:
    """Reads and validates one scenario file; raises `ScenarioLoadError` naming file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioLoadError(
            [Problem(path, 1, 1, "", f"cannot read the file: {error.strerror}")]
        ) from None
    return LoadedScenario(parse_scenario(text, path), path)


def parse_scenario(text: str, path: Path) -> Scenario:
    """Validates scenario YAML `text`; `path` names it in errors and anchors its relative paths."""
    root = _compose(text, path)
    data = yaml.SafeLoader(text).construct_document(root) if root is not None else None
    try:
        return Scenario.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as error:
        problems = [
            problem
            for detail in error.errors(include_url=False)
            for problem in _locate_all(path, root, detail)
        ]
        raise ScenarioLoadError(
            sorted(problems, key=lambda problem: (problem.line, problem.column))
        ) from None


def discover(paths: Iterable[Path]) -> list[Path]:
    """Scenario files named by `paths`: files as given, folders expanded to their *.yaml/*.yml (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in SCENARIO_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise ScenarioLoadError([Problem(path, 1, 1, "", "no such file or folder")])
    return found


def load_all(paths: Iterable[Path]) -> list[LoadedScenario]:
    """Loads every scenario under `paths`; all files' errors are reported together, and names are unique."""
    loaded: list[LoadedScenario] = []
    problems: list[Problem] = []
    for path in discover(paths):
        try:
            loaded.append(load_scenario(path))
        except ScenarioLoadError as error:
            problems.extend(error.problems)
    seen: dict[str, Path] = {}
    for item in loaded:
        name = item.scenario.name
        if name in seen:
            problems.append(
                Problem(item.path, 1, 1, "name", f"scenario name {name!r} is also used by {seen[name]}")
            )
        seen.setdefault(name, item.path)
    if problems:
        raise ScenarioLoadError(problems)
    return loaded


def _compose(text: str, path: Path) -> yaml.Node | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ScenarioLoadError([Problem(path, line, column, "", f"invalid YAML: {error.problem}")]) from None
    if root is not None:
        duplicates = list(_duplicate_keys(root, ()))
        if duplicates:
            raise ScenarioLoadError(
                [
                    Problem(
                        path,
                        node.start_mark.line + 1,
                        node.start_mark.column + 1,
                        _dotted(loc),
                        "duplicate key",
                    )
                    for loc, node in duplicates
                ]
            )
    return root


def _duplicate_keys(
    node: yaml.Node, loc: tuple[str | int, ...]
) -> Iterable[tuple[tuple[str | int, ...], yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            name = key.value
            if name in seen:
                yield (*loc, name), key
            seen.add(name)
            yield from _duplicate_keys(value, (*loc, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index))


def _locate_all(path: Path, root: yaml.Node | None, detail: Any) -> list[Problem]:
    if detail["type"] == "scenario_reference":  # Scenario's cross-step rules, each with its field's loc
        return [
            _locate(path, root, {"type": "scenario_reference", "loc": loc, "msg": message})
            for loc, message in detail["ctx"]["problems"]
        ]
    return [_locate(path, root, detail)]


def _locate(path: Path, root: yaml.Node | None, detail: Any) -> Problem:
    """Maps one pydantic error to the YAML node its `loc` reaches."""
    loc: tuple[str | int, ...] = tuple(detail["loc"])
    if detail["type"] == "union_tag_invalid" and detail.get("ctx", {}).get("discriminator") == "'kind'":
        loc = (*loc, "kind")  # a fault's unknown kind: point at the `kind` key's value
    node = root
    field: list[str | int] = []
    for position, part in enumerate(loc):
        child = _child(node, part, want_key=detail["type"] == "extra_forbidden" and position == len(loc) - 1)
        if child is not None:
            node = child
            field.append(part)
        elif position == len(loc) - 1 and detail["type"] == "missing":
            field.append(part)  # point at the mapping that lacks it
        # else: a union member or tag (`<commit>`, `training_fails`, `literal['a']`), not a YAML key
    mark = node.start_mark if node is not None else None
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = detail["msg"]
    shown = detail.get("input")
    if (
        detail["type"] not in ("missing", "extra_forbidden", "scenario_reference")
        and _shows_input(shown)
        and str(shown) not in message
    ):
        message = f"{message} (got {shown!r})"
    return Problem(path, line, column, _dotted(field), message)


def _child(node: yaml.Node | None, part: str | int, *, want_key: bool) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if key.value == part:
                found: yaml.Node = key if want_key else value
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None


def _shows_input(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) <= 80


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc)
