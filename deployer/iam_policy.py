"""An IAM policy evaluator for identity-based policies: parse policy documents, decide one request.

Pure (no AWS call, no I/O), so that the static check (`deployer.iam_check`) and the harness's enforcement
can share it. It follows IAM's policy evaluation logic for one account and identity-based policies only
(IAM user guide, "Policy evaluation logic"): an explicit Deny in any statement wins; otherwise an Allow
that matches allows; otherwise the request is implicitly denied.

What a statement matches (IAM user guide, "IAM JSON policy elements reference"):
- `Action` / `NotAction`: `service:Name`, compared case-insensitively, `*` and `?` as wildcards.
- `Resource` / `NotResource`: ARNs compared case-sensitively, `*` and `?` as wildcards (a `*` spans
  `:` and `/` as well).
- `Condition`: every operator block and every key in it must hold (AND); any of a key's values may match
  (OR). Operators: String(Not)Equals, String(Not)EqualsIgnoreCase, String(Not)Like, Arn(Not)Equals,
  Arn(Not)Like, Bool, Null, each with `...IfExists`, and the `ForAnyValue:`/`ForAllValues:` set
  prefixes. Condition keys are case-insensitive. A key absent from the request: `...IfExists` holds,
  the negated operators hold (nothing to match against), the others do not; `Null: true` holds.
Policy variables (`${aws:username}`) are not supported: a policy using one is rejected (PolicyError), as
the templates resolve everything with `Fn::Sub` before deployment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "Decision",
    "Policy",
    "PolicyError",
    "Request",
    "Statement",
    "action_matches",
    "evaluate",
    "parse_policy",
    "resource_matches",
]

Effect = Literal["Allow", "Deny"]
ContextValue = str | Sequence[str]

_OPERATORS = frozenset(
    {
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "ArnEquals",
        "ArnNotEquals",
        "ArnLike",
        "ArnNotLike",
        "Bool",
        "Null",
    }
)
_VARIABLE = re.compile(r"\$\{[^}]*\}")


class PolicyError(ValueError):
    """A policy document this evaluator cannot read (malformed, or using what it does not support)."""


@dataclass(frozen=True)
class Condition:
    operator: str  # e.g. "StringEquals" (without IfExists or a set prefix)
    key: str  # lower-cased
    values: tuple[str, ...]
    if_exists: bool = False
    set_operator: Literal["", "ForAnyValue", "ForAllValues"] = ""


@dataclass(frozen=True)
class Statement:
    effect: Effect
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()
    sid: str = ""
    policy_name: str = ""

    def matches_action(self, action: str) -> bool:
        if self.not_actions:
            return not any(action_matches(pattern, action) for pattern in self.not_actions)
        return any(action_matches(pattern, action) for pattern in self.actions)

    def matches_resource(self, resource: str) -> bool:
        if self.not_resources:
            return not any(resource_matches(pattern, resource) for pattern in self.not_resources)
        return any(resource_matches(pattern, resource) for pattern in self.resources)

    def matches(self, request: Request) -> bool:
        return (
            self.matches_action(request.action)
            and self.matches_resource(request.resource)
            and all(_condition_holds(condition, request.context) for condition in self.conditions)
        )


@dataclass(frozen=True)
class Policy:
    name: str
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class Request:
    """One call: the IAM action, the resource ARN it acts on ("*" for actions without resource-level
    permissions) and the request's condition keys (e.g. `iam:PassedToService`)."""

    action: str
    resource: str = "*"
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Literal["allowed", "explicit-deny", "implicit-deny"]
    statement: Statement | None = None


def evaluate(policies: Iterable[Policy], request: Request) -> Decision:
    """IAM's decision for `request` under these identity-based policies (explicit Deny over Allow)."""
    statements = [statement for policy in policies for statement in policy.statements]
    for statement in statements:
        if statement.effect == "Deny" and statement.matches(request):
            return Decision(False, "explicit-deny", statement)
    for statement in statements:
        if statement.effect == "Allow" and statement.matches(request):
            return Decision(True, "allowed", statement)
    return Decision(False, "implicit-deny")


def action_matches(pattern: str, action: str) -> bool:
    """IAM action names are case-insensitive; `*` and `?` are wildcards."""
    return _wildcard(pattern.lower()).fullmatch(action.lower()) is not None


def resource_matches(pattern: str, resource: str) -> bool:
    """ARNs match case-sensitively; `*` and `?` are wildcards that also span `:` and `/`."""
    return _wildcard(pattern).fullmatch(resource) is not None


@lru_cache(maxsize=4096)
def _wildcard(pattern: str) -> re.Pattern[str]:
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.DOTALL)


def parse_policy(name: str, document: Mapping[str, Any]) -> Policy:
    """A policy document (the JSON structure) as a Policy; PolicyError names what is wrong."""
    if not isinstance(document, Mapping):
        raise PolicyError(f"policy {name}: the document must be a mapping")
    raw = document.get("Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"policy {name}: Statement must be a statement or a non-empty list of them")
    return Policy(name, tuple(_statement(name, index, item) for index, item in enumerate(raw)))


def _strings(name: str, field_name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyError(f"policy {name}: {field_name} must be a string or a list of strings, got {value!r}")
    for item in value:
        if _VARIABLE.search(item):
            raise PolicyError(f"policy {name}: policy variables are not supported ({item!r})")
    return tuple(value)


def _statement(name: str, index: int, raw: Any) -> Statement:
    where = f"{name} statement {index}"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"policy {where}: a statement must be a mapping")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"policy {where}: Effect must be Allow or Deny, got {effect!r}")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError(f"policy {where}: exactly one of Action and NotAction")
    if ("Resource" in raw) == ("NotResource" in raw):
        raise PolicyError(f"policy {where}: exactly one of Resource and NotResource")
    if "Principal" in raw or "NotPrincipal" in raw:
        raise PolicyError(f"policy {where}: an identity-based policy has no Principal")
    return Statement(
        effect=effect,
        actions=_strings(where, "Action", raw["Action"]) if "Action" in raw else (),
        not_actions=_strings(where, "NotAction", raw["NotAction"]) if "NotAction" in raw else (),
        resources=_strings(where, "Resource", raw["Resource"]) if "Resource" in raw else (),
        not_resources=_strings(where, "NotResource", raw["NotResource"]) if "NotResource" in raw else (),
        conditions=_conditions(where, raw.get("Condition") or {}),
        sid=str(raw.get("Sid", "")),
        policy_name=name,
    )


def _conditions(where: str, raw: Any) -> tuple[Condition, ...]:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"policy {where}: Condition must be a mapping")
    conditions = []
    for full_operator, block in raw.items():
        set_operator, _, operator = str(full_operator).rpartition(":")
        if set_operator not in ("", "ForAnyValue", "ForAllValues"):
            raise PolicyError(f"policy {where}: unknown set operator {set_operator!r}")
        if_exists = operator.endswith("IfExists") and operator != "Null"
        base = operator.removesuffix("IfExists") if if_exists else operator
        if base not in _OPERATORS:
            raise PolicyError(f"policy {where}: condition operator {full_operator!r} is not supported")
        if not isinstance(block, Mapping):
            raise PolicyError(f"policy {where}: {full_operator} must map condition keys to values")
        for key, values in block.items():
            if isinstance(values, bool):
                values = "true" if values else "false"
            strings = _strings(where, f"{full_operator}.{key}", values)
            prefix: Literal["", "ForAnyValue", "ForAllValues"] = (
                "ForAnyValue" if set_operator == "ForAnyValue" else "ForAllValues" if set_operator else ""
            )
            conditions.append(Condition(base, str(key).lower(), strings, if_exists, prefix))
    return tuple(conditions)


def _context_values(context: Mapping[str, ContextValue], key: str) -> tuple[str, ...] | None:
    for name, value in context.items():
        if name.lower() == key:
            return (value,) if isinstance(value, str) else tuple(value)
    return None


def _value_matches(operator: str, pattern: str, value: str) -> bool:
    """`operator` is a positive one (the negation is applied by the caller)."""
    if operator == "StringEquals":
        return pattern == value
    if operator == "StringEqualsIgnoreCase":
        return pattern.lower() == value.lower()
    if operator in ("StringLike", "ArnLike", "ArnEquals"):  # ArnEquals takes wildcards as ArnLike does
        return resource_matches(pattern, value)
    if operator == "Bool":
        return pattern.lower() == value.lower()
    raise PolicyError(f"condition operator {operator} has no value comparison")  # pragma: no cover


def _condition_holds(condition: Condition, context: Mapping[str, ContextValue]) -> bool:
    values = _context_values(context, condition.key)
    if condition.operator == "Null":
        wanted_absent = any(v.lower() == "true" for v in condition.values)
        return (values is None) == wanted_absent
    negated = "Not" in condition.operator
    positive = condition.operator.replace("Not", "", 1) if negated else condition.operator
    if values is None:
        return condition.if_exists or negated or condition.set_operator == "ForAllValues"

    def matched(value: str) -> bool:
        return any(_value_matches(positive, pattern, value) for pattern in condition.values)

    if condition.set_operator == "ForAllValues":
        result = all(matched(value) for value in values)
    else:  # ForAnyValue, and single-valued keys (one value: the same test)
        result = any(matched(value) for value in values)
    return not result if negated else result
