"""publish-api's promotion: after the approval, the serving endpoint moves to the approved config.

The pipeline's training execution deploys to the candidate endpoint only; the PublishApi action then
creates the serving endpoint on the approved config, or updates it, waits until it is InService on that
config (continuation tokens while it is not), deletes the candidate and publishes the API stack. With a
compute plane attached (conftest.py's `plane`: the stand-in image as real processes) endpoints go
Creating/Updating -> InService for real, and an update whose container cannot start rolls back, as
SageMaker's does: InService on the old config with a FailureReason, the old model still serving. Checks
of the candidate's deletion and of bad parameters need no containers (moto's endpoints are InService at
once).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from deployer.lambdas import publish_api
from deployer.lambdas.pipeline_job import EventError, PipelineJob
from harness.emulator import EmbeddedEmulator
from tests.deployer.conftest import PREFIX, LambdaContext, Plane, RecordingReporter, load_event, train_standin

# An API stack of its own (the proxy Lambda, key and plan are named after PROJECT_NAME), so that
# test_publish_api.py finds its stack as it left it.
API_STACK = "dtest-api-promotion"
API_PROJECT = "dpromo"
PROXY_POLICY = "promotion-tests-proxy-function"


def allow_this_files_proxy_function(emulator: EmbeddedEmulator) -> str:
    """The platform's ApiStackRole may manage only its own project's proxy function
    (`function:dtest-api-proxy`); this file's API stack names its function after API_PROJECT, as a
    second project would, so the role gets the same rights on that one function (IAM is enforced: without
    them CloudFormation's Lambda handler is denied lambda:CreateFunction and the stack rolls back)."""
    resource = emulator.client("cloudformation").describe_stack_resource(
        StackName=f"{PREFIX}-platform", LogicalResourceId="ApiStackRole"
    )["StackResourceDetail"]["PhysicalResourceId"]
    statement = {
        "Effect": "Allow",
        "Action": "lambda:*",
        "Resource": f"arn:aws:lambda:us-east-1:123456789012:function:{API_PROJECT}-api-proxy",
    }
    emulator.client("iam").put_role_policy(
        RoleName=resource,
        PolicyName=PROXY_POLICY,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    return str(resource)


@pytest.fixture
def settings(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, emulator: EmbeddedEmulator, platform: dict[str, str]
) -> Iterator[publish_api.Settings]:
    """The function's environment as the platform deployed it, with this file's API stack."""
    variables = emulator.client("lambda").get_function_configuration(
        FunctionName=platform["PublishApiFunctionName"]
    )["Environment"]["Variables"]
    assert variables["CANDIDATE_ENDPOINT_NAME"] == f"{variables['ENDPOINT_NAME']}-candidate"
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("API_STACK_NAME", API_STACK)
    monkeypatch.setenv("PROJECT_NAME", API_PROJECT)
    role = allow_this_files_proxy_function(emulator)
    monkeypatch.setenv("POLL_SECONDS", "0.05")
    yield publish_api.Settings.from_env()
    # The platform's role as deployed again: other files' tests read its one inline policy.
    emulator.client("iam").delete_role_policy(RoleName=role, PolicyName=PROXY_POLICY)


def with_endpoint(settings: publish_api.Settings, name: str) -> publish_api.Settings:
    """The same settings for a serving endpoint `name` (each test its own) and its candidate."""
    return publish_api.Settings(
        **{**vars(settings), "endpoint_name": name, "candidate_endpoint_name": f"{name}-candidate"}
    )


def clients(emulator: EmbeddedEmulator) -> publish_api.Clients:
    return publish_api.Clients(
        emulator.client("cloudformation"), emulator.client("s3"), emulator.client("sagemaker")
    )


def promotion_job(config: str, token: str | None = None) -> PipelineJob:
    """The sample job event as the pipeline sends it to PublishApi (TrainVariables resolved)."""
    event = load_event("codepipeline_job")
    data = event["CodePipeline.job"]["data"]
    data["inputArtifacts"] = []
    parameters = json.dumps({"EndpointConfigName": config})
    data["actionConfiguration"]["configuration"]["UserParameters"] = parameters
    if token is not None:
        data["continuationToken"] = token
    return PipelineJob.from_event(event)


def endpoint_config(emulator: EmbeddedEmulator, image: str, name: str, artifact: str) -> str:
    """A model and a one-variant endpoint config serving `artifact` with `image`; the config's name."""
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
        PrimaryContainer={"Image": image, "ModelDataUrl": artifact},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    return f"{name}-config"


def run_action(
    emulator: EmbeddedEmulator, settings: publish_api.Settings, job: PipelineJob, remaining_ms: int = 120_000
) -> tuple[dict[str, Any], RecordingReporter]:
    reporter = RecordingReporter()
    result = publish_api.run_pipeline_action(job, settings, clients(emulator), reporter, lambda: remaining_ms)
    return result, reporter


def run_to_the_end(
    emulator: EmbeddedEmulator, settings: publish_api.Settings, config: str, token: str | None = None
) -> tuple[dict[str, Any], list[RecordingReporter]]:
    """Invokes the action as CodePipeline does: again with each continuation token, until it ends."""
    reporters = []
    for _ in range(100):
        result, reporter = run_action(emulator, settings, promotion_job(config, token))
        reporters.append(reporter)
        if reporter.failures or reporter.successes[-1]["continuation_token"] is None:
            return result, reporters
        token = reporter.successes[-1]["continuation_token"]
    raise AssertionError("the action still hands out continuation tokens after 100 invocations")


def wait_in_service(emulator: EmbeddedEmulator, endpoint: str) -> None:
    sagemaker = emulator.client("sagemaker")
    waiter = sagemaker.get_waiter("endpoint_in_service")
    waiter.wait(EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def ask(emulator: EmbeddedEmulator, endpoint: str) -> str:
    answer = emulator.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps({"inputs": "hey"}), ContentType="application/json"
    )
    intent: str = json.loads(answer["Body"].read())["predictions"][0]["intent"]
    return intent


def endpoint_names(emulator: EmbeddedEmulator) -> set[str]:
    return {e["EndpointName"] for e in emulator.client("sagemaker").list_endpoints()["Endpoints"]}


def config_names(emulator: EmbeddedEmulator) -> set[str]:
    configs = emulator.client("sagemaker").list_endpoint_configs()["EndpointConfigs"]
    return {c["EndpointConfigName"] for c in configs}


def test_the_first_promotion_creates_the_serving_endpoint_then_publishes(
    emulator: EmbeddedEmulator, settings: publish_api.Settings, plane: Plane
) -> None:
    settings = with_endpoint(settings, "pr-create")
    artifact = train_standin(emulator, plane.image, "pr-create-train")
    config = endpoint_config(emulator, plane.image, "pr-create-run1", artifact)
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_endpoint(EndpointName=settings.candidate_endpoint_name, EndpointConfigName=config)
    wait_in_service(emulator, settings.candidate_endpoint_name)

    # No time to wait: the action asks for the endpoint and hands CodePipeline a token at once.
    first, reporter = run_action(emulator, settings, promotion_job(config), remaining_ms=1_000)
    assert reporter.failures == [] and first["status"] == "RUNNING"
    [handed] = reporter.successes
    assert json.loads(handed["continuation_token"]) == {"Step": "promote", "Requested": True}
    assert handed["output_variables"] == {}
    serving = sagemaker.describe_endpoint(EndpointName="pr-create")
    assert (serving["EndpointStatus"], serving["EndpointConfigName"]) == ("Creating", config)

    result, reporters = run_to_the_end(emulator, settings, config, handed["continuation_token"])
    assert result["status"] == "SUCCEEDED", result
    assert all(r.failures == [] for r in reporters)
    outputs = reporters[-1].successes[-1]["output_variables"]
    assert outputs["ApiUrl"].endswith("/v1/predict")
    assert outputs["ProxyFunctionName"] == f"{API_PROJECT}-api-proxy"
    serving = sagemaker.describe_endpoint(EndpointName="pr-create")
    assert (serving["EndpointStatus"], serving["EndpointConfigName"]) == ("InService", config)
    assert ask(emulator, "pr-create") == "greet"
    # The candidate is gone (it costs money); its config stays: the serving endpoint runs it.
    assert settings.candidate_endpoint_name not in endpoint_names(emulator)
    assert config in config_names(emulator)
    # The API's proxy calls the serving endpoint.
    proxy = emulator.client("lambda").get_function_configuration(FunctionName=f"{API_PROJECT}-api-proxy")
    assert proxy["Environment"]["Variables"]["ENDPOINT_NAME"] == "pr-create"


def test_a_later_promotion_updates_the_serving_endpoint_and_keeps_the_old_config(
    emulator: EmbeddedEmulator, settings: publish_api.Settings, plane: Plane
) -> None:
    settings = with_endpoint(settings, "pr-update")
    sagemaker = emulator.client("sagemaker")
    artifact = train_standin(emulator, plane.image, "pr-update-train")
    old = endpoint_config(emulator, plane.image, "pr-update-run1", artifact)
    new = endpoint_config(emulator, plane.image, "pr-update-run2", artifact)
    sagemaker.create_endpoint(EndpointName="pr-update", EndpointConfigName=old)
    sagemaker.create_endpoint(EndpointName=settings.candidate_endpoint_name, EndpointConfigName=new)
    wait_in_service(emulator, "pr-update")
    wait_in_service(emulator, settings.candidate_endpoint_name)

    first, reporter = run_action(emulator, settings, promotion_job(new), remaining_ms=1_000)
    assert first["status"] == "RUNNING" and reporter.failures == []
    assert sagemaker.describe_endpoint(EndpointName="pr-update")["EndpointStatus"] == "Updating"
    assert ask(emulator, "pr-update") == "greet"  # the old model answers during the update
    token = reporter.successes[0]["continuation_token"]
    result, _ = run_to_the_end(emulator, settings, new, token)
    assert result["status"] == "SUCCEEDED", result
    serving = sagemaker.describe_endpoint(EndpointName="pr-update")
    assert (serving["EndpointStatus"], serving["EndpointConfigName"]) == ("InService", new)
    assert ask(emulator, "pr-update") == "greet"
    assert settings.candidate_endpoint_name not in endpoint_names(emulator)
    assert {old, new} <= config_names(emulator)  # the state machine's runs own their configs


def test_an_endpoint_already_on_the_config_is_left_alone(
    emulator: EmbeddedEmulator, settings: publish_api.Settings, plane: Plane
) -> None:
    """A retried action, or a config a data-triggered run deployed: no second request."""
    settings = with_endpoint(settings, "pr-same")
    sagemaker = emulator.client("sagemaker")
    artifact = train_standin(emulator, plane.image, "pr-same-train")
    config = endpoint_config(emulator, plane.image, "pr-same-run1", artifact)
    sagemaker.create_endpoint(EndpointName="pr-same", EndpointConfigName=config)
    wait_in_service(emulator, "pr-same")
    before = sagemaker.describe_endpoint(EndpointName="pr-same")

    result, reporter = run_action(emulator, settings, promotion_job(config))
    assert result["status"] == "SUCCEEDED", result
    assert reporter.failures == [] and reporter.successes[0]["continuation_token"] is None
    after = sagemaker.describe_endpoint(EndpointName="pr-same")
    assert (after["EndpointStatus"], after["EndpointConfigName"]) == ("InService", config)
    assert after["LastModifiedTime"] == before["LastModifiedTime"]


def test_a_failed_update_fails_the_action_and_the_old_model_keeps_serving(
    emulator: EmbeddedEmulator, settings: publish_api.Settings, plane: Plane
) -> None:
    settings = with_endpoint(settings, "pr-broken")
    sagemaker = emulator.client("sagemaker")
    artifact = train_standin(emulator, plane.image, "pr-broken-train")
    serving = endpoint_config(emulator, plane.image, "pr-broken-run1", artifact)
    # A model whose artifact does not exist: its container cannot start, so the update fails.
    broken = endpoint_config(
        emulator, plane.image, "pr-broken-run2", "s3://standin-data/missing/model.tar.gz"
    )
    sagemaker.create_endpoint(EndpointName="pr-broken", EndpointConfigName=serving)
    sagemaker.create_endpoint(EndpointName=settings.candidate_endpoint_name, EndpointConfigName=serving)
    wait_in_service(emulator, "pr-broken")
    wait_in_service(emulator, settings.candidate_endpoint_name)

    result, reporters = run_to_the_end(emulator, settings, broken)
    assert result["status"] == "FAILED"
    [(_, message)] = reporters[-1].failures
    assert f"endpoint pr-broken is InService on {serving} (rolled back) instead of {broken}" in message
    assert "Failed to download model data" in message  # the artifact is missing
    assert all(success["output_variables"] == {} for r in reporters for success in r.successes)
    assert sagemaker.describe_endpoint(EndpointName="pr-broken")["EndpointConfigName"] == serving
    assert ask(emulator, "pr-broken") == "greet"
    # Nothing after the failed promotion ran: the candidate is kept, no API stack was touched for it.
    assert settings.candidate_endpoint_name in endpoint_names(emulator)


def test_a_candidate_on_another_config_belongs_to_a_later_run_and_is_kept(
    emulator: EmbeddedEmulator, settings: publish_api.Settings
) -> None:
    """No compute plane: moto's endpoints are InService at once."""
    settings = with_endpoint(settings, "pr-keep")
    sagemaker = emulator.client("sagemaker")
    image, artifact = "standin@sha256:" + "0" * 64, "s3://standin-data/models/none/model.tar.gz"
    promoted = endpoint_config(emulator, image, "pr-keep-run1", artifact)
    later = endpoint_config(emulator, image, "pr-keep-run2", artifact)
    sagemaker.create_endpoint(EndpointName=settings.candidate_endpoint_name, EndpointConfigName=later)
    publish_api.delete_candidate(sagemaker, settings, promoted)
    assert settings.candidate_endpoint_name in endpoint_names(emulator)
    publish_api.delete_candidate(sagemaker, settings, later)
    assert settings.candidate_endpoint_name not in endpoint_names(emulator)
    publish_api.delete_candidate(sagemaker, settings, later)  # none left: nothing to do


@pytest.mark.parametrize("parameters", ["", '{"EndpointConfigName": "#{TrainVariables.EndpointConfigName}"}'])
def test_an_action_without_a_config_to_promote_fails(
    emulator: EmbeddedEmulator, settings: publish_api.Settings, parameters: str
) -> None:
    event = load_event("codepipeline_job")
    event["CodePipeline.job"]["data"]["actionConfiguration"]["configuration"]["UserParameters"] = parameters
    event["CodePipeline.job"]["data"]["inputArtifacts"] = []
    result, reporter = run_action(emulator, settings, PipelineJob.from_event(event))
    [(_, message)] = reporter.failures
    assert "UserParameters.EndpointConfigName" in message and result["status"] == "FAILED"


def test_a_token_this_action_did_not_hand_out_fails_the_action(
    emulator: EmbeddedEmulator, settings: publish_api.Settings
) -> None:
    _, reporter = run_action(emulator, settings, promotion_job("pr-any-config", "arn:aws:cloudformation:x"))
    [(_, message)] = reporter.failures
    assert "continuation token is not JSON" in message


def test_a_direct_invoke_promotes_nothing(settings: publish_api.Settings) -> None:
    with pytest.raises(EventError, match=r"a direct invoke takes \{\}"):
        publish_api.handler({"EndpointConfigName": "pr-any-config"}, LambdaContext())


def test_the_candidate_endpoint_must_not_be_the_serving_one(settings: publish_api.Settings) -> None:
    environ = dict(os.environ)  # the function's environment, as the `settings` fixture set it
    assert publish_api.Settings.from_env(environ) == settings
    environ["CANDIDATE_ENDPOINT_NAME"] = environ["ENDPOINT_NAME"]
    with pytest.raises(RuntimeError, match="CANDIDATE_ENDPOINT_NAME must differ"):
        publish_api.Settings.from_env(environ)
