"""`mlops plan`, `deploy` and `destroy` against the emulator, through the CLI a person uses.

The emulator is moto with the harness's seams. Its CloudFormation still skips AWS::S3::BucketPolicy,
and applies only part of a bucket's or a repository's properties (see docs/FACTS.md; the harness runs
the build and the pipeline itself): the tests say where, check those parts in the template
(test_compile.py), and check everything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from deployer import compile as compiler
from deployer import package
from deployer.client import AwsClient, DeployError
from harness.emulator import EmbeddedEmulator
from mlops.cli import app

PREFIX = "dd"
PARAMETERS = [
    "--parameter",
    "ProjectName=dd",
    "--parameter",
    "EndpointName=dd-endpoint",
    "--parameter",
    "HostingInstanceType=ml.m5.large",
]


def mlops(emulator: EmbeddedEmulator, *args: str) -> Any:
    result = CliRunner().invoke(
        app,
        [
            *args,
            "--endpoint-url",
            emulator.endpoint_url,
            "--region",
            emulator.region,
            "--stack-prefix",
            PREFIX,
        ],
    )
    return result


@pytest.fixture(scope="module")
def first_deploy(emulator: EmbeddedEmulator) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.delenv("AWS_PROFILE", raising=False)
        yield mlops(emulator, "deploy", *PARAMETERS)


@pytest.fixture
def credentials(aws_env: None) -> None:
    """Fake credentials in the environment (moto accepts any)."""


def outputs(emulator: EmbeddedEmulator, stack: str) -> dict[str, str]:
    described = emulator.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def test_deploy_creates_the_stacks_and_prints_their_outputs(
    emulator: EmbeddedEmulator, first_deploy: Any
) -> None:
    assert first_deploy.exit_code == 0, first_deploy.output
    assert "dd-assets: created" in first_deploy.output
    assert "dd-platform: created" in first_deploy.output
    for name, lambda_package in package.build_all().items():
        assert f"uploaded {lambda_package.key}" in first_deploy.output, name
    assert (
        "StateMachineArn = arn:aws:states:us-east-1:123456789012:stateMachine:dd-training"
        in first_deploy.output
    )


def test_deploy_creates_the_platforms_resources(emulator: EmbeddedEmulator, first_deploy: Any) -> None:
    platform = outputs(emulator, "dd-platform")
    s3 = emulator.client("s3")
    # The emulator's CloudFormation applies a bucket's BucketEncryption and Tags, and (the harness's events
    # seam) its EventBridge notifications, which moto's GetBucketNotificationConfiguration never shows:
    # tests/harness/test_seams_events.py::test_the_deployers_platform_wiring checks that a new object
    # under the data prefix reaches the start-training function. Versioning and the public access block
    # are checked in the template (test_compile.py).
    for bucket in (platform["DataBucketName"], platform["ArtifactBucketName"]):
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    table = emulator.client("dynamodb").describe_table(TableName=platform["RegistryTableName"])["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "ModelName", "KeyType": "HASH"},
        {"AttributeName": "Version", "KeyType": "RANGE"},
    ]
    # moto does not apply the repository's scan-on-push setting from a template (test_compile.py checks it).
    repository = emulator.client("ecr").describe_repositories(repositoryNames=["dd"])["repositories"][0]
    assert platform["ImageRepositoryUri"] == repository["repositoryUri"]

    lambdas = emulator.client("lambda")
    assets = outputs(emulator, "dd-assets")["AssetsBucketName"]
    for function, module in (
        ("dd-start-training", "start_training"),
        ("dd-register-model", "register_model"),
        ("dd-publish-api", "publish_api"),
    ):
        configuration = lambdas.get_function_configuration(FunctionName=function)
        assert configuration["Handler"] == f"deployer.lambdas.{module}.handler"
        assert configuration["Runtime"] == "python3.11"
        code = lambdas.get_function(FunctionName=function)["Code"]
        assert code.get("Location") or code.get("RepositoryType")
        assert s3.head_object(Bucket=assets, Key=package.build(module).key)
    environment = lambdas.get_function_configuration(FunctionName="dd-start-training")["Environment"][
        "Variables"
    ]
    assert environment["STATE_MACHINE_ARN"] == platform["StateMachineArn"]
    assert environment["DATA_BUCKET"] == platform["DataBucketName"]
    assert environment["QUALITY_THRESHOLD"] == "0.85"

    machine = emulator.client("stepfunctions").describe_state_machine(
        stateMachineArn=platform["StateMachineArn"]
    )
    assert json.loads(machine["definition"])["StartAt"] == "FirstTrainingAttempt"

    events = emulator.client("events")
    [rule] = [r for r in events.list_rules()["Rules"] if "DataArrived" in r["Name"]]
    pattern = json.loads(rule["EventPattern"])
    assert pattern["detail"]["bucket"]["name"] == [platform["DataBucketName"]]
    assert pattern["detail"]["object"]["key"] == [{"prefix": "data/intents/"}]
    [target] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"].endswith(":function:dd-start-training")
    policy = lambdas.get_policy(FunctionName="dd-start-training")["Policy"]
    assert "events.amazonaws.com" in policy

    roles = {r["RoleName"] for r in emulator.client("iam").list_roles()["Roles"]}
    assert any("SageMakerExecutionRole" in role for role in roles)


def test_the_emulator_creates_the_build_project_and_the_pipeline(
    emulator: EmbeddedEmulator, first_deploy: Any
) -> None:
    """The stack's CodeBuild project and pipeline exist as CloudFormation made them
    (harness/seams/cfn_pipeline.py): `Ref` of each is its name (CloudFormation template reference,
    "Return values"), and CodePipeline and CodeBuild answer for them."""
    resources = emulator.client("cloudformation").list_stack_resources(StackName="dd-platform")
    physical = {r["ResourceType"]: r["PhysicalResourceId"] for r in resources["StackResourceSummaries"]}
    assert (
        physical["AWS::CodePipeline::Pipeline"]
        == outputs(emulator, "dd-platform")["PipelineName"]
        == "dd-pipeline"
    )
    assert (
        physical["AWS::CodeBuild::Project"]
        == outputs(emulator, "dd-platform")["BuildProjectName"]
        == "dd-image"
    )
    assert (
        emulator.client("codepipeline").get_pipeline(name="dd-pipeline")["pipeline"]["name"] == "dd-pipeline"
    )
    assert [
        p["name"] for p in emulator.client("codebuild").batch_get_projects(names=["dd-image"])["projects"]
    ] == ["dd-image"]


def test_a_second_deploy_changes_nothing(
    emulator: EmbeddedEmulator, first_deploy: Any, credentials: None
) -> None:
    before = emulator.client("cloudformation").describe_stack_events(StackName="dd-platform")["StackEvents"]
    again = mlops(emulator, "deploy", *PARAMETERS)
    assert again.exit_code == 0, again.output
    assert "dd-assets: unchanged" in again.output and "dd-platform: unchanged" in again.output
    assert "uploaded" not in again.output
    assert again.output.strip().endswith("deploy: no change")
    after = emulator.client("cloudformation").describe_stack_events(StackName="dd-platform")["StackEvents"]
    assert len(after) == len(before)


def test_plan_shows_a_change_set_and_changes_nothing(
    emulator: EmbeddedEmulator, first_deploy: Any, credentials: None
) -> None:
    unchanged = mlops(emulator, "plan", *PARAMETERS)
    assert unchanged.exit_code == 0, unchanged.output
    assert "dd-assets: no change" in unchanged.output and "dd-platform: no change" in unchanged.output

    changed = mlops(emulator, "plan", *PARAMETERS, "--parameter", "QualityThreshold=0.9")
    assert changed.exit_code == 0, changed.output
    assert "dd-platform: UPDATE" in changed.output
    # The planned change set is gone (moto keeps executed ones listed, and lists every stack's).
    summaries = emulator.client("cloudformation").list_change_sets(StackName="dd-platform")["Summaries"]
    pending = [
        s for s in summaries if s["StackName"] == "dd-platform" and s["ExecutionStatus"] == "AVAILABLE"
    ]
    assert pending == []
    environment = emulator.client("lambda").get_function_configuration(FunctionName="dd-start-training")
    assert environment["Environment"]["Variables"]["QUALITY_THRESHOLD"] == "0.85"


def test_plan_of_stacks_not_yet_deployed_lists_their_resources_and_leaves_no_stack(
    emulator: EmbeddedEmulator, credentials: None
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "--endpoint-url",
            emulator.endpoint_url,
            "--region",
            emulator.region,
            "--stack-prefix",
            "fresh",
            "--parameter",
            "ProjectName=fresh",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "fresh-platform: CREATE" in result.output
    assert "TrainingStateMachine" in result.output and "AWS::StepFunctions::StateMachine" in result.output
    client = AwsClient(emulator.session(), endpoint_url=emulator.endpoint_url)
    assert client.describe("fresh-assets") is None and client.describe("fresh-platform") is None


def test_plan_only_json_makes_no_aws_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_aws(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"plan --only-json called AWS: {args[1:2]}")

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", no_aws)
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(
        app, ["plan", "--only-json", "--stack-prefix", "offline", "-p", "QualityThreshold=0.9"]
    )
    assert result.exit_code == 0, result.output
    rendered = json.loads(result.output)
    assert set(rendered) == {"offline-assets", "offline-platform", "offline-api"}
    platform = rendered["offline-platform"]
    assert platform["Parameters"]["QualityThreshold"] == "0.9"
    definition = platform["Template"]["Resources"]["TrainingStateMachine"]["Properties"]["DefinitionString"]
    assert json.loads(definition["Fn::Sub"][0])["StartAt"] == "FirstTrainingAttempt"
    assert rendered["offline-api"]["Template"] == compiler.render_api()


def test_an_unknown_parameter_is_refused_before_any_change(
    emulator: EmbeddedEmulator, credentials: None
) -> None:
    result = mlops(emulator, "deploy", "--parameter", "QualityTreshold=0.9")
    assert result.exit_code == 1
    assert "unknown parameter(s) ['QualityTreshold']" in result.output


def test_missing_credentials_are_named(
    emulator: EmbeddedEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = mlops(emulator, "deploy")
    assert result.exit_code == 1
    assert "no AWS credentials" in result.output and "--profile" in result.output


def test_a_stack_the_service_rejects_is_a_clear_error(emulator: EmbeddedEmulator) -> None:
    client = AwsClient(emulator.session(), endpoint_url=emulator.endpoint_url, poll_seconds=0.05)
    broken = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::GetAtt": ["Nope", "Arn"]}}}
        }
    }
    with pytest.raises(DeployError, match="Nope"):
        client.apply("dd-broken", json.dumps(broken), {})


def test_destroy_removes_the_stacks_and_keeps_the_data(
    emulator: EmbeddedEmulator, first_deploy: Any, credentials: None
) -> None:
    platform = outputs(emulator, "dd-platform")
    result = mlops(emulator, "destroy", "--yes")
    assert result.exit_code == 0, result.output
    assert "deleted dd-platform" in result.output and "deleted dd-assets" in result.output
    client = AwsClient(emulator.session(), endpoint_url=emulator.endpoint_url)
    assert client.describe("dd-platform") is None and client.describe("dd-assets") is None
    functions = {f["FunctionName"] for f in emulator.client("lambda").list_functions()["Functions"]}
    assert not {"dd-start-training", "dd-register-model", "dd-publish-api"} & functions
    machines = emulator.client("stepfunctions").list_state_machines()["stateMachines"]
    assert "dd-training" not in {m["name"] for m in machines}
    # Kept on purpose (DeletionPolicy Retain) and named in the output.
    assert f"kept DataBucketName = {platform['DataBucketName']}" in result.output
    emulator.client("s3").head_bucket(Bucket=platform["DataBucketName"])
    emulator.client("dynamodb").describe_table(TableName=platform["RegistryTableName"])
    nothing = mlops(emulator, "destroy", "--yes")
    assert nothing.exit_code == 0 and "nothing to delete" in nothing.output


def test_an_unknown_profile_is_named(
    emulator: EmbeddedEmulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = mlops(emulator, "deploy", "--profile", "no-such-profile")
    assert result.exit_code == 1
    assert "no-such-profile" in result.output and "--profile" in result.output
