"""Seam: CloudFormation creates API Gateway's ApiKey, UsagePlan, UsagePlanKey and Stage.

Why: moto 5.2.5's CloudFormation creates RestApi, Resource, Method, Deployment and Lambda::Permission
but has no model for these four types: it skips them with a warning and still reports
CREATE_COMPLETE, so an API stack deployed into the emulator has no key, no usage plan (no throttle)
and no separate stage. moto finds CloudFormation models as the direct subclasses of
`CloudFormationModel` (cached by `cloudformation.parsing.get_model_list`/`get_model_map`/
`get_name_type_map`), so this seam defines one subclass per type, creating the resource through
moto's own API Gateway backend (the same objects the API calls create), and clears those caches.

It also gives moto's `Deployment` a physical id, so that `Ref Deployment` is the deployment id as on
AWS (moto hands the Python object to the referring resource, e.g. a Stage's DeploymentId), and applies
the stage throttling moto's Deployment and Stage models ignore (a Deployment's
`StageDescription.ThrottlingRateLimit/ThrottlingBurstLimit/MethodSettings/Variables`, a Stage's
`MethodSettings`) to the stage's method settings, where `update_stage` puts them too and the local
gateway reads them.

References behave as on AWS: `Ref` of an ApiKey is the key id, of a UsagePlan the plan id, of a
UsagePlanKey the key id, of a Stage the stage name; `Fn::GetAtt Key.APIKeyId`, `Plan.Id`,
`PlanKey.Id` work. Updates replace the resource when its properties change (a new key id where AWS
would keep it for some property changes; the harness's templates do not update keys in place);
stack deletion deletes them.
"""

from __future__ import annotations

from typing import Any

from moto.core.common_models import CloudFormationModel

# moto's model registry derives the service from the class's module (moto.<service>.…).
_MOTO_MODULE = "moto.apigateway.models"


def _backend(account_id: str, region_name: str) -> Any:
    from moto.apigateway.models import apigateway_backends

    return apigateway_backends[account_id][region_name]


def _properties(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
    properties = cloudformation_json.get("Properties") or {}
    if not isinstance(properties, dict):
        raise ValueError("a resource's Properties must be a mapping")
    return properties


def _tags(properties: dict[str, Any]) -> dict[str, str] | None:
    tags = properties.get("Tags")
    if not tags:
        return None
    return {str(tag["Key"]): str(tag["Value"]) for tag in tags}


def _throttle(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if not raw:
        return None
    throttle: dict[str, Any] = {}
    if "BurstLimit" in raw:
        throttle["burstLimit"] = int(raw["BurstLimit"])
    if "RateLimit" in raw:
        throttle["rateLimit"] = float(raw["RateLimit"])
    return throttle


class _Replacing:
    """Shared create/replace/delete plumbing (a mixin: moto lists only *direct* subclasses of
    CloudFormationModel as models, so each model names CloudFormationModel itself as a base)."""

    properties: dict[str, Any]

    @classmethod
    def _create(cls, name: str, properties: dict[str, Any], account_id: str, region_name: str) -> Any:
        raise NotImplementedError

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = _properties(cloudformation_json)
        model = cls._create(resource_name, properties, account_id, region_name)
        model.properties = properties
        return model

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> Any:
        properties = _properties(cloudformation_json)
        if properties == getattr(original_resource, "properties", None):
            return original_resource
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )

    def delete(self, account_id: str, region_name: str) -> None:
        raise NotImplementedError


class CfnApiKey(_Replacing, CloudFormationModel):
    """AWS::ApiGateway::ApiKey."""

    __module__ = _MOTO_MODULE

    def __init__(self, key: Any) -> None:
        self.key = key

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::ApiKey"

    @classmethod
    def _create(cls, name: str, properties: dict[str, Any], account_id: str, region_name: str) -> Any:
        payload: dict[str, Any] = {
            "name": properties.get("Name", name),
            "description": properties.get("Description"),
            # CloudFormation's default for Enabled is false, as the API's.
            "enabled": str(properties.get("Enabled", False)).lower() == "true",
            "generateDistinctId": bool(properties.get("GenerateDistinctId", False)),
            "stageKeys": [
                f"{stage['RestApiId']}/{stage['StageName']}" for stage in properties.get("StageKeys", [])
            ],
            "customerId": properties.get("CustomerId"),
            "tags": _tags(properties),
        }
        if properties.get("Value"):
            payload["value"] = str(properties["Value"])
        return cls(_backend(account_id, region_name).create_api_key(payload))

    @property
    def physical_resource_id(self) -> str:
        return str(self.key.id)

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "APIKeyId"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "APIKeyId":
            return self.key.id
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        if self.key.id in backend.keys:
            backend.delete_api_key(self.key.id)


class CfnUsagePlan(_Replacing, CloudFormationModel):
    """AWS::ApiGateway::UsagePlan (ApiStages with per-stage throttles, Throttle, Quota)."""

    __module__ = _MOTO_MODULE

    def __init__(self, plan: Any) -> None:
        self.plan = plan

    @staticmethod
    def cloudformation_name_type() -> str:
        return "UsagePlanName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::UsagePlan"

    @classmethod
    def _create(cls, name: str, properties: dict[str, Any], account_id: str, region_name: str) -> Any:
        stages = []
        for stage in properties.get("ApiStages", []):
            entry: dict[str, Any] = {"apiId": str(stage["ApiId"]), "stage": str(stage["Stage"])}
            if stage.get("Throttle"):
                entry["throttle"] = {path: _throttle(limits) for path, limits in stage["Throttle"].items()}
            stages.append(entry)
        quota = properties.get("Quota")
        payload: dict[str, Any] = {
            "name": properties.get("UsagePlanName", name),
            "description": properties.get("Description"),
            "apiStages": stages,
            "throttle": _throttle(properties.get("Throttle")),
            "quota": {k[0].lower() + k[1:]: v for k, v in quota.items()} if quota else None,
            "tags": _tags(properties),
        }
        return cls(_backend(account_id, region_name).create_usage_plan(payload))

    @property
    def physical_resource_id(self) -> str:
        return str(self.plan.id)

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Id":
            return self.plan.id
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        backend.usage_plans.pop(self.plan.id, None)
        backend.usage_plan_keys.pop(self.plan.id, None)


class CfnUsagePlanKey(_Replacing, CloudFormationModel):
    """AWS::ApiGateway::UsagePlanKey (binds an API key to a usage plan)."""

    __module__ = _MOTO_MODULE

    def __init__(self, usage_plan_id: str, key_id: str) -> None:
        self.usage_plan_id = usage_plan_id
        self.key_id = key_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::UsagePlanKey"

    @classmethod
    def _create(cls, name: str, properties: dict[str, Any], account_id: str, region_name: str) -> Any:
        key_type = str(properties.get("KeyType", "API_KEY"))
        if key_type != "API_KEY":
            raise ValueError(f"UsagePlanKey KeyType must be API_KEY, not {key_type!r}")
        plan_id = str(properties["UsagePlanId"])
        backend = _backend(account_id, region_name)
        backend.get_usage_plan(plan_id)  # raises UsagePlanNotFoundException for a wrong id
        key = backend.create_usage_plan_key(plan_id, {"keyId": str(properties["KeyId"]), "keyType": key_type})
        return cls(plan_id, str(key.id))

    @property
    def physical_resource_id(self) -> str:
        return self.key_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Id":
            return self.key_id
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    def delete(self, account_id: str, region_name: str) -> None:
        keys = _backend(account_id, region_name).usage_plan_keys.get(self.usage_plan_id, {})
        keys.pop(self.key_id, None)


class CfnStage(_Replacing, CloudFormationModel):
    """AWS::ApiGateway::Stage (a stage pointing at a deployment)."""

    __module__ = _MOTO_MODULE

    def __init__(self, rest_api_id: str, stage_name: str) -> None:
        self.rest_api_id = rest_api_id
        self.stage_name = stage_name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "StageName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::Stage"

    @classmethod
    def _create(cls, name: str, properties: dict[str, Any], account_id: str, region_name: str) -> Any:
        rest_api_id = str(properties["RestApiId"])
        stage_name = str(properties.get("StageName", name))
        backend = _backend(account_id, region_name)
        api = backend.get_rest_api(rest_api_id)
        # A Deployment with the same StageName already made this stage: point it at the deployment.
        api.stages.pop(stage_name, None)
        stage = backend.create_stage(
            rest_api_id,
            stage_name,
            str(properties["DeploymentId"]),
            variables=properties.get("Variables") or {},
            description=properties.get("Description", ""),
            cacheClusterEnabled=properties.get("CacheClusterEnabled"),
            cacheClusterSize=properties.get("CacheClusterSize"),
            tags=_tags(properties),
            tracing_enabled=properties.get("TracingEnabled"),
        )
        for setting in properties.get("MethodSettings") or []:
            apply_throttle(stage, setting, setting.get("ResourcePath", "/*"), setting.get("HttpMethod", "*"))
        return cls(rest_api_id, stage_name)

    @property
    def physical_resource_id(self) -> str:
        return self.stage_name

    def delete(self, account_id: str, region_name: str) -> None:
        backend = _backend(account_id, region_name)
        api = backend.apis.get(self.rest_api_id)
        if api is not None:
            api.stages.pop(self.stage_name, None)


def apply_throttle(stage: Any, settings: dict[str, Any], resource_path: str, http_method: str) -> None:
    """Writes CloudFormation's ThrottlingRateLimit/ThrottlingBurstLimit into moto's stage method settings
    (the key is AWS's: the resource path with "/" escaped as "~1", then the method; "*/*" for all)."""
    path = "*" if resource_path in ("/*", "*") else resource_path.replace("/", "~1")
    key = f"{path}/{http_method}"
    for prop, setting in (
        ("ThrottlingRateLimit", "throttling/rateLimit"),
        ("ThrottlingBurstLimit", "throttling/burstLimit"),
    ):
        if prop in settings:
            stage._patch_method_setting(key, setting, str(settings[prop]))


def _deployment_create(original: Any) -> Any:
    def create_from_cloudformation_json(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        deployment = original.__func__(
            cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        properties = _properties(cloudformation_json)
        description = properties.get("StageDescription") or {}
        stage_name = properties.get("StageName")
        if stage_name and description:
            stage = _backend(account_id, region_name).get_stage(str(properties["RestApiId"]), str(stage_name))
            apply_throttle(stage, description, "/*", "*")
            for setting in description.get("MethodSettings") or []:
                apply_throttle(
                    stage, setting, setting.get("ResourcePath", "/*"), setting.get("HttpMethod", "*")
                )
            if description.get("Variables"):
                stage.variables.update(description["Variables"])
        return deployment

    create_from_cloudformation_json.__wrapped__ = original  # type: ignore[attr-defined]
    return classmethod(create_from_cloudformation_json)


MODELS: tuple[type[CloudFormationModel], ...] = (CfnApiKey, CfnUsagePlan, CfnUsagePlanKey, CfnStage)


def _deployment_id(self: Any) -> str:
    return str(self.id)


def install() -> None:
    from moto.apigateway.models import Deployment, Stage
    from moto.cloudformation import parsing

    existing = Deployment.__dict__.get("physical_resource_id")
    if existing is None:
        Deployment.physical_resource_id = property(_deployment_id)  # type: ignore[attr-defined]
    elif not (isinstance(existing, property) and existing.fget is _deployment_id):
        raise RuntimeError(
            "moto now gives Deployment a physical_resource_id: drop that part of harness/seams/apigateway.py"
        )

    create = Deployment.__dict__.get("create_from_cloudformation_json")
    if not isinstance(create, classmethod) or not hasattr(Stage, "_patch_method_setting"):
        raise RuntimeError(
            "moto moved: Deployment.create_from_cloudformation_json or Stage._patch_method_setting is gone; "
            "port harness/seams/apigateway.py"
        )
    if not hasattr(create.__func__, "__wrapped__"):
        Deployment.create_from_cloudformation_json = _deployment_create(create)  # type: ignore[method-assign,assignment]

    caches = ("get_model_list", "get_model_map", "get_name_type_map")
    for name in caches:
        if not hasattr(getattr(parsing, name, None), "cache_clear"):
            raise RuntimeError(
                f"moto moved: cloudformation.parsing.{name} is no cached function; "
                "port harness/seams/apigateway.py"
            )
    for name in caches:
        getattr(parsing, name).cache_clear()
    model_map = parsing.get_model_map()
    for model in MODELS:
        if model_map.get(model.cloudformation_type()) is not model:
            raise RuntimeError(f"moto did not pick up the model for {model.cloudformation_type()}")
