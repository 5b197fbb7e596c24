"""The API Gateway seam: CloudFormation creates API keys, usage plans, their keys and stages."""

from __future__ import annotations

import json
from typing import Any

import harness.seams as harness_seams
from harness.emulator import EmbeddedEmulator
from harness.lambda_runtime import zip_sources
from harness.seams import apigateway

CODE_BUCKET = "api-code-bucket"
CODE_KEY = "proxy.zip"


# Lambda may assume the proxy's role (it calls nothing, so the role needs no policy).
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def api_template(
    throttle: dict[str, int] | None = None,
    key_required: bool = True,
    stage_throttle: tuple[int, int] = (100, 200),
) -> dict[str, Any]:
    """A REST API with one AWS_PROXY method, a separate Stage (POST /items throttled at `stage_throttle`:
    rate, burst), a key, a usage plan and its key binding."""
    return {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"RoleName": "api-proxy-role", "AssumeRolePolicyDocument": LAMBDA_TRUST},
            },
            "Proxy": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "api-proxy",
                    "Runtime": "python3.11",
                    "Handler": "app.handler",
                    "Timeout": 10,
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"S3Bucket": CODE_BUCKET, "S3Key": CODE_KEY},
                },
            },
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "seam-api"}},
            "Items": {
                "Type": "AWS::ApiGateway::Resource",
                "Properties": {
                    "RestApiId": {"Ref": "Api"},
                    "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                    "PathPart": "items",
                },
            },
            "Item": {
                "Type": "AWS::ApiGateway::Resource",
                "Properties": {"RestApiId": {"Ref": "Api"}, "ParentId": {"Ref": "Items"}, "PathPart": "{id}"},
            },
            "ItemsPost": method_json("Items", "POST", key_required),
            "ItemGet": method_json("Item", "GET", key_required),
            "Deployment": {
                "Type": "AWS::ApiGateway::Deployment",
                "DependsOn": ["ItemsPost", "ItemGet"],
                "Properties": {"RestApiId": {"Ref": "Api"}},
            },
            "Stage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {
                    "RestApiId": {"Ref": "Api"},
                    "DeploymentId": {"Ref": "Deployment"},
                    "StageName": "v1",
                    "Variables": {"colour": "blue"},
                    "MethodSettings": [
                        {
                            "ResourcePath": "/items",
                            "HttpMethod": "POST",
                            "ThrottlingRateLimit": stage_throttle[0],
                            "ThrottlingBurstLimit": stage_throttle[1],
                        }
                    ],
                },
            },
            "Key": {"Type": "AWS::ApiGateway::ApiKey", "Properties": {"Name": "seam-key", "Enabled": True}},
            "Plan": {
                "Type": "AWS::ApiGateway::UsagePlan",
                "Properties": {
                    "UsagePlanName": "seam-plan",
                    "ApiStages": [{"ApiId": {"Ref": "Api"}, "Stage": {"Ref": "Stage"}}],
                    "Throttle": throttle or {"RateLimit": 50, "BurstLimit": 100},
                },
            },
            "PlanKey": {
                "Type": "AWS::ApiGateway::UsagePlanKey",
                "Properties": {"KeyId": {"Ref": "Key"}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": "Plan"}},
            },
        },
        "Outputs": {
            "ApiId": {"Value": {"Ref": "Api"}},
            "KeyId": {"Value": {"Ref": "Key"}},
            "KeyAttr": {"Value": {"Fn::GetAtt": ["Key", "APIKeyId"]}},
            "PlanId": {"Value": {"Ref": "Plan"}},
            "PlanKeyId": {"Value": {"Ref": "PlanKey"}},
            "StageName": {"Value": {"Ref": "Stage"}},
        },
    }


def method_json(resource: str, http_method: str, key_required: bool) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "RestApiId": {"Ref": "Api"},
            "ResourceId": {"Ref": resource},
            "HttpMethod": http_method,
            "AuthorizationType": "NONE",
            "ApiKeyRequired": key_required,
            "Integration": {
                "Type": "AWS_PROXY",
                "IntegrationHttpMethod": "POST",
                "Uri": {
                    "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                    "${Proxy.Arn}/invocations"
                },
            },
        },
    }


def deploy_api(
    emulator: EmbeddedEmulator, stack: str, handler_source: str, **template: Any
) -> dict[str, str]:
    """Uploads the proxy's code and creates the stack; returns its outputs."""
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket=CODE_BUCKET)
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=zip_sources({"app.py": handler_source}))
    cloudformation = emulator.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(api_template(**template)),
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    return {output["OutputKey"]: output["OutputValue"] for output in described["Outputs"]}


def test_stack_creates_key_plan_binding_and_stage(emulator: EmbeddedEmulator) -> None:
    outputs = deploy_api(
        emulator,
        "api-seam",
        "def handler(event, context):\n    return {}\n",
        throttle={"RateLimit": 3, "BurstLimit": 5},
    )
    client = emulator.client("apigateway")
    key = client.get_api_key(apiKey=outputs["KeyId"], includeValue=True)
    assert key["name"] == "seam-key"
    assert key["enabled"] is True
    assert len(key["value"]) >= 20
    assert outputs["KeyAttr"] == outputs["KeyId"]

    plan = client.get_usage_plan(usagePlanId=outputs["PlanId"])
    assert plan["name"] == "seam-plan"
    assert plan["throttle"] == {"rateLimit": 3.0, "burstLimit": 5}
    assert plan["apiStages"] == [{"apiId": outputs["ApiId"], "stage": "v1"}]
    bound = client.get_usage_plan_keys(usagePlanId=outputs["PlanId"])["items"]
    assert [item["id"] for item in bound] == [outputs["KeyId"]]
    assert outputs["PlanKeyId"] == outputs["KeyId"]

    assert outputs["StageName"] == "v1"
    stage = client.get_stage(restApiId=outputs["ApiId"], stageName="v1")
    assert stage["variables"] == {"colour": "blue"}
    settings = stage["methodSettings"]["~1items/POST"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (100.0, 200)
    assert stage["deploymentId"] in {
        d["id"] for d in client.get_deployments(restApiId=outputs["ApiId"])["items"]
    }

    emulator.client("cloudformation").delete_stack(StackName="api-seam")
    assert client.get_api_keys()["items"] == []
    assert client.get_usage_plans()["items"] == []


def test_models_are_registered_with_moto() -> None:
    """Fails loudly when moto's CloudFormation stops finding models as direct subclasses, or gains its own."""
    harness_seams.install()  # idempotent: this test may run on its own
    from moto.apigateway.models import Deployment
    from moto.cloudformation import parsing
    from moto.core.common_models import CloudFormationModel

    assert Deployment.__dict__["physical_resource_id"].fget is apigateway._deployment_id
    assert hasattr(Deployment.__dict__["create_from_cloudformation_json"].__func__, "__wrapped__")
    model_map = parsing.get_model_map()
    for model in apigateway.MODELS:
        assert CloudFormationModel in model.__bases__
        assert model_map[model.cloudformation_type()] is model
        others = [
            cls
            for cls in CloudFormationModel.__subclasses__()
            if cls not in apigateway.MODELS and cls.cloudformation_type() == model.cloudformation_type()
        ]
        assert others == [], f"moto now models {model.cloudformation_type()} itself: drop the seam's model"
