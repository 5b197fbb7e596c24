"""Each API call as the IAM authorization requests AWS makes for it: action, resource ARN(s), condition keys.

The action is `PREFIX:Operation`, PREFIX being the service's signing name in botocore's model of the API
(`states` for Step Functions, `sagemaker` for SageMaker Runtime too), with the few operations whose
IAM action has another name (`lambda:Invoke` is `lambda:InvokeFunction`; API Gateway's management API
is authorized by HTTP method, `apigateway:GET` on `arn:aws:apigateway:REGION::/PATH`).

The resource is the ARN the Service Authorization Reference lists for the action ("Actions, resources,
and condition keys for <service>", its "Resource types" column), built from the request's parameters.
Covered: every action the flow's principals call (SageMaker training jobs, models, endpoint configs,
endpoints and InvokeEndpoint; Step Functions state machines and executions; DynamoDB tables;
CodePipeline pipelines and approvals; CloudFormation stacks; Lambda functions; EventBridge rules and
buses; CloudWatch Logs groups and streams; ECR repositories; CodeBuild projects; SQS queues; STS
AssumeRole; CodeCommit repositories; S3 in harness/iam/s3_actions.py). "*" is the resource:
- where AWS itself accepts only "*" (the reference lists no resource type): the CodePipeline job API
  (PollForJobs, GetJobDetails, PutJobSuccessResult, PutJobFailureResult, AcknowledgeJob),
  ecr:GetAuthorizationToken, cloudwatch:PutMetricData, List*/Describe* calls without a resource name;
- for an operation not in the tables below: a policy scoped to ARNs then does not allow it, which is
  stricter than AWS, never looser (the denial names the action and "*", so a missing row shows).

Dependent actions AWS also authorizes: `iam:PassRole` on each role a call passes (CreateTrainingJob
RoleArn, CreateModel ExecutionRoleArn, CreateStack/UpdateStack/CreateChangeSet RoleARN, CreateFunction/
UpdateFunctionConfiguration Role, CreateStateMachine roleArn, CreatePipeline roleArn, CreateProject
serviceRole, PutTargets' RoleArn) with `iam:PassedToService` (IAM user guide, "Grant a user permissions
to pass a role to an AWS service"). Condition keys set: `iam:PassedToService`, `cloudwatch:namespace`,
`aws:RequestedRegion`, `aws:SecureTransport` (true: SDKs call AWS over HTTPS); the templates use no
other.

SageMaker resource names are lower-cased in their ARNs (SageMaker developer guide: ARNs of SageMaker
resources are lower case), so a policy naming an upper-case endpoint does not match: as on AWS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from deployer.iam_policy import Request
from harness.aws_errors import service_model

# Operations that need no permission (IAM user guide, "GetCallerIdentity": no permissions are required).
UNAUTHORIZED_OPERATIONS: Final = frozenset({("sts", "GetCallerIdentity")})

# operation -> the IAM action, where the two differ.
_ACTION_NAMES: Final = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeWithResponseStream"): "InvokeFunction",
    ("lambda", "InvokeAsync"): "InvokeFunction",
    ("lambda", "ListVersionsByFunction"): "ListVersionsByFunction",
    ("lambda", "GetFunctionConfiguration"): "GetFunctionConfiguration",
}

# The service that a passed role is passed to (iam:PassedToService), per operation.
_PASSED_TO: Final = {
    "sagemaker": "sagemaker.amazonaws.com",
    "states": "states.amazonaws.com",
    "cloudformation": "cloudformation.amazonaws.com",
    "lambda": "lambda.amazonaws.com",
    "codepipeline": "codepipeline.amazonaws.com",
    "codebuild": "codebuild.amazonaws.com",
    "events": "events.amazonaws.com",
}


@dataclass(frozen=True)
class Call:
    """One API request as the boundary sees it: botocore's service name, the operation, its parameters
    (the request's members, JSON body or query parameters, with the URI's labels), region and account."""

    service: str
    operation: str
    params: Mapping[str, Any] = field(default_factory=dict)
    region: str = "us-east-1"
    account: str = "123456789012"
    method: str = "POST"
    path: str = "/"


# Signing names that are not the service's IAM prefix.
_IAM_PREFIXES: Final = {"monitoring": "cloudwatch"}


@lru_cache(maxsize=64)
def signing_name(service: str) -> str:
    """The IAM prefix of a botocore service: its signing name (e.g. stepfunctions -> states), except
    CloudWatch's ("monitoring", IAM prefix "cloudwatch")."""
    model = service_model(service)
    name = str(model.signing_name or model.endpoint_prefix)
    return _IAM_PREFIXES.get(name, name)


def action_of(call: Call) -> str:
    prefix = signing_name(call.service)
    if call.service == "apigateway":
        return f"apigateway:{call.method.upper()}"
    return f"{prefix}:{_ACTION_NAMES.get((prefix, call.operation), call.operation)}"


def requests_for(call: Call) -> list[Request]:
    """The authorization requests AWS makes for `call` (empty when it needs no permission)."""
    prefix = signing_name(call.service)
    if (prefix, call.operation) in UNAUTHORIZED_OPERATIONS:
        return []
    action = action_of(call)
    base_context: dict[str, str] = {"aws:RequestedRegion": call.region, "aws:SecureTransport": "true"}
    resolver = _RESOURCES.get(prefix)
    resources = resolver(call) if resolver is not None else ["*"]
    context = dict(base_context)
    if action == "cloudwatch:PutMetricData" and call.params.get("Namespace"):
        context["cloudwatch:namespace"] = str(call.params["Namespace"])
    requests = [Request(action, resource, context) for resource in (resources or ["*"])]
    for role_arn in _passed_roles(prefix, call):
        requests.append(
            Request(
                "iam:PassRole",
                role_arn,
                {**base_context, "iam:PassedToService": _PASSED_TO.get(prefix, f"{prefix}.amazonaws.com")},
            )
        )
    return requests


# -- ARNs ----------------------------------------------------------------------------------------------
def _arn(call: Call, service: str, resource: str, region: bool = True, account: bool = True) -> str:
    return f"arn:aws:{service}:{call.region if region else ''}:{call.account if account else ''}:{resource}"


def _name(value: Any) -> str:
    """A name that may have been given as an ARN: the last path part of it."""
    text = str(value)
    return text.rsplit("/", 1)[-1] if text.startswith("arn:") else text


def _sagemaker(call: Call) -> list[str]:
    p, op = call.params, call.operation
    if p.get("ResourceArn"):  # AddTags, ListTags, DeleteTags
        return [str(p["ResourceArn"])]
    found: list[str] = []
    kinds = (
        ("TrainingJobName", "training-job"),
        ("ModelName", "model"),
        ("EndpointName", "endpoint"),
        ("EndpointConfigName", "endpoint-config"),
    )
    for parameter, kind in kinds:
        if p.get(parameter):
            found.append(_arn(call, "sagemaker", f"{kind}/{_name(p[parameter]).lower()}"))
    if op.startswith("List") or not found:
        return ["*"]
    if op in ("DescribeEndpointConfig", "DeleteEndpointConfig", "CreateEndpointConfig"):
        return [arn for arn in found if ":endpoint-config/" in arn]
    if op in ("CreateModel", "DescribeModel", "DeleteModel"):
        return [arn for arn in found if ":model/" in arn]
    return found


def _states(call: Call) -> list[str]:
    p = call.params
    for key in ("executionArn", "stateMachineArn", "mapRunArn", "activityArn"):
        if p.get(key):
            return [str(p[key])]
    if call.operation == "CreateStateMachine" and p.get("name"):
        return [_arn(call, "states", f"stateMachine:{p['name']}")]
    return ["*"]


def _dynamodb(call: Call) -> list[str]:
    table = call.params.get("TableName")
    return [_arn(call, "dynamodb", f"table/{_name(table)}")] if table else ["*"]


def _codepipeline(call: Call) -> list[str]:
    p, op = call.params, call.operation
    if op in ("PollForJobs", "GetJobDetails", "PutJobSuccessResult", "PutJobFailureResult", "AcknowledgeJob"):
        return ["*"]
    if op == "PutApprovalResult":
        return [
            _arn(call, "codepipeline", f"{p.get('pipelineName')}/{p.get('stageName')}/{p.get('actionName')}")
        ]
    pipeline = p.get("pipelineName") or p.get("name")
    if op == "CreatePipeline" or op == "UpdatePipeline":
        pipeline = (p.get("pipeline") or {}).get("name")
    return [_arn(call, "codepipeline", str(pipeline))] if pipeline else ["*"]


def _cloudformation(call: Call) -> list[str]:
    stack = call.params.get("StackName")
    if not stack:
        return ["*"]
    text = str(stack)
    if text.startswith("arn:"):
        return [text]
    return [_arn(call, "cloudformation", f"stack/{text}/{_stack_id(call, text)}")]


def _stack_id(call: Call, name: str) -> str:
    """The id part of an existing stack's ARN; "*" (literally) for a stack not created yet."""
    try:
        from moto.cloudformation.models import cloudformation_backends

        backend = cloudformation_backends[call.account][call.region]
        for stack in list(backend.stacks.values()):
            if stack.name == name and not str(stack.status).startswith("DELETE_COMPLETE"):
                return str(stack.stack_id).rsplit("/", 1)[-1]
    except (KeyError, AttributeError):
        pass
    return "*"


def _lambda(call: Call) -> list[str]:
    function = call.params.get("FunctionName")
    if not function:
        return ["*"]
    text = str(function)
    if text.startswith("arn:"):
        parts = text.split(":")
        return [":".join(parts[:7])]
    return [_arn(call, "lambda", f"function:{text.split(':', 1)[0]}")]


def _events(call: Call) -> list[str]:
    p = call.params
    rule = (
        p.get("Name")
        if call.operation in ("PutRule", "DescribeRule", "DeleteRule", "EnableRule", "DisableRule")
        else p.get("Rule")
    )
    bus = p.get("EventBusName")
    if rule:
        if str(rule).startswith("arn:"):
            return [str(rule)]
        path = f"rule/{_name(bus)}/{rule}" if bus and _name(bus) != "default" else f"rule/{rule}"
        return [_arn(call, "events", path)]
    if call.operation == "PutEvents":
        buses = {_name(entry.get("EventBusName") or "default") for entry in p.get("Entries") or []}
        return [_arn(call, "events", f"event-bus/{name}") for name in sorted(buses)] or ["*"]
    return ["*"]


def _logs(call: Call) -> list[str]:
    p = call.params
    group = p.get("logGroupName")
    if not group:
        return ["*"]
    stream = p.get("logStreamName")
    if stream and call.operation in ("PutLogEvents", "GetLogEvents"):
        return [_arn(call, "logs", f"log-group:{group}:log-stream:{stream}")]
    return [_arn(call, "logs", f"log-group:{group}:*")]


def _ecr(call: Call) -> list[str]:
    repository = call.params.get("repositoryName")
    return [_arn(call, "ecr", f"repository/{repository}")] if repository else ["*"]


def _codebuild(call: Call) -> list[str]:
    p = call.params
    if p.get("projectName"):
        return [_arn(call, "codebuild", f"project/{p['projectName']}")]
    if call.operation in ("CreateProject", "UpdateProject") and p.get("name"):
        return [_arn(call, "codebuild", f"project/{p['name']}")]
    ids = p.get("ids") or ([p["id"]] if p.get("id") else [])
    projects = sorted({str(build_id).split(":", 1)[0] for build_id in ids})
    return [_arn(call, "codebuild", f"project/{project}") for project in projects] or ["*"]


def _sqs(call: Call) -> list[str]:
    url = call.params.get("QueueUrl")
    if url:
        return [_arn(call, "sqs", str(url).rstrip("/").rsplit("/", 1)[-1])]
    name = call.params.get("QueueName")
    return [_arn(call, "sqs", str(name))] if name else ["*"]


def _sts(call: Call) -> list[str]:
    role = call.params.get("RoleArn")
    return [str(role)] if role else ["*"]


def _iam(call: Call) -> list[str]:
    p = call.params
    if p.get("RoleName"):
        return [_arn(call, "iam", f"role/{p['RoleName']}", region=False)]
    if p.get("PolicyArn"):
        return [str(p["PolicyArn"])]
    return ["*"]


def _codecommit(call: Call) -> list[str]:
    repository = call.params.get("repositoryName")
    return [_arn(call, "codecommit", str(repository))] if repository else ["*"]


def _apigateway(call: Call) -> list[str]:
    return [f"arn:aws:apigateway:{call.region}::{call.path.split('?', 1)[0]}"]


_RESOURCES: Final[dict[str, Callable[[Call], list[str]]]] = {
    "sagemaker": _sagemaker,
    "states": _states,
    "dynamodb": _dynamodb,
    "codepipeline": _codepipeline,
    "cloudformation": _cloudformation,
    "lambda": _lambda,
    "events": _events,
    "logs": _logs,
    "ecr": _ecr,
    "codebuild": _codebuild,
    "sqs": _sqs,
    "sts": _sts,
    "iam": _iam,
    "codecommit": _codecommit,
    "apigateway": _apigateway,
}


def _passed_roles(prefix: str, call: Call) -> list[str]:
    p, op = call.params, call.operation
    roles: list[Any] = []
    if prefix == "sagemaker" and op in ("CreateTrainingJob", "CreateProcessingJob", "CreateTransformJob"):
        roles.append(p.get("RoleArn"))
    elif prefix == "sagemaker" and op == "CreateModel":
        roles.append(p.get("ExecutionRoleArn"))
    elif prefix == "cloudformation" and op in ("CreateStack", "UpdateStack", "CreateChangeSet"):
        roles.append(p.get("RoleARN"))
    elif prefix == "lambda" and op in ("CreateFunction", "UpdateFunctionConfiguration"):
        roles.append(p.get("Role"))
    elif prefix == "states" and op in ("CreateStateMachine", "UpdateStateMachine"):
        roles.append(p.get("roleArn"))
    elif prefix == "codepipeline" and op in ("CreatePipeline", "UpdatePipeline"):
        roles.append((p.get("pipeline") or {}).get("roleArn"))
    elif prefix == "codebuild" and op in ("CreateProject", "UpdateProject"):
        roles.append(p.get("serviceRole"))
    elif prefix == "events" and op == "PutTargets":
        roles.extend(target.get("RoleArn") for target in p.get("Targets") or [])
    return [str(role) for role in roles if role]


def parameters_from_json(body: Any) -> dict[str, Any]:
    """A JSON-protocol request's members (an empty or non-object body has none)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, Mapping):
        return dict(body)
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
