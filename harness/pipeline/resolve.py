"""Resolves CloudFormation intrinsic functions against a deployed stack.

The emulator's CloudFormation stores no CodePipeline (moto skips the resource type, see
docs/FACTS.md), so the runner reads the pipeline from the template and resolves its `Ref`s, `!Sub`s
and `!GetAtt`s here, against what the stack really created: `StackContext` holds the stack's parameters,
the physical ids of its resources, its outputs and its conditions. `StackContext.from_cloudformation`
builds one from the emulator's CloudFormation API (describe_stacks, describe_stack_resources).

Supported: Ref (parameters, resources, pseudo parameters, AWS::NoValue), Fn::Sub (both forms),
Fn::GetAtt (attributes CloudFormation derives from a resource's name: `Arn` of Lambda functions, IAM
roles, S3 buckets, state machines, CodeBuild projects; plus any given explicitly), Fn::Join, Fn::Select,
Fn::Split, Fn::If, Fn::Equals/And/Or/Not and Condition. Anything else is an error naming what it met.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Sentinel for AWS::NoValue: the key or list item that resolves to it is dropped.
_NO_VALUE = object()

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")

# ARN patterns CloudFormation's `Arn` attribute follows, by resource type (name = the physical id).
_ARN_FORMATS: dict[str, str] = {
    "AWS::Lambda::Function": "arn:{partition}:lambda:{region}:{account}:function:{name}",
    "AWS::IAM::Role": "arn:{partition}:iam::{account}:role/{name}",
    "AWS::S3::Bucket": "arn:{partition}:s3:::{name}",
    "AWS::StepFunctions::StateMachine": "{name}",  # Ref of a state machine is its ARN already
    "AWS::CodeBuild::Project": "arn:{partition}:codebuild:{region}:{account}:project/{name}",
    "AWS::DynamoDB::Table": "arn:{partition}:dynamodb:{region}:{account}:table/{name}",
    "AWS::ECR::Repository": "arn:{partition}:ecr:{region}:{account}:repository/{name}",
}

# Properties that name a resource CloudFormation did not create (moto skips some types): their Ref.
_NAME_PROPERTIES: dict[str, str] = {
    "AWS::CodeBuild::Project": "Name",
    "AWS::CodePipeline::Pipeline": "Name",
}


class ResolveError(ValueError):
    """A template value that cannot be resolved against the stack."""


@dataclass(frozen=True)
class StackContext:
    """What a deployed stack knows: the values intrinsic functions resolve to."""

    stack_name: str
    region: str
    account_id: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, str] = field(default_factory=dict)  # logical id -> physical id
    resource_types: Mapping[str, str] = field(default_factory=dict)  # logical id -> type
    outputs: Mapping[str, str] = field(default_factory=dict)
    conditions: Mapping[str, bool] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)  # explicit GetAtt values
    partition: str = "aws"

    @property
    def stack_id(self) -> str:
        return f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}"

    def pseudo(self, name: str) -> str | None:
        values = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
        }
        return values.get(name)

    @classmethod
    def from_cloudformation(
        cls, cloudformation: Any, stack_name: str, template: Mapping[str, Any], account_id: str
    ) -> StackContext:
        """Reads the stack's parameters, resources and outputs through a boto3 CloudFormation client.

        Parameters the stack does not list take the template's defaults. Resources the emulator skipped
        but that carry their own name (a CodeBuild project's `Name`) resolve to that name.
        """
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
        if not stacks:
            raise ResolveError(f"stack {stack_name!r} does not exist")
        stack = stacks[0]
        region = str(cloudformation.meta.region_name)
        parameters = {
            name: str(spec["Default"])
            for name, spec in (template.get("Parameters") or {}).items()
            if isinstance(spec, Mapping) and "Default" in spec
        }
        parameters.update({p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])})
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        listed = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
        # moto lists a resource type it skipped without ids: those resolve through their names below.
        resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in listed
            if "LogicalResourceId" in r and "PhysicalResourceId" in r
        }
        template_resources: Mapping[str, Any] = template.get("Resources") or {}
        types = {logical: str(spec.get("Type", "")) for logical, spec in template_resources.items()}
        context = cls(stack_name, region, account_id, parameters, resources, types, outputs)
        context = replace(context, conditions=evaluate_conditions(template, context))
        named: dict[str, str] = {}
        for logical, spec in template_resources.items():
            name_property = _NAME_PROPERTIES.get(types[logical])
            properties = spec.get("Properties") or {}
            if logical not in resources and name_property and name_property in properties:
                named[logical] = str(resolve(properties[name_property], context))
        return replace(context, resources={**resources, **named})


def evaluate_conditions(template: Mapping[str, Any], context: StackContext) -> dict[str, bool]:
    """Evaluates the template's `Conditions` section (a condition may name others, never itself)."""
    pending = dict(template.get("Conditions") or {})
    results: dict[str, bool] = {}
    while pending:
        ready = [name for name, body in pending.items() if _condition_names(body) <= results.keys()]
        if not ready:
            raise ResolveError(f"conditions name unknown or circular conditions: {sorted(pending)}")
        for name in ready:
            value = resolve(pending.pop(name), replace(context, conditions=dict(results)))
            if not isinstance(value, bool):
                raise ResolveError(f"condition {name!r} does not evaluate to true or false: {value!r}")
            results[name] = value
    return results


def _condition_names(value: Any) -> set[str]:
    if isinstance(value, Mapping):
        names: set[str] = set()
        for key, inner in value.items():
            if key == "Condition" and isinstance(inner, str):
                names.add(inner)
            else:
                names |= _condition_names(inner)
        return names
    if isinstance(value, list):
        return set().union(*(_condition_names(item) for item in value)) if value else set()
    return set()


def resolve(value: Any, context: StackContext) -> Any:
    """Returns `value` with every intrinsic function replaced by what it evaluates to in `context`."""
    resolved = _resolve(value, context)
    if resolved is _NO_VALUE:
        raise ResolveError("the value resolves to AWS::NoValue")
    return resolved


def _resolve(value: Any, context: StackContext) -> Any:
    if isinstance(value, list):
        items = [_resolve(item, context) for item in value]
        return [item for item in items if item is not _NO_VALUE]
    if not isinstance(value, Mapping):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        function = _FUNCTIONS.get(key)
        if function is not None:
            return function(argument, context)
        if key.startswith("Fn::"):
            raise ResolveError(f"{key} is not supported by the pipeline runner's resolver")
    result = {key: _resolve(inner, context) for key, inner in value.items()}
    return {key: inner for key, inner in result.items() if inner is not _NO_VALUE}


def _ref(name: Any, context: StackContext) -> Any:
    if not isinstance(name, str):
        raise ResolveError(f"Ref needs a name, got {name!r}")
    if name == "AWS::NoValue":
        return _NO_VALUE
    pseudo = context.pseudo(name)
    if pseudo is not None:
        return pseudo
    if name in context.parameters:
        return context.parameters[name]
    if name in context.resources:
        return context.resources[name]
    raise ResolveError(f"Ref {name!r}: no such parameter or resource in stack {context.stack_name!r}")


def _get_att(argument: Any, context: StackContext) -> str:
    if not (isinstance(argument, list) and len(argument) == 2):
        raise ResolveError(f"Fn::GetAtt needs [resource, attribute], got {argument!r}")
    logical, attribute = (_resolve(part, context) for part in argument)
    if (logical, attribute) in context.attributes:
        return context.attributes[(logical, attribute)]
    resource_type = context.resource_types.get(logical, "")
    arn_format = _ARN_FORMATS.get(resource_type)
    if attribute == "Arn" and arn_format is not None and logical in context.resources:
        return arn_format.format(
            partition=context.partition,
            region=context.region,
            account=context.account_id,
            name=context.resources[logical],
        )
    raise ResolveError(
        f"Fn::GetAtt {logical}.{attribute} ({resource_type or 'unknown type'}) cannot be resolved locally"
    )


def _sub(argument: Any, context: StackContext) -> str:
    if isinstance(argument, str):
        text, variables = argument, {}
    elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], Mapping):
        text, variables = argument[0], {k: _resolve(v, context) for k, v in argument[1].items()}
    else:
        raise ResolveError(f"Fn::Sub needs a string or [string, variables], got {argument!r}")
    if not isinstance(text, str):
        raise ResolveError(f"Fn::Sub needs a string template, got {text!r}")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        if "." in name:
            resource, _, attribute = name.partition(".")
            return _get_att([resource, attribute], context)
        return str(_ref(name, context))

    # `${!Literal}` is CloudFormation's escape for a literal `${Literal}`.
    return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def _join(argument: Any, context: StackContext) -> str:
    if not (isinstance(argument, list) and len(argument) == 2):
        raise ResolveError(f"Fn::Join needs [delimiter, list], got {argument!r}")
    delimiter, items = argument[0], _resolve(argument[1], context)
    if not isinstance(items, list):
        raise ResolveError(f"Fn::Join needs a list to join, got {items!r}")
    return str(delimiter).join(str(item) for item in items)


def _select(argument: Any, context: StackContext) -> Any:
    if not (isinstance(argument, list) and len(argument) == 2):
        raise ResolveError(f"Fn::Select needs [index, list], got {argument!r}")
    index, items = int(_resolve(argument[0], context)), _resolve(argument[1], context)
    if not isinstance(items, list) or not 0 <= index < len(items):
        raise ResolveError(f"Fn::Select index {index} out of range for {items!r}")
    return items[index]


def _split(argument: Any, context: StackContext) -> list[str]:
    if not (isinstance(argument, list) and len(argument) == 2):
        raise ResolveError(f"Fn::Split needs [delimiter, string], got {argument!r}")
    return str(_resolve(argument[1], context)).split(str(argument[0]))


def _condition(name: Any, context: StackContext) -> bool:
    if not isinstance(name, str) or name not in context.conditions:
        raise ResolveError(f"unknown condition {name!r}")
    return context.conditions[name]


def _if(argument: Any, context: StackContext) -> Any:
    if not (isinstance(argument, list) and len(argument) == 3):
        raise ResolveError(f"Fn::If needs [condition, then, else], got {argument!r}")
    branch = argument[1] if _condition(argument[0], context) else argument[2]
    return _resolve(branch, context)


def _equals(argument: Any, context: StackContext) -> bool:
    if not (isinstance(argument, list) and len(argument) == 2):
        raise ResolveError(f"Fn::Equals needs two values, got {argument!r}")
    left, right = (_resolve(item, context) for item in argument)
    return bool(str(left) == str(right))


def _booleans(argument: Any, context: StackContext, name: str) -> list[bool]:
    if not isinstance(argument, list) or not argument:
        raise ResolveError(f"{name} needs a list of conditions, got {argument!r}")
    values = [_resolve(item, context) for item in argument]
    if not all(isinstance(v, bool) for v in values):
        raise ResolveError(f"{name} needs conditions, got {values!r}")
    return values


_FUNCTIONS: dict[str, Any] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::And": lambda a, c: all(_booleans(a, c, "Fn::And")),
    "Fn::Or": lambda a, c: any(_booleans(a, c, "Fn::Or")),
    "Fn::Not": lambda a, c: not _booleans(a, c, "Fn::Not")[0],
    "Condition": _condition,
}
