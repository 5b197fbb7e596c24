"""Seam: CloudFormation creates `AWS::CodePipeline::Pipeline` and `AWS::CodeBuild::Project`.

Why: moto 5.2.5's CloudFormation has no model for either type: it skips them with a warning and still
reports CREATE_COMPLETE, so a stack's pipeline and build project exist nowhere, `Ref` and `Fn::GetAtt`
of them resolve to nothing, and GetPipeline / BatchGetProjects know neither. moto does have
codepipeline and codebuild backends (the objects CreatePipeline and CreateProject make).

How: one `CloudFormationModel` subclass per type (moto lists the *direct* subclasses of
`CloudFormationModel` as its models, see docs/MOTO-SEAMS.md), each creating, updating and deleting
through moto's own backend, so that the resource is exactly what the API calls would have made and
moto's CloudFormation resolves the template's intrinsics (`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If`
on the source provider included) before the model sees its properties. The properties are turned
from CloudFormation's shape (PascalCase, `ArtifactStores` as a list) into the API's (camelCase, a
map), which is what the console and the SDKs read back.

What AWS documents, and this seam gives (CloudFormation template reference, "AWS::CodePipeline::
Pipeline" and "AWS::CodeBuild::Project", sections "Return values"; the resource provider schemas
cfn-lint ships, `readOnlyProperties` / `createOnlyProperties`):
- `Ref` of a pipeline is its name; `Fn::GetAtt Pipeline.Version` its version (1 when created, one
  more on each update, as UpdatePipeline counts);
- `Ref` of a project is its name; `Fn::GetAtt Project.Arn` its ARN;
- `Name` is create-only for both: a new name replaces the resource (the new one is created, the old
  one deleted); any other change updates it in place;
- CodePipeline keeps action configuration values as strings (`PollForSourceChanges: false` reads
  back as "false"), and a pipeline needs a role CodePipeline may assume and two stages at least:
  moto's `create_pipeline` checks both, and a failure fails the resource (CREATE_FAILED).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from moto.core.common_models import CloudFormationModel

_PIPELINE_TYPE = "AWS::CodePipeline::Pipeline"
_PROJECT_TYPE = "AWS::CodeBuild::Project"

# CloudFormation property -> API member, where the API's name is not the property's with a lower-case
# first letter (CodeBuild's ProjectSource.buildspec).
_RENAMED = {"BuildSpec": "buildspec"}
# The pipeline's structure members (PipelineDeclaration); the other properties of the resource
# (Tags, RestartExecutionOnUpdate, DisableInboundStageTransitions) are CloudFormation's own.
_PIPELINE_MEMBERS = (
    "Name",
    "RoleArn",
    "ArtifactStore",
    "Stages",
    "ExecutionMode",
    "PipelineType",
    "Variables",
    "Triggers",
)


def _api_name(name: str) -> str:
    return _RENAMED.get(name, name[:1].lower() + name[1:])


def _configuration_value(value: Any) -> str:
    """Action configuration values are strings in CodePipeline (booleans as "true"/"false")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def api_shape(value: Any) -> Any:
    """CloudFormation's property shape -> the API's: member names camelCased, recursively, except the
    keys of an action's `Configuration` (CodePipeline keeps those as written, values as strings)."""
    if isinstance(value, list):
        return [api_shape(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    shaped: dict[str, Any] = {}
    for key, inner in value.items():
        if key == "Configuration" and isinstance(inner, Mapping):
            shaped["configuration"] = {str(k): _configuration_value(v) for k, v in inner.items()}
        else:
            shaped[_api_name(str(key))] = api_shape(inner)
    return shaped


def _properties(cloudformation_json: Mapping[str, Any]) -> dict[str, Any]:
    properties = cloudformation_json.get("Properties") or {}
    if not isinstance(properties, dict):
        raise ValueError("a resource's Properties must be a mapping")
    return properties


def _tags(properties: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"key": str(tag["Key"]), "value": str(tag["Value"])} for tag in properties.get("Tags") or []]


def _boolean(value: Any) -> bool:
    """A CloudFormation Boolean (YAML true, or the text "true" from a parameter)."""
    return value is True or str(value).lower() == "true"


# -- AWS::CodePipeline::Pipeline ----------------------------------------------------------------------
def pipeline_declaration(name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """The resource's properties as CreatePipeline's `pipeline` structure."""
    declaration: dict[str, Any] = {
        _api_name(key): api_shape(properties[key]) for key in _PIPELINE_MEMBERS if key in properties
    }
    declaration["name"] = name
    stores = properties.get("ArtifactStores")
    if stores:
        # CloudFormation lists {Region, ArtifactStore}; the API maps region -> store.
        declaration["artifactStores"] = {
            str(entry["Region"]): api_shape(entry["ArtifactStore"]) for entry in stores
        }
    for stage in declaration.get("stages", []):
        for action in stage.get("actions", []):
            type_id = action.get("actionTypeId") or {}
            type_id.setdefault("version", "1")
            type_id["version"] = str(type_id["version"])
            if "runOrder" in action:
                action["runOrder"] = int(action["runOrder"])
    return declaration


def _pipelines(account_id: str, region_name: str) -> Any:
    from moto.codepipeline.models import codepipeline_backends

    return codepipeline_backends[account_id][region_name]


class CfnPipeline(CloudFormationModel):
    """AWS::CodePipeline::Pipeline, held by moto's codepipeline backend."""

    __module__ = "moto.codepipeline.models"

    def __init__(self, account_id: str, region_name: str, name: str, properties: dict[str, Any]) -> None:
        self.account_id = account_id
        self.region_name = region_name
        self.name = name
        self.properties = properties

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return _PIPELINE_TYPE

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CfnPipeline:
        properties = _properties(cloudformation_json)
        name = str(properties.get("Name") or resource_name)
        _pipelines(account_id, region_name).create_pipeline(
            pipeline_declaration(name, properties), _tags(properties)
        )
        return cls(account_id, region_name, name, properties)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: CfnPipeline,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CfnPipeline:
        properties = _properties(cloudformation_json)
        name = str(properties.get("Name") or new_resource_name)
        if name != original_resource.name:  # Name is create-only: replacement
            replacement = cls.create_from_cloudformation_json(
                name, cloudformation_json, account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return replacement
        _pipelines(account_id, region_name).update_pipeline(pipeline_declaration(name, properties))
        original_resource.properties = properties
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        _pipelines(account_id, region_name).delete_pipeline(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        _pipelines(account_id, region_name).delete_pipeline(self.name)

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Version"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Version":
            pipeline, _ = _pipelines(self.account_id, self.region_name).get_pipeline(self.name)
            return str(pipeline["version"])
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    def is_created(self) -> bool:
        return True


# -- AWS::CodeBuild::Project --------------------------------------------------------------------------
def _environment(raw: Mapping[str, Any]) -> dict[str, Any]:
    environment: dict[str, Any] = api_shape(raw)
    if "privilegedMode" in environment:
        environment["privilegedMode"] = _boolean(environment["privilegedMode"])
    for variable in environment.get("environmentVariables") or []:
        variable.setdefault("type", "PLAINTEXT")
        variable["value"] = str(variable.get("value", ""))
    return environment


def _create_project(name: str, properties: Mapping[str, Any], account_id: str, region_name: str) -> Any:
    from moto.codebuild.models import codebuild_backends

    backend = codebuild_backends[account_id][region_name]
    history = backend.build_history.get(name)
    backend.create_project(
        project_name=name,
        description=properties.get("Description"),
        project_source=api_shape(properties.get("Source") or {}),
        artifacts=api_shape(properties.get("Artifacts") or {}),
        environment=_environment(properties.get("Environment") or {}),
        service_role=str(properties.get("ServiceRole", "")),
        tags=_tags(properties) or None,
        cache=api_shape(properties["Cache"]) if properties.get("Cache") else None,
        timeout=int(properties.get("TimeoutInMinutes", 60)),
        queued_timeout=int(properties.get("QueuedTimeoutInMinutes", 480)),
        source_version=properties.get("SourceVersion"),
        logs_config=api_shape(properties["LogsConfig"]) if properties.get("LogsConfig") else None,
        vpc_config=api_shape(properties["VpcConfig"]) if properties.get("VpcConfig") else None,
    )
    if history is not None:  # an update in place keeps the project's builds
        backend.build_history[name] = history
    return backend.codebuild_projects[name]


class CfnProject(CloudFormationModel):
    """AWS::CodeBuild::Project, held by moto's codebuild backend."""

    __module__ = "moto.codebuild.models"

    def __init__(self, name: str, arn: str, properties: dict[str, Any]) -> None:
        self.name = name
        self.arn = arn
        self.properties = properties

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return _PROJECT_TYPE

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> CfnProject:
        properties = _properties(cloudformation_json)
        name = str(properties.get("Name") or resource_name)
        from moto.codebuild.models import codebuild_backends

        if name in codebuild_backends[account_id][region_name].codebuild_projects:
            raise ValueError(f"Project already exists: arn of {name}")  # CreateProject's check
        project = _create_project(name, properties, account_id, region_name)
        return cls(name, str(project.arn), properties)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: CfnProject,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CfnProject:
        properties = _properties(cloudformation_json)
        name = str(properties.get("Name") or new_resource_name)
        if name != original_resource.name:  # Name is create-only: replacement
            replacement = cls.create_from_cloudformation_json(
                name, cloudformation_json, account_id, region_name
            )
            original_resource.delete(account_id, region_name)
            return replacement
        _create_project(name, properties, account_id, region_name)
        original_resource.properties = properties
        return original_resource

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        from moto.codebuild.models import codebuild_backends

        codebuild_backends[account_id][region_name].delete_project(resource_name)

    def delete(self, account_id: str, region_name: str) -> None:
        from moto.codebuild.models import codebuild_backends

        codebuild_backends[account_id][region_name].delete_project(self.name)

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Arn":
            return self.arn
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    def is_created(self) -> bool:
        return True


MODELS: tuple[type[CloudFormationModel], ...] = (CfnPipeline, CfnProject)


def install() -> None:
    from moto.cloudformation import parsing

    caches = ("get_model_list", "get_model_map", "get_name_type_map")
    for name in caches:
        if not hasattr(getattr(parsing, name, None), "cache_clear"):
            raise RuntimeError(
                f"moto moved: cloudformation.parsing.{name} is no cached function; "
                "port harness/seams/cfn_pipeline.py"
            )
    for name in caches:
        getattr(parsing, name).cache_clear()
    model_map = parsing.get_model_map()
    for model in MODELS:
        if model_map.get(model.cloudformation_type()) is not model:
            raise RuntimeError(
                f"moto did not pick up the model for {model.cloudformation_type()} "
                "(moto now has its own? then drop it from harness/seams/cfn_pipeline.py)"
            )
