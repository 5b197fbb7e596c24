"""What `mlops deploy`, `plan` and `destroy` do, as functions of an `AwsClient` (the harness calls these too).

deploy:  the assets stack -> the Lambda zips and the rendered API template uploaded to its bucket (keys
         carry the content hash, so unchanged code uploads nothing) -> the platform stack. Each stack goes
         through a change set; an unchanged one is left alone and reported "unchanged".
plan:    change sets for both stacks, described and deleted; nothing is uploaded or changed. Before the
         first deploy the assets bucket does not exist yet, so the platform is planned with a stand-in name.
destroy: the API stack (made by the pipeline), the platform stack, then the assets bucket's objects and
         its stack. The data and artifact buckets and the registry table are kept (DeletionPolicy Retain:
         they hold data and the model history); their names are returned so a person can remove them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deployer import compile as compiler
from deployer import package
from deployer.client import AwsClient, ChangeSetPlan, DeployError, StackResult

__all__ = ["DeployReport", "DestroyReport", "deploy", "destroy", "only_json", "plan", "render_all"]

PLANNED_ASSETS_BUCKET = "assets-bucket-created-by-the-first-deploy"
RETAINED_OUTPUTS = ("DataBucketName", "ArtifactBucketName", "RegistryTableName")
# Platform parameter -> the Lambda whose zip it names.
CODE_PARAMETERS = {
    "StartTrainingCodeKey": "start_training",
    "RegisterModelCodeKey": "register_model",
    "PublishApiCodeKey": "publish_api",
    "ApiProxyCodeKey": "api_proxy",
}


@dataclass(frozen=True)
class DeployReport:
    stacks: tuple[StackResult, ...]
    uploaded: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.uploaded) or any(stack.action != "unchanged" for stack in self.stacks)


@dataclass(frozen=True)
class DestroyReport:
    deleted: tuple[str, ...]
    retained: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rendered:
    """Everything one deploy pushes, computed without AWS."""

    assets_body: str
    platform_template: dict[str, Any]
    api_template: dict[str, Any]
    api_body: str
    api_key: str
    packages: dict[str, package.LambdaPackage]

    def platform_parameters(
        self, prefix: str, assets_bucket: str, overrides: Mapping[str, str]
    ) -> dict[str, str]:
        managed = {"AssetsBucket": assets_bucket, "ApiTemplateKey": self.api_key}
        managed |= {parameter: self.packages[name].key for parameter, name in CODE_PARAMETERS.items()}
        return compiler.platform_parameters(self.platform_template, prefix, managed, overrides)


def render_all() -> Rendered:
    api_template = compiler.render_api()
    api_body = compiler.template_body(api_template)
    return Rendered(
        assets_body=compiler.template_body(compiler.render_assets()),
        platform_template=compiler.render_platform(),
        api_template=api_template,
        api_body=api_body,
        api_key=package.content_key("templates", "api", api_body.encode(), ".json"),
        packages=package.build_all(),
    )


def deploy(client: AwsClient, prefix: str, overrides: Mapping[str, str]) -> DeployReport:
    names = compiler.stack_names(prefix)
    rendered = render_all()
    # Validate the overrides before touching anything.
    rendered.platform_parameters(prefix, PLANNED_ASSETS_BUCKET, overrides)
    assets = client.apply(names.assets, rendered.assets_body, {})
    bucket = assets.outputs.get("AssetsBucketName")
    if not bucket:
        raise DeployError(f"stack {names.assets} has no AssetsBucketName output")
    uploaded = []
    for lambda_package in rendered.packages.values():
        if client.upload(bucket, lambda_package.key, lambda_package.body):
            uploaded.append(lambda_package.key)
    if client.upload(bucket, rendered.api_key, rendered.api_body.encode()):
        uploaded.append(rendered.api_key)
    platform = client.apply(
        names.platform,
        compiler.template_body(rendered.platform_template),
        rendered.platform_parameters(prefix, bucket, overrides),
    )
    return DeployReport(stacks=(assets, platform), uploaded=tuple(uploaded))


def plan(client: AwsClient, prefix: str, overrides: Mapping[str, str]) -> tuple[ChangeSetPlan, ...]:
    names = compiler.stack_names(prefix)
    rendered = render_all()
    parameters = rendered.platform_parameters(prefix, PLANNED_ASSETS_BUCKET, overrides)
    assets_plan = client.plan(names.assets, rendered.assets_body, {})
    if client.describe(names.assets) is not None:
        bucket = client.outputs(names.assets).get("AssetsBucketName", PLANNED_ASSETS_BUCKET)
        parameters = rendered.platform_parameters(prefix, bucket, overrides)
    platform_body = compiler.template_body(rendered.platform_template)
    platform_plan = client.plan(names.platform, platform_body, parameters)
    return assets_plan, platform_plan


def destroy(client: AwsClient, prefix: str) -> DestroyReport:
    names = compiler.stack_names(prefix)
    deleted = []
    retained: dict[str, str] = {}
    if client.delete(names.api):
        deleted.append(names.api)
    if client.describe(names.platform) is not None:
        outputs = client.outputs(names.platform)
        retained = {key: outputs[key] for key in RETAINED_OUTPUTS if key in outputs}
        client.delete(names.platform)
        deleted.append(names.platform)
    if client.describe(names.assets) is not None:
        bucket = client.outputs(names.assets).get("AssetsBucketName")
        if bucket:
            client.empty_bucket(bucket)
        client.delete(names.assets)
        deleted.append(names.assets)
    return DestroyReport(deleted=tuple(deleted), retained=retained)


def only_json(prefix: str, overrides: Mapping[str, str]) -> dict[str, Any]:
    """What `plan --only-json` prints: the rendered templates and parameters, computed without AWS."""
    names = compiler.stack_names(prefix)
    rendered = render_all()
    assets_bucket = f"<AssetsBucketName output of {names.assets}>"
    return {
        names.assets: {"Template": compiler.render_assets(), "Parameters": {}},
        names.platform: {
            "Template": rendered.platform_template,
            "Parameters": rendered.platform_parameters(prefix, assets_bucket, overrides),
        },
        names.api: {
            "Template": rendered.api_template,
            "TemplateKey": rendered.api_key,
            "DeployedBy": "the pipeline's PublishApi action (deployer/lambdas/publish_api.py)",
        },
    }
