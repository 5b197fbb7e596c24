"""publish-api against the emulator's CloudFormation: the API stack created, then left alone when unchanged.

The stack is checked resource by resource: the proxy Lambda, the REST API, its POST method requiring a
key, its AWS_PROXY integration, the stage with its throttle, API Gateway's permission on the Lambda, and
the API key bound by a usage plan with the template's throttle (moto alone skips the key, the plan and
the binding; harness/seams/apigateway.py creates them as AWS does).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployer.lambdas import publish_api
from deployer.lambdas.pipeline_job import PipelineJob
from harness.emulator import EmbeddedEmulator
from tests.deployer.conftest import (
    PROJECT,
    LambdaContext,
    RecordingReporter,
    load_event,
    publish_api_environment,
)

STACK = "dtest-api"


@pytest.fixture
def handler_env(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, emulator: EmbeddedEmulator, platform: dict[str, str]
) -> dict[str, str]:
    """The function's environment exactly as the platform stack deployed it, plus a quick poll."""
    variables = publish_api_environment(emulator, platform, monkeypatch)
    return variables


def test_the_platform_points_publish_api_at_its_stack_and_template(handler_env: dict[str, str]) -> None:
    assert handler_env["API_STACK_NAME"] == STACK
    assert handler_env["API_TEMPLATE_KEY"].startswith("templates/api-")
    assert handler_env["API_PROXY_CODE_KEY"].startswith("lambdas/api_proxy-")
    assert handler_env["PROJECT_NAME"] == PROJECT
    assert handler_env["ENDPOINT_NAME"] == f"{PROJECT}-endpoint"
    assert handler_env["CANDIDATE_ENDPOINT_NAME"] == f"{PROJECT}-endpoint-candidate"


def test_publish_creates_the_api_then_finds_nothing_to_update(
    emulator: EmbeddedEmulator, handler_env: dict[str, str]
) -> None:
    created = publish_api.handler({}, LambdaContext())
    assert created["StackStatus"] == "CREATE_COMPLETE"
    api_id = created["ApiId"]
    assert created["ApiUrl"] == f"https://{api_id}.execute-api.us-east-1.amazonaws.com/v1/predict"
    assert created["ProxyFunctionName"] == f"{PROJECT}-api-proxy"

    apigateway = emulator.client("apigateway")
    resources = apigateway.get_resources(restApiId=api_id)["items"]
    predict = next(r for r in resources if r.get("path") == "/predict")
    method = apigateway.get_method(restApiId=api_id, resourceId=predict["id"], httpMethod="POST")
    assert method["apiKeyRequired"] is True
    assert method["methodIntegration"]["type"] == "AWS_PROXY"
    assert f"function:{PROJECT}-api-proxy/invocations" in method["methodIntegration"]["uri"]
    assert [s["stageName"] for s in apigateway.get_stages(restApiId=api_id)["item"]] == ["v1"]
    proxy = emulator.client("lambda").get_function_configuration(FunctionName=f"{PROJECT}-api-proxy")
    assert proxy["Handler"] == "deployer.lambdas.api_proxy.handler"
    assert proxy["Environment"]["Variables"] == {"ENDPOINT_NAME": handler_env["ENDPOINT_NAME"]}
    policy = emulator.client("lambda").get_policy(FunctionName=f"{PROJECT}-api-proxy")["Policy"]
    assert "apigateway.amazonaws.com" in policy and f"{api_id}/v1/POST/predict" in policy
    stage = apigateway.get_stage(restApiId=api_id, stageName="v1")
    assert stage["methodSettings"]["*/*"]["throttlingRateLimit"] == 10.0
    assert stage["methodSettings"]["*/*"]["throttlingBurstLimit"] == 20

    key = apigateway.get_api_key(apiKey=created["ApiKeyId"], includeValue=True)
    assert key["name"] == f"{PROJECT}-key" and key["enabled"] is True and key["value"]
    [plan] = [p for p in apigateway.get_usage_plans()["items"] if p["name"] == f"{PROJECT}-plan"]
    assert plan["apiStages"] == [{"apiId": api_id, "stage": "v1"}]
    assert plan["throttle"] == {"rateLimit": 10.0, "burstLimit": 20}
    bound = apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
    assert [(k["id"], k["type"]) for k in bound] == [(created["ApiKeyId"], "API_KEY")]

    again = publish_api.handler({}, LambdaContext())
    assert again["StackStatus"] == "CREATE_COMPLETE"  # "No updates are to be performed": left as it was
    assert again["ApiId"] == api_id


def test_the_publish_action_reports_the_apis_outputs(
    emulator: EmbeddedEmulator, handler_env: dict[str, str], canned_config: str
) -> None:
    reporter = RecordingReporter()
    job = publish_job(canned_config)
    result = publish_api.run_pipeline_action(
        job, publish_api.Settings.from_env(), clients(emulator), reporter, lambda: 60_000
    )
    assert reporter.failures == [] and result["status"] == "SUCCEEDED"
    variables = reporter.successes[0]["output_variables"]
    assert variables["ApiUrl"].endswith("/v1/predict") and variables["StageName"] == "v1"
    # Before the API, the approved config was promoted to the serving endpoint (tests/deployer/
    # test_promotion.py runs the promotion's paths with real containers).
    serving = emulator.client("sagemaker").describe_endpoint(EndpointName=handler_env["ENDPOINT_NAME"])
    assert (serving["EndpointStatus"], serving["EndpointConfigName"]) == ("InService", canned_config)


def test_a_missing_template_fails_the_action(
    emulator: EmbeddedEmulator,
    handler_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    canned_config: str,
) -> None:
    monkeypatch.setenv("API_TEMPLATE_KEY", "templates/api-missing.json")
    monkeypatch.setenv("API_STACK_NAME", "dtest-api-missing")
    reporter = RecordingReporter()
    job, settings = publish_job(canned_config), publish_api.Settings.from_env()
    publish_api.run_pipeline_action(job, settings, clients(emulator), reporter, lambda: 60_000)
    [(_, message)] = reporter.failures
    assert "could not publish the API" in message and "NoSuchKey" in message


def test_a_stack_whose_creation_rolled_back_is_deleted_then_created_again(
    emulator: EmbeddedEmulator, handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CloudFormation user guide, "Stack status codes": ROLLBACK_COMPLETE is what a failed stack creation
    ends in, and such a stack can only be deleted (UpdateStack is refused). publish-api deletes it and
    creates the stack again, instead of refusing every later run.

    moto never rolls a stack back, so the rolled-back stack is given by a thin wrapper around the
    emulator's CloudFormation (a mock where the real part cannot produce the state); the deletion's wait
    and the new stack's creation run against the emulator."""
    monkeypatch.setenv("API_STACK_NAME", "dtest-api-rolled-back")
    settings = publish_api.Settings.from_env()
    real = emulator.client("cloudformation")
    dead_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/dtest-api-rolled-back/dead"
    calls: list[str] = []

    class RolledBackCloudFormation:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            if StackName == dead_id:  # by id, a deleted stack stays describable as DELETE_COMPLETE
                status = "DELETE_COMPLETE" if "delete" in calls else "ROLLBACK_COMPLETE"
                return {"Stacks": [{"StackId": dead_id, "StackName": StackName, "StackStatus": status}]}
            if StackName == settings.stack_name and "delete" not in calls:
                dead = {"StackId": dead_id, "StackName": StackName, "StackStatus": "ROLLBACK_COMPLETE"}
                return {"Stacks": [dead]}
            return dict(real.describe_stacks(StackName=StackName))

        def delete_stack(self, StackName: str) -> None:
            assert StackName == dead_id
            calls.append("delete")

        def update_stack(self, **request: Any) -> None:
            raise AssertionError("a ROLLBACK_COMPLETE stack cannot be updated")

    cloudformation = RolledBackCloudFormation()
    stack_id, changed = publish_api.start_publish(settings, cloudformation, emulator.client("s3"))
    assert calls == ["delete"] and changed and stack_id != dead_id
    stack = publish_api.wait_for_stack(cloudformation, stack_id, 0.05, lambda: 60_000)
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert publish_api.check_result(cloudformation, stack, changed)["ApiUrl"].endswith("/v1/predict")


def test_a_stack_whose_rollback_failed_is_reported_not_updated(
    emulator: EmbeddedEmulator, handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROLLBACK_FAILED needs a person (CloudFormation user guide, "Stack status codes": continue the
    rollback or delete the stack); the stack is given here because moto never rolls back."""
    monkeypatch.setenv("API_STACK_NAME", "dtest-api-dead")
    settings = publish_api.Settings.from_env()
    dead: dict[str, Any] = {
        "StackId": "id",
        "StackName": settings.stack_name,
        "StackStatus": "ROLLBACK_FAILED",
    }

    class DeadStackCloudFormation:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            return {"Stacks": [dead]}

    with pytest.raises(publish_api.PublishError, match="ROLLBACK_FAILED and cannot be updated"):
        publish_api.start_publish(settings, DeadStackCloudFormation(), emulator.client("s3"))


def publish_job(config: str) -> PipelineJob:
    """The sample job event as the pipeline sends it to PublishApi (TrainVariables resolved)."""
    event = load_event("codepipeline_job")
    data = event["CodePipeline.job"]["data"]
    data["inputArtifacts"] = []
    parameters = json.dumps({"EndpointConfigName": config})
    data["actionConfiguration"]["configuration"]["UserParameters"] = parameters
    return PipelineJob.from_event(event)


def clients(emulator: EmbeddedEmulator) -> publish_api.Clients:
    return publish_api.Clients(
        emulator.client("cloudformation"), emulator.client("s3"), emulator.client("sagemaker")
    )


@pytest.fixture(scope="module")
def canned_config(emulator: EmbeddedEmulator) -> str:
    """A model and endpoint config in moto's SageMaker (no compute plane: endpoints on it are InService
    at once); the config's name."""
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_model(
        ModelName="dtest-publish-model",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/test",
        PrimaryContainer={"Image": "standin@sha256:" + "1" * 64, "ModelDataUrl": "s3://none/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="dtest-publish-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "dtest-publish-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    return "dtest-publish-config"
