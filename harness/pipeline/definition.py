"""The CodePipeline's definition, as typed objects read from the emulator as CodePipeline holds it.

CloudFormation creates the pipeline and its CodeBuild projects in the emulator (the seam
harness/seams/cfn_pipeline.py gives moto's CloudFormation the two resource types, and moto resolves the
template's intrinsics), so the runner reads them as a console or an SDK user would:
`pipeline_from_api()` takes GetPipeline's `pipeline` structure, `codebuild_project_from_api()` one of
BatchGetProjects' `projects`; `harness.pipeline.wiring.deployed_pipeline()` makes both calls.

CodePipeline's own variables (`#{SourceVariables.CommitId}`, `#{codepipeline.PipelineExecutionId}`) are
left in place here: they are resolved per run by the runner.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    service_role: str = ""  # the project's serviceRole: the role the build's calls are made with
    extra: Mapping[str, Any] = field(default_factory=dict)  # the project's other API members


def pipeline_from_api(declaration: Mapping[str, Any]) -> Pipeline:
    """The pipeline of GetPipeline's `pipeline` structure (API member names: camelCase)."""
    name = str(declaration.get("name") or "")
    if not name:
        raise DefinitionError("the pipeline declaration has no name")
    store = declaration.get("artifactStore") or {}
    bucket = str(store.get("location", "")) if isinstance(store, Mapping) else ""
    if not bucket:
        raise DefinitionError(f"{name}: the pipeline needs artifactStore.location (its S3 artifact bucket)")
    raw_stages = declaration.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise DefinitionError(f"{name}: the pipeline has no stages")
    stages = tuple(_stage(name, raw) for raw in raw_stages)
    _check_artifacts(name, stages)
    return Pipeline(name, stages, bucket, str(declaration.get("roleArn", "")))


def _stage(pipeline: str, raw: Any) -> Stage:
    if not isinstance(raw, Mapping) or not raw.get("name"):
        raise DefinitionError(f"{pipeline}: a stage without a name: {raw!r}")
    stage_name = str(raw["name"])
    raw_actions = raw.get("actions")
    if not isinstance(raw_actions, list) or not raw_actions:
        raise DefinitionError(f"{pipeline}/{stage_name}: a stage needs at least one action")
    return Stage(stage_name, tuple(_action(f"{pipeline}/{stage_name}", a) for a in raw_actions))


def _action(where: str, raw: Any) -> Action:
    if not isinstance(raw, Mapping) or not raw.get("name"):
        raise DefinitionError(f"{where}: an action without a name: {raw!r}")
    name = str(raw["name"])
    type_id = raw.get("actionTypeId")
    if not isinstance(type_id, Mapping) or not {"category", "owner", "provider"} <= type_id.keys():
        raise DefinitionError(f"{where}/{name}: actionTypeId needs category, owner and provider")
    category = str(type_id["category"])
    if category not in CATEGORIES:
        raise DefinitionError(f"{where}/{name}: unknown action category {category!r}")
    configuration = raw.get("configuration") or {}
    if not isinstance(configuration, Mapping):
        raise DefinitionError(f"{where}/{name}: configuration is not a mapping")
    return Action(
        name=name,
        action_type=ActionType(
            category, str(type_id["owner"]), str(type_id["provider"]), str(type_id.get("version", "1"))
        ),
        configuration={str(key): _configuration_value(value) for key, value in configuration.items()},
        input_artifacts=_artifact_names(raw.get("inputArtifacts")),
        output_artifacts=_artifact_names(raw.get("outputArtifacts")),
        run_order=int(raw.get("runOrder", 1)),
        namespace=str(raw["namespace"]) if raw.get("namespace") else None,
        role_arn=str(raw["roleArn"]) if raw.get("roleArn") else None,
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
    if not isinstance(raw, list) or not all(isinstance(a, Mapping) and a.get("name") for a in raw):
        raise DefinitionError(f"artifacts must be a list of {{name: ...}}, got {raw!r}")
    return tuple(str(a["name"]) for a in raw)


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


def codebuild_project_from_api(project: Mapping[str, Any]) -> CodeBuildProject:
    """One of BatchGetProjects' `projects` (API member names: camelCase)."""
    name = str(project.get("name") or "")
    if not name:
        raise DefinitionError(f"a CodeBuild project without a name: {project!r}")
    environment = project.get("environment") or {}
    variables = tuple(
        EnvironmentVariable(str(v["name"]), str(v.get("value", "")), str(v.get("type", "PLAINTEXT")))
        for v in environment.get("environmentVariables") or []
    )
    source = project.get("source") or {}
    cache = project.get("cache") or {}
    return CodeBuildProject(
        name=name,
        environment_variables=variables,
        buildspec=str(source.get("buildspec") or "buildspec.yml"),
        image=str(environment.get("image", "")),
        privileged_mode=bool(environment.get("privilegedMode", False)),
        timeout_minutes=int(project.get("timeoutInMinutes") or 60),
        cache_type=str(cache.get("type", "NO_CACHE")),
        cache_modes=tuple(str(mode) for mode in cache.get("modes") or ()),
        service_role=str(project.get("serviceRole", "")),
        extra={k: v for k, v in project.items() if k not in {"name", "environment", "source", "cache"}},
    )
