"""`mlops plan`, `mlops deploy` and `mlops destroy`: options, the boto3 session, and what is printed.

No AWS call happens at import or in `plan --only-json`; boto3 is imported only when a command needs it.
Every command takes the same options: --region, --profile, --stack-prefix, --parameter KEY=VALUE
(platform template parameters, repeatable) and --endpoint-url (any AWS-compatible endpoint).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from deployer import compile as compiler

if TYPE_CHECKING:
    from deployer.client import AwsClient

RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region (default: the profile's).")]
ProfileOption = Annotated[str | None, typer.Option("--profile", help="AWS named profile.")]
PrefixOption = Annotated[
    str, typer.Option("--stack-prefix", help="Stacks are <prefix>-assets, <prefix>-platform, <prefix>-api.")
]
ParameterOption = Annotated[
    list[str] | None,
    typer.Option("--parameter", "-p", help="A platform template parameter as KEY=VALUE (repeatable)."),
]
EndpointOption = Annotated[
    str | None, typer.Option("--endpoint-url", help="An AWS-compatible endpoint instead of AWS's own.")
]


def plan(
    only_json: Annotated[
        bool, typer.Option("--only-json", help="Print the rendered templates and parameters; no AWS call.")
    ] = False,
    region: RegionOption = None,
    profile: ProfileOption = None,
    stack_prefix: PrefixOption = compiler.DEFAULT_STACK_PREFIX,
    parameter: ParameterOption = None,
    endpoint_url: EndpointOption = None,
) -> None:
    """Show what a deploy would change (change sets, deleted again); change nothing."""
    from deployer import deploy as deployment

    with _errors():
        overrides = compiler.parse_parameters(parameter or [])
        if only_json:
            typer.echo(json.dumps(deployment.only_json(stack_prefix, overrides), indent=2))
            return
        for stack_plan in deployment.plan(_client(region, profile, endpoint_url), stack_prefix, overrides):
            if stack_plan.no_change:
                typer.echo(f"{stack_plan.stack_name}: no change")
                continue
            count = len(stack_plan.changes)
            typer.echo(f"{stack_plan.stack_name}: {stack_plan.change_set_type}, {count} change(s)")
            if not stack_plan.changes:
                typer.echo("  (no resource listed: parameters or outputs change)")
            for change in stack_plan.changes:
                replacement = f" (replacement: {change.replacement})" if change.replacement else ""
                line = f"  {change.action:<8} {change.logical_id:<32} {change.resource_type}{replacement}"
                typer.echo(line)


def deploy(
    region: RegionOption = None,
    profile: ProfileOption = None,
    stack_prefix: PrefixOption = compiler.DEFAULT_STACK_PREFIX,
    parameter: ParameterOption = None,
    endpoint_url: EndpointOption = None,
) -> None:
    """Package the Lambdas, upload them, create or update the stacks, wait, and print their outputs."""
    from deployer import deploy as deployment

    with _errors():
        overrides = compiler.parse_parameters(parameter or [])
        report = deployment.deploy(_client(region, profile, endpoint_url), stack_prefix, overrides)
        for key in report.uploaded:
            typer.echo(f"uploaded {key}")
        for stack in report.stacks:
            typer.echo(f"{stack.stack_name}: {stack.action}")
            for key, value in sorted(stack.outputs.items()):
                typer.echo(f"  {key} = {value}")
        typer.echo("deploy: changed" if report.changed else "deploy: no change")


def destroy(
    region: RegionOption = None,
    profile: ProfileOption = None,
    stack_prefix: PrefixOption = compiler.DEFAULT_STACK_PREFIX,
    endpoint_url: EndpointOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the API, platform and assets stacks (data, artifacts and the registry are kept)."""
    from deployer import deploy as deployment

    names = compiler.stack_names(stack_prefix)
    if not yes:
        typer.confirm(f"Delete the stacks {names.api}, {names.platform} and {names.assets}?", abort=True)
    with _errors():
        report = deployment.destroy(_client(region, profile, endpoint_url), stack_prefix)
        for name in report.deleted:
            typer.echo(f"deleted {name}")
        if not report.deleted:
            typer.echo("nothing to delete")
        for key, value in report.retained.items():
            typer.echo(f"kept {key} = {value} (DeletionPolicy Retain: remove it by hand when unneeded)")


def check_iam(
    platform: Annotated[
        Path | None, typer.Option("--platform", help="platform.yaml to check (default: the project's).")
    ] = None,
    api: Annotated[
        Path | None, typer.Option("--api", help="api.yaml to check (default: the project's).")
    ] = None,
    buildspec: Annotated[
        Path | None, typer.Option("--buildspec", help="buildspec.yml to check (default: the project's).")
    ] = None,
    dockerfile: Annotated[
        Path | None, typer.Option("--dockerfile", help="Dockerfile to check (default: container/Dockerfile).")
    ] = None,
    parameter: ParameterOption = None,
) -> None:
    """Check every role of the rendered templates against what its code, its service and CloudFormation
    need (deployer.iam_check); no AWS call. Exit 1 when anything is missing, 2 on unreadable input."""
    import yaml

    from deployer import iam_check
    from deployer.iam_policy import PolicyError

    root = iam_check.REPO_ROOT
    try:
        overrides = compiler.parse_parameters(parameter or [])
        platform_template = compiler.render_platform(
            template=iam_check.load_yaml(platform) if platform else None
        )
        api_template = iam_check.load_yaml(api) if api else compiler.render_api()
        buildspec_text = (buildspec or root / "deployer" / "buildspec.yml").read_text(encoding="utf-8")
        dockerfile_text = (dockerfile or root / "container" / "Dockerfile").read_text(encoding="utf-8")
        findings = iam_check.check(
            platform_template,
            api_template,
            overrides,
            buildspec_text=buildspec_text,
            dockerfile_text=dockerfile_text,
        )
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError, PolicyError) as error:
        typer.echo(f"error: check-iam cannot read its input: {error}", err=True)
        raise typer.Exit(code=2) from error
    for finding in findings:
        typer.echo(str(finding))
    if findings:
        typer.echo(f"check-iam: {len(findings)} finding(s)", err=True)
        raise typer.Exit(code=1)
    typer.echo("check-iam: every role has what its code, its service and CloudFormation need")


def _client(region: str | None, profile: str | None, endpoint_url: str | None) -> AwsClient:
    import boto3
    from botocore.exceptions import ProfileNotFound

    from deployer.client import AwsClient, DeployError

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as error:
        raise DeployError(f"{error}: check --profile and ~/.aws/config") from error
    if session.region_name is None:
        raise DeployError("no AWS region: pass --region or set AWS_REGION")
    return AwsClient(session, endpoint_url=endpoint_url)


class _errors:
    """Print a deployer error as one line and exit 1 (no traceback for errors a person can act on)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        from deployer.client import DeployError

        if isinstance(exc, DeployError | compiler.CompileError):
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1)
        return False
