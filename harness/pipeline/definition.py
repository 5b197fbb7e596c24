"""The CodePipeline's definition, as typed objects read from the platform template.

The emulator stores no CodePipeline (moto's CloudFormation skips `AWS::CodePipeline::Pipeline` and
`AWS::CodeBuild::Project`), so the one source of truth is the template the deployer renders:
`load_platform_template()` reads it (through the deployer's own loader when it has one, else through
`harness.pipeline.cfn_yaml`), `pipeline_from_template()` finds the pipeline resource and resolves its
intrinsic functions against the deployed stack (`harness.pipeline.resolve.StackContext`), and
`codebuild_projects_from_template()` does the same for the CodeBuild projects the Build actions name.

CodePipeline's own variables (`#{SourceVariables.CommitId}`, `#{codepipeline.PipelineExecutionId}`) are
left in place here: they are resolved per run by the runner.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.pipeline import cfn_yaml
from harness.pipeline.resolve import StackContext, resolve

PIPELINE_TYPE = "AWS::CodePipeline::Pipeline"
CODEBUILD_PROJECT_TYPE = "AWS::CodeBuild::Project"

# Action categories CodePipeline knows (ActionTypeId.Category).
CATEGORIES = frozenset({"Source", "Build", "Test", "Deploy", "Approval", "Invoke", "Compute"})


class DefinitionError(ValueError):
    """The template's pipeline (or a project it names) is not one the runner can execute."""


@dataclass(frozen=True)
class ActionType:
    """ActionTypeId: which executor runs the action."""

    category: str
    owner: str
    provider: str
    version: str = "1"

    @property
    def key(self) -> tuple[str, str]:
        """The executor table's key."""
        return (self.category, self.provider)


@dataclass(frozen=True)
class Action:
    name: str
    action_type: ActionType
    configuration: Mapping[str, str]
    input_artifacts: tuple[str, ...] = ()
    output_artifacts: tuple[str, ...] = ()
    run_order: int = 1
    namespace: str | None = None
    role_arn: str | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    actions: tuple[Action, ...]

    def action_groups(self) -> list[tuple[Action, ...]]:
        """The stage's actions grouped by run order, lowest first (definition order inside a group)."""
        orders = sorted({action.run_order for action in self.actions})
        return [tuple(a for a in self.actions if a.run_order == order) for order in orders]


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]
    artifact_bucket: str
    role_arn: str = ""
    logical_id: str = ""

    def action(self, stage_name: str, action_name: str) -> Action:
        for stage in self.stages:
            for action in stage.actions:
                if stage.name == stage_name and action.name == action_name:
                    return action
        raise KeyError(f"no action {stage_name}/{action_name} in pipeline {self.name}")


@dataclass(frozen=True)
class EnvironmentVariable:
    name: str
    value: str
    type: str = "PLAINTEXT"


@dataclass(frozen=True)
class CodeBuildProject:
    """What the Build executor needs from an `AWS::CodeBuild::Project`."""

    name: str
    environment_variables: tuple[EnvironmentVariable, ...] = ()
    buildspec: str = "buildspec.yml"  # a path in the source, or an inline buildspec (YAML text)
    image: str = ""
    privileged_mode: bool = False
    timeout_minutes: int = 60
    cache_type: str = "NO_CACHE"  # the project's Cache.Type: NO_CACHE | LOCAL | S3
    cache_modes: tuple[str, ...] = ()  # Cache.Modes of a LOCAL cache (harness/pipeline/build_cache.py)
    extra: Mapping[str, Any] = field(default_factory=dict)


def load_platform_template(path: Path | None = None) -> dict[str, Any]:
    """The platform template exactly as the deployer renders it.

    With no path, asks the deployer for its rendering (`deployer.compile.render_platform`, which
    inlines the state machine); a path (or no such function) reads the file with the CloudFormation
    YAML loader. Either way there is one template, never a second copy of the pipeline.
    """
    if path is None:
        render = _deployer_renderer()
        if render is not None:
            rendered = render()
            if not isinstance(rendered, dict):
                raise DefinitionError("deployer.compile returned a platform template that is not a mapping")
            return rendered
        path = Path(__file__).resolve().parents[2] / "deployer" / "templates" / "platform.yaml"
    if not path.is_file():
        raise DefinitionError(f"platform template not found: {path}")
    return cfn_yaml.load(path)


def _deployer_renderer() -> Any:
    try:
        compile_module = importlib.import_module("deployer.compile")
    except ModuleNotFoundError:
        return None
    return getattr(compile_module, "render_platform", None)


def _pipeline_resource(template: Mapping[str, Any], logical_id: str | None) -> tuple[str, Mapping[str, Any]]:
    resources: Mapping[str, Any] = template.get("Resources") or {}
    candidates = [
        (name, spec)
        for name, spec in resources.items()
        if isinstance(spec, Mapping) and spec.get("Type") == PIPELINE_TYPE
    ]
    if logical_id is not None:
        candidates = [(name, spec) for name, spec in candidates if name == logical_id]
    if len(candidates) != 1:
        found = [name for name, _ in candidates]
        raise DefinitionError(f"expected exactly one {PIPELINE_TYPE} in the template, found {found}")
    return candidates[0]


def pipeline_from_template(
    template: Mapping[str, Any], context: StackContext, logical_id: str | None = None
) -> Pipeline:
    """Reads the pipeline resource of `template`, its intrinsic functions resolved against `context`."""
    name, spec = _pipeline_resource(template, logical_id)
    properties = resolve(spec.get("Properties") or {}, context)
    if not isinstance(properties, Mapping):
        raise DefinitionError(f"{name}: Properties is not a mapping")
    store = properties.get("ArtifactStore") or {}
    bucket = str(store.get("Location", "")) if isinstance(store, Mapping) else ""
    if not bucket:
        raise DefinitionError(f"{name}: the pipeline needs ArtifactStore.Location (its S3 artifact bucket)")
    raw_stages = properties.get("Stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise DefinitionError(f"{name}: the pipeline has no Stages")
    stages = tuple(_stage(name, raw) for raw in raw_stages)
    _check_artifacts(name, stages)
    pipeline_name = str(properties.get("Name") or context.resources.get(name) or name)
    return Pipeline(pipeline_name, stages, bucket, str(properties.get("RoleArn", "")), name)


def _stage(pipeline: str, raw: Any) -> Stage:
    if not isinstance(raw, Mapping) or not raw.get("Name"):
        raise DefinitionError(f"{pipeline}: a stage without a Name: {raw!r}")
    stage_name = str(raw["Name"])
    raw_actions = raw.get("Actions")
    if not isinstance(raw_actions, list) or not raw_actions:
        raise DefinitionError(f"{pipeline}/{stage_name}: a stage needs at least one action")
    return Stage(stage_name, tuple(_action(f"{pipeline}/{stage_name}", a) for a in raw_actions))


def _action(where: str, raw: Any) -> Action:
    if not isinstance(raw, Mapping) or not raw.get("Name"):
        raise DefinitionError(f"{where}: an action without a Name: {raw!r}")
    name = str(raw["Name"])
    type_id = raw.get("ActionTypeId")
    if not isinstance(type_id, Mapping) or not {"Category", "Owner", "Provider"} <= type_id.keys():
        raise DefinitionError(f"{where}/{name}: ActionTypeId needs Category, Owner and Provider")
    category = str(type_id["Category"])
    if category not in CATEGORIES:
        raise DefinitionError(f"{where}/{name}: unknown action category {category!r}")
    configuration = raw.get("Configuration") or {}
    if not isinstance(configuration, Mapping):
        raise DefinitionError(f"{where}/{name}: Configuration is not a mapping")
    return Action(
        name=name,
        action_type=ActionType(
            category, str(type_id["Owner"]), str(type_id["Provider"]), str(type_id.get("Version", "1"))
        ),
        configuration={str(key): _configuration_value(value) for key, value in configuration.items()},
        input_artifacts=_artifact_names(raw.get("InputArtifacts")),
        output_artifacts=_artifact_names(raw.get("OutputArtifacts")),
        run_order=int(raw.get("RunOrder", 1)),
        namespace=str(raw["Namespace"]) if raw.get("Namespace") else None,
        role_arn=str(raw["RoleArn"]) if raw.get("RoleArn") else None,
    )


def _configuration_value(value: Any) -> str:
    """CodePipeline keeps configuration values as strings (`PollForSourceChanges: false` -> "false")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _artifact_names(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(a, Mapping) and a.get("Name") for a in raw):
        raise DefinitionError(f"artifacts must be a list of {{Name: ...}}, got {raw!r}")
    return tuple(str(a["Name"]) for a in raw)


def _check_artifacts(pipeline: str, stages: tuple[Stage, ...]) -> None:
    """As CodePipeline validates: outputs are unique, inputs come from an earlier action."""
    produced: set[str] = set()
    for stage in stages:
        for group in stage.action_groups():
            for action in group:
                missing = [a for a in action.input_artifacts if a not in produced]
                if missing:
                    raise DefinitionError(
                        f"{pipeline}/{stage.name}/{action.name}: input artifacts {missing} are not "
                        "produced by an earlier action"
                    )
            for action in group:
                duplicate = [a for a in action.output_artifacts if a in produced]
                if duplicate:
                    raise DefinitionError(f"{pipeline}: output artifacts {duplicate} are produced twice")
                produced.update(action.output_artifacts)


def codebuild_projects_from_template(
    template: Mapping[str, Any], context: StackContext
) -> dict[str, CodeBuildProject]:
    """Every CodeBuild project of the template, by its resolved name (what ProjectName refers to)."""
    projects: dict[str, CodeBuildProject] = {}
    resources: Mapping[str, Any] = template.get("Resources") or {}
    for logical, spec in resources.items():
        if not isinstance(spec, Mapping) or spec.get("Type") != CODEBUILD_PROJECT_TYPE:
            continue
        properties = resolve(spec.get("Properties") or {}, context)
        name = str(properties.get("Name") or context.resources.get(logical) or logical)
        environment = properties.get("Environment") or {}
        variables = tuple(
            EnvironmentVariable(str(v["Name"]), str(v["Value"]), str(v.get("Type", "PLAINTEXT")))
            for v in environment.get("EnvironmentVariables") or []
        )
        source = properties.get("Source") or {}
        cache = properties.get("Cache") or {}
        projects[name] = CodeBuildProject(
            name=name,
            environment_variables=variables,
            buildspec=str(source.get("BuildSpec") or "buildspec.yml"),
            image=str(environment.get("Image", "")),
            privileged_mode=bool(environment.get("PrivilegedMode", False)),
            timeout_minutes=int(properties.get("TimeoutInMinutes", 60)),
            cache_type=str(cache.get("Type", "NO_CACHE")),
            cache_modes=tuple(str(mode) for mode in cache.get("Modes") or ()),
            extra={
                k: v for k, v in properties.items() if k not in {"Name", "Environment", "Source", "Cache"}
            },
        )
    return projects
