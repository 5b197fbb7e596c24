"""Reads CloudFormation YAML, short tags included, into the plain JSON shape CloudFormation uses.

`!Ref X` becomes `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`, `!Sub ...` becomes
`{"Fn::Sub": ...}` and so on, so that the rest of the pipeline package sees one shape whether a template
was written in YAML short form, long form or JSON. Used only when the deployer offers no loader of its
own (see `harness.pipeline.template`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Short tags whose long form is `Fn::<Name>`; `!Ref` and `!Condition` keep their bare names.
_FN_TAGS = (
    "And",
    "Base64",
    "Cidr",
    "Equals",
    "FindInMap",
    "GetAZs",
    "If",
    "ImportValue",
    "Join",
    "Length",
    "Not",
    "Or",
    "Select",
    "Split",
    "Sub",
    "ToJsonString",
    "Transform",
)


class _CloudFormationLoader(yaml.SafeLoader):
    """A safe loader that knows CloudFormation's short tags (and nothing else beyond YAML)."""


def _construct(node: yaml.Node, loader: _CloudFormationLoader) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}", node.start_mark)


def _long_form(key: str) -> Any:
    def construct(loader: _CloudFormationLoader, node: yaml.Node) -> dict[str, Any]:
        return {key: _construct(node, loader)}

    return construct


def _get_att(loader: _CloudFormationLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct(node, loader)
    if isinstance(value, str):
        # `!GetAtt Resource.Attribute` (the attribute itself may contain dots: split once).
        resource, dot, attribute = value.partition(".")
        if not dot:
            raise yaml.constructor.ConstructorError(
                None, None, f"!GetAtt needs 'Resource.Attribute', got {value!r}", node.start_mark
            )
        return {"Fn::GetAtt": [resource, attribute]}
    return {"Fn::GetAtt": value}


_CloudFormationLoader.add_constructor("!Ref", _long_form("Ref"))
_CloudFormationLoader.add_constructor("!Condition", _long_form("Condition"))
_CloudFormationLoader.add_constructor("!GetAtt", _get_att)
for _name in _FN_TAGS:
    _CloudFormationLoader.add_constructor(f"!{_name}", _long_form(f"Fn::{_name}"))


def loads(text: str) -> dict[str, Any]:
    """Parses one CloudFormation template (YAML or JSON) into its long-form dictionary."""
    document = yaml.load(text, Loader=_CloudFormationLoader)  # a SafeLoader subclass: no arbitrary objects
    if not isinstance(document, dict):
        raise ValueError("a CloudFormation template must be a mapping at its top level")
    return document


def load(path: Path) -> dict[str, Any]:
    """Reads and parses the template at `path`."""
    try:
        return loads(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not a valid CloudFormation template: {error}") from error
