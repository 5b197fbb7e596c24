"""The pure half of the deployer: render the stacks' templates and parameters. No AWS call here.

Three stacks, named from one prefix (`stack_names`):
- `<prefix>-assets`   templates/assets.yaml: the bucket of the Lambda zips and the rendered API template.
- `<prefix>-platform` templates/platform.yaml with the state machine's definition inlined.
- `<prefix>-api`      templates/api.yaml, created or updated by the pipeline's PublishApi action (the
                      publish-api Lambda reads the rendered template from the assets bucket).

The templates are written in long-form intrinsics (`Ref`, `Fn::Sub`, ...) so that they load as plain YAML.
The state machine is `statemachine/training.asl.json`; `render_platform` validates it (`deployer.asl`),
checks that its `${...}` placeholders are exactly the names the template's placeholder lists, and puts
it in as `DefinitionString: {"Fn::Sub": <ASL>}` (or `[<ASL>, {variable: value}]` when the template
gives variables): the one form of a state machine definition that both CloudFormation and moto's
emulator resolve.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployer import asl

__all__ = [
    "ASL_PATH",
    "DEFAULT_STACK_PREFIX",
    "MANAGED_PARAMETERS",
    "CompileError",
    "StackNames",
    "parse_parameters",
    "platform_parameters",
    "render_api",
    "render_assets",
    "render_platform",
    "stack_names",
    "template_body",
]

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
ASL_PATH = PACKAGE_DIR / "statemachine" / "training.asl.json"
STATE_MACHINE_RESOURCE = "TrainingStateMachine"
DEFAULT_STACK_PREFIX = "gptneo-intent"

# Platform parameters the deployer fills itself (where the code and the API template were uploaded).
MANAGED_PARAMETERS = frozenset(
    {
        "AssetsBucket",
        "StartTrainingCodeKey",
        "RegisterModelCodeKey",
        "PublishApiCodeKey",
        "ApiProxyCodeKey",
        "ApiTemplateKey",
    }
)

_PLACEHOLDER = re.compile(r"\$\{([^}!][^}]*)\}")
_STACK_PREFIX = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,100}$")


class CompileError(ValueError):
    """A template, the state machine or a parameter cannot be rendered as given."""


@dataclass(frozen=True)
class StackNames:
    assets: str
    platform: str
    api: str


def stack_names(prefix: str = DEFAULT_STACK_PREFIX) -> StackNames:
    if not _STACK_PREFIX.match(prefix):
        raise CompileError(f"stack prefix {prefix!r} must match {_STACK_PREFIX.pattern}")
    return StackNames(assets=f"{prefix}-assets", platform=f"{prefix}-platform", api=f"{prefix}-api")


def load_template(name: str) -> dict[str, Any]:
    path = TEMPLATES_DIR / f"{name}.yaml"
    template = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(template, dict) or "Resources" not in template:
        raise CompileError(f"{path}: not a CloudFormation template")
    return template


def render_assets() -> dict[str, Any]:
    return load_template("assets")


def render_api() -> dict[str, Any]:
    return load_template("api")


def render_platform(asl_text: str | None = None, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The platform template (templates/platform.yaml unless given) with the (validated) state machine
    definition inlined."""
    template = load_template("platform") if template is None else template
    text = ASL_PATH.read_text(encoding="utf-8") if asl_text is None else asl_text
    definition = asl.parse(text)
    try:
        properties = template["Resources"][STATE_MACHINE_RESOURCE]["Properties"]
        substitution = properties["DefinitionString"]["Fn::Sub"]
        # Fn::Sub's two forms: the placeholder list alone, or [the list, {variable: value}].
        declared_text, variables = (substitution, {}) if isinstance(substitution, str) else substitution
        if not isinstance(declared_text, str) or not isinstance(variables, dict):
            raise TypeError(substitution)
    except (KeyError, TypeError, ValueError) as error:
        raise CompileError(
            f"platform.yaml: {STATE_MACHINE_RESOURCE} needs DefinitionString: "
            "{Fn::Sub: <placeholder list>} or {Fn::Sub: [<placeholder list>, {<variable>: <value>}]}"
        ) from error
    declared = set(_PLACEHOLDER.findall(declared_text))
    used = set(_PLACEHOLDER.findall(text))
    if used != declared:
        raise CompileError(
            f"{ASL_PATH.name} uses placeholders {sorted(used)} but platform.yaml declares {sorted(declared)}"
        )
    parameters = template.get("Parameters", {})
    resources = template["Resources"]
    unknown = {name for name in used if name.split(".")[0] not in {*parameters, *resources, *variables}}
    if unknown:
        raise CompileError(f"{ASL_PATH.name} placeholders name nothing in platform.yaml: {sorted(unknown)}")
    body = json.dumps(definition, separators=(",", ":"))
    properties["DefinitionString"] = {"Fn::Sub": [body, variables] if variables else body}
    return template


def template_body(template: Mapping[str, Any], pretty: bool = False) -> str:
    """The template as the JSON text sent to CloudFormation (compact: the API caps a body at 51,200 bytes)."""
    if pretty:
        return json.dumps(template, indent=2)
    return json.dumps(template, separators=(",", ":"))


def parse_parameters(items: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` strings (from `--parameter`) as a mapping; a key given twice is an error."""
    parsed: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CompileError(f"parameter {item!r} is not KEY=VALUE")
        if key in parsed:
            raise CompileError(f"parameter {key!r} is given twice")
        parsed[key] = value
    return parsed


def platform_parameters(
    template: Mapping[str, Any],
    prefix: str,
    managed: Mapping[str, str],
    overrides: Mapping[str, str],
) -> dict[str, str]:
    """The platform stack's parameters: the deployer's own (`managed`), then the caller's overrides.

    The API stack's name follows the stack prefix unless overridden; everything else keeps the
    template's defaults.
    """
    declared = template.get("Parameters", {})
    if set(managed) != MANAGED_PARAMETERS:
        raise CompileError(f"managed parameters must be exactly {sorted(MANAGED_PARAMETERS)}")
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise CompileError(f"unknown parameter(s) {unknown}; platform.yaml declares {sorted(declared)}")
    clashing = sorted(set(overrides) & MANAGED_PARAMETERS)
    if clashing:
        raise CompileError(f"parameter(s) {clashing} are set by the deployer and cannot be overridden")
    parameters = {"ApiStackName": stack_names(prefix).api, **managed, **overrides}
    return dict(sorted(parameters.items()))
