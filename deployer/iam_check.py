"""The static IAM check before any deploy: every role of the rendered templates against what it must do.

Pure (no AWS call): `check(platform, api)` resolves the rendered platform and API templates with sample
values (`TemplateResolver`: parameters, pseudo parameters, conditions, Ref/GetAtt/Sub/Join/If, each
resource's physical name and ARN), collects what each role must be allowed (`Requirement`) and asks the
policy evaluator (`deployer.iam_policy`) whether the role's policies allow it. Each `Finding` names the
role, the missing action (and resource) and the rule's source. The rules:

(a) code: each Lambda's boto3 calls, parsed from its handler module and the `deployer` modules it imports
    (`lambda_calls`): `<client>.<method>(` and `get_paginator("<method>")`, mapped to operations of the
    services the modules create clients for, through botocore's service models; the IAM action is the
    service's signing name and the operation name, except where the Service Authorization Reference maps
    an operation to another action (`ACTION_EXCEPTIONS`).
(b) the state machine's integrations: what AWS's generated policies list for each Task resource (Step
    Functions developer guide, "IAM policies for Amazon SageMaker"; for the `aws-sdk:` integrations the
    IAM action is the service's own: "Integrating other services").
(c) CloudFormation's handler permissions (`handlers.create/read/update/delete.permissions` of the
    resource provider schemas cfn-lint ships) for each resource of a stack deployed with a role (the API
    stack, with the role publish-api passes as RoleARN). The lists hold permissions that apply only when
    a property is set (`CONDITIONAL_PERMISSIONS`): they are required only when the resource sets it.
(d) the service roles AWS documents: CodePipeline's minimum service role policy for the artifact store and
    each action provider in use, CodeBuild's service role and the ECR push the buildspec does, the role an
    EventBridge target runs with, and SageMaker's execution role for training and hosting.
(e) names in ARNs: a parameter that names a SageMaker resource in a policy ARN must admit lower case only
    (IAM matches ARNs case-sensitively; SageMaker's ARNs carry lower-cased names).
Definition rules (not IAM, same report): a CodeCommit source without polling needs an EventBridge rule
targeting the pipeline; the buildspec's `pip wheel` needs a pinned Python; the Dockerfile's default base
image (the CodeBuild project passes none) must name a registry the build can pull from.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from deployer.iam_policy import Policy, PolicyError, Request, Statement, evaluate, parse_policy

__all__ = [
    "ACTION_EXCEPTIONS",
    "CONDITIONAL_PERMISSIONS",
    "Finding",
    "Requirement",
    "TemplateResolver",
    "allowed",
    "check",
    "handler_permissions",
    "lambda_calls",
    "stack_role_requirements",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"
PARTITION = "aws"
REPO_ROOT = Path(__file__).resolve().parent.parent

# Operation -> IAM action where they differ (Service Authorization Reference, "Actions defined by Amazon
# S3": ListObjects/ListObjectsV2 and HeadBucket are authorized by s3:ListBucket, HeadObject by s3:GetObject).
ACTION_EXCEPTIONS: Mapping[str, str] = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
}

# Handler permissions that apply only when the resource sets the property (or one of them): e.g. ec2:*
# describes the VPC of VpcConfig, kms:* the key of KmsKeyArn. Anything not listed here is required.
# Tagging is required: the stack's own tags propagate to its resources even when they set no Tags.
CONDITIONAL_PERMISSIONS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "AWS::Lambda::Function": {
        "ec2:DescribeSecurityGroups": ("VpcConfig",),
        "ec2:DescribeSubnets": ("VpcConfig",),
        "ec2:DescribeVpcs": ("VpcConfig",),
        "ec2:DescribeNetworkInterfaces": ("VpcConfig",),
        "elasticfilesystem:DescribeMountTargets": ("FileSystemConfigs",),
        "s3files:ListMountTargets": ("FileSystemConfigs",),
        "kms:CreateGrant": ("KmsKeyArn",),
        "kms:Decrypt": ("KmsKeyArn",),
        "kms:DescribeKey": ("KmsKeyArn",),
        "kms:Encrypt": ("KmsKeyArn",),
        "kms:GenerateDataKey": ("KmsKeyArn",),
        "lambda:GetCodeSigningConfig": ("CodeSigningConfigArn",),
        "lambda:PutFunctionCodeSigningConfig": ("CodeSigningConfigArn",),
        "lambda:DeleteFunctionCodeSigningConfig": ("CodeSigningConfigArn",),
        "lambda:GetLayerVersion": ("Layers",),
        "lambda:PutFunctionConcurrency": ("ReservedConcurrentExecutions",),
        "lambda:DeleteFunctionConcurrency": ("ReservedConcurrentExecutions",),
        "lambda:PutRuntimeManagementConfig": ("RuntimeManagementConfig",),
        "lambda:PutFunctionScalingConfig": ("FunctionScalingConfig", "CapacityProviderConfig"),
        "lambda:GetFunctionScalingConfig": ("FunctionScalingConfig", "CapacityProviderConfig"),
        "lambda:PassCapacityProvider": ("CapacityProviderConfig",),
        "lambda:AssociateRuntimeAlias": ("CapacityProviderConfig",),
        "lambda:PublishVersion": ("PublishToLatestPublished", "SnapStart"),
    },
    "AWS::ApiGateway::RestApi": {
        "apigateway:UpdateRestApiPolicy": ("Policy",),
        "s3:GetObject": ("BodyS3Location",),
        "iam:PassRole": ("Body", "BodyS3Location"),
    },
    "AWS::ApiGateway::Method": {"iam:PassRole": ("Integration.Credentials",)},
}
HANDLER_OPERATIONS = ("create", "read", "update", "delete")
_SCHEMAS_SOURCE = "CloudFormation resource provider schema {type} handlers.{ops}.permissions (cfn-lint data)"

# AWS managed policies the templates attach (AWS Managed Policy Reference).
MANAGED_POLICIES: Mapping[str, Mapping[str, Any]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": "*",
            }
        ],
    }
}

# The managed rule through which a .sync training task follows its job (named by AWS).
SFN_TRAINING_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
SFN_SOURCE = 'Step Functions developer guide, "IAM policies for Amazon SageMaker" ({task})'
SFN_SDK_SOURCE = (
    'Step Functions developer guide, "Integrating other services" (aws-sdk:{task}: the API\'s own action)'
)
PIPELINE_SOURCE = (
    'CodePipeline user guide, "Manage the CodePipeline service role" (minimum service role policy)'
)
BUILD_SOURCE = 'CodeBuild user guide, "Allow CodeBuild to interact with other AWS services" (service role)'
ECR_PUSH_SOURCE = (
    'Amazon ECR user guide, "Pushing a Docker image" (required IAM permissions; buildspec docker push)'
)
EVENTS_SOURCE = (
    'EventBridge user guide, "Using IAM roles for targets" (CodePipeline target: StartPipelineExecution)'
)
SAGEMAKER_SOURCE = (
    'SageMaker developer guide, "How to use SageMaker execution roles" (CreateTrainingJob, CreateModel)'
)
CODE_SOURCE = "code: {module} calls {client}.{method} (botocore {service} {operation})"
DLQ_SOURCE = 'Lambda developer guide, "Asynchronous invocation" (dead-letter queue: the execution role sends)'
NAMES_SOURCE = (
    'IAM user guide, "IAM identifiers" (ARNs match case-sensitively; SageMaker ARNs are lower case)'
)


@dataclass(frozen=True)
class Requirement:
    """`role` (a logical id) must be allowed `action` on `resource` (None: on some resource)."""

    role: str
    action: str
    source: str
    resource: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    subject: str  # the role's logical id, or the definition (file or resource) a definition rule is about
    missing: str  # the action (or what the definition lacks)
    source: str
    resource: str | None = None

    def __str__(self) -> str:
        on = f" on {self.resource}" if self.resource else ""
        return f"{self.subject}: {self.missing}{on} [{self.source}]"


# ---------------------------------------------------------------------------------------- resolution
_ARNS: Mapping[str, tuple[str, str]] = {
    # type: (Ref is the name or the ARN, ARN pattern of the physical name)
    "AWS::S3::Bucket": ("name", "arn:{p}:s3:::{n}"),
    "AWS::IAM::Role": ("name", "arn:{p}:iam::{a}:role/{n}"),
    "AWS::Lambda::Function": ("name", "arn:{p}:lambda:{r}:{a}:function:{n}"),
    "AWS::DynamoDB::Table": ("name", "arn:{p}:dynamodb:{r}:{a}:table/{n}"),
    "AWS::ECR::Repository": ("name", "arn:{p}:ecr:{r}:{a}:repository/{n}"),
    "AWS::StepFunctions::StateMachine": ("arn", "arn:{p}:states:{r}:{a}:stateMachine:{n}"),
    "AWS::Events::Rule": ("name", "arn:{p}:events:{r}:{a}:rule/{n}"),
    "AWS::CodeBuild::Project": ("name", "arn:{p}:codebuild:{r}:{a}:project/{n}"),
    "AWS::CodePipeline::Pipeline": ("name", "arn:{p}:codepipeline:{r}:{a}:{n}"),
}
_NAME_PROPERTIES = (
    "BucketName",
    "RoleName",
    "FunctionName",
    "TableName",
    "RepositoryName",
    "StateMachineName",
    "Name",
)


class TemplateResolver:
    """A rendered template with every intrinsic resolved to sample values, as one deployment would."""

    def __init__(self, template: Mapping[str, Any], stack: str, parameters: Mapping[str, str]) -> None:
        self.template = template
        self.stack = stack
        declared = template.get("Parameters", {})
        self.parameters = {
            name: str(parameters.get(name, spec.get("Default", f"{name.lower()}-sample")))
            for name, spec in declared.items()
        }
        self.pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack,
        }
        self.conditions: dict[str, bool] = {}
        for name, expression in (template.get("Conditions") or {}).items():
            self.conditions[name] = bool(self.resolve(expression))
        self.resources = {
            logical: resource
            for logical, resource in template["Resources"].items()
            if "Condition" not in resource or self.conditions.get(resource["Condition"], False)
        }
        self.names: dict[str, str] = {}
        for logical, resource in self.resources.items():
            if resource["Type"] in _ARNS:
                self.names[logical] = self._physical_name(logical, resource)

    def _physical_name(self, logical: str, resource: Mapping[str, Any]) -> str:
        properties = resource.get("Properties") or {}
        for key in _NAME_PROPERTIES:
            if key in properties:
                value = self.resolve(properties[key])
                if isinstance(value, str):
                    return value
        if resource["Type"] == "AWS::S3::Bucket":
            return f"{self.stack}-{logical.lower()}-sample"
        return f"{self.stack}-{logical}-SAMPLE"

    def arn(self, logical: str) -> str:
        kind = self.resources[logical]["Type"]
        if kind not in _ARNS:
            return f"arn:{PARTITION}:cloudformation-sample:{REGION}:{ACCOUNT}:{logical}"
        pattern = _ARNS[kind][1]
        return pattern.format(p=PARTITION, r=REGION, a=ACCOUNT, n=self.names[logical])

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.resources:
            raise KeyError(f"Ref {name}: no such parameter or (deployed) resource")
        kind = self.resources[name]["Type"]
        if kind in _ARNS and _ARNS[kind][0] == "arn":
            return self.arn(name)
        if kind in _ARNS:
            return self.names[name]
        return f"{name.lower()}-id"

    def get_att(self, logical: str, attribute: str) -> str:
        if logical not in self.resources:
            raise KeyError(f"GetAtt {logical}.{attribute}: no such (deployed) resource")
        if attribute == "Arn":
            return self.arn(logical)
        if attribute == "RepositoryUri":
            return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{self.names[logical]}"
        return f"{logical.lower()}-{attribute.lower()}"

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self.resolve(item) for item in value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref":
                return _NO_VALUE if argument == "AWS::NoValue" else self.ref(argument)
            if key == "Fn::GetAtt":
                logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical, attribute)
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(items))
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.conditions[name] else when_false)
            if key == "Fn::Equals":
                left, right = self.resolve(argument)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(argument[0])
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {k: str(self.resolve(v)) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return values[name]
            if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                logical, attribute = name.split(".", 1)
                return self.get_att(logical, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolved(self, logical: str) -> dict[str, Any]:
        resolved = self.resolve(self.resources[logical].get("Properties") or {})
        return dict(resolved)

    def of_type(self, kind: str) -> list[str]:
        return [logical for logical, r in self.resources.items() if r["Type"] == kind]


class _NoValue:
    pass


_NO_VALUE: Any = _NoValue()


# ---------------------------------------------------------------------------------------- (a) code
@dataclass(frozen=True)
class Call:
    module: str
    client: str  # the receiver's name as written
    method: str
    service: str
    operation: str
    action: str


def lambda_calls(handler: str, root: Path = REPO_ROOT) -> list[Call]:
    """The AWS calls a Lambda's code makes: its handler module and the project modules it imports."""
    modules = _module_closure(handler.rpartition(".")[0], root)
    services: set[str] = set()
    calls: list[tuple[str, str, str]] = []
    for module, tree in modules.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = _receiver_name(node.func.value)
            if node.func.attr == "client" and receiver == "boto3" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    services.add(first.value)
            elif node.func.attr == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                calls.append((module, receiver, str(node.args[0].value)))
            else:
                calls.append((module, receiver, node.func.attr))
    found: dict[tuple[str, str], Call] = {}
    for module, receiver, method in calls:
        candidates = [s for s in sorted(services) if method in _operations(s)]
        hinted = [s for s in candidates if _hint(receiver) in {s.replace("-", ""), _signing(s)}]
        for service in hinted or candidates:
            operation = _operations(service)[method]
            action = f"{_signing(service)}:{operation}"
            action = ACTION_EXCEPTIONS.get(action, action)
            found.setdefault((action, module), Call(module, receiver, method, service, operation, action))
    return sorted(found.values(), key=lambda call: (call.action, call.module))


def _receiver_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _hint(receiver: str) -> str:
    name = receiver.lower().strip("_").removesuffix("_client").replace("_", "")
    return {"runtime": "sagemaker-runtime".replace("-", "")}.get(name, name)


def _module_closure(module: str, root: Path) -> dict[str, ast.Module]:
    seen: dict[str, ast.Module] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = root / (name.replace(".", "/") + ".py")
        if not path.is_file():
            raise FileNotFoundError(f"handler module {name} has no source at {path}")
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        seen[name] = tree
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deployer."):
                pending.append(node.module)
    return seen


@lru_cache(maxsize=64)
def _model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


@lru_cache(maxsize=64)
def _operations(service: str) -> dict[str, str]:
    from botocore import xform_name

    return {xform_name(name): name for name in _model(service).operation_names}


def _signing(service: str) -> str:
    return str(_model(service).signing_name)


# ---------------------------------------------------------------------------------------- (c) schemas
def _cfnlint_folder() -> Path:
    """cfn-lint's package folder, found without importing it: `import cfnlint` loads its whole rule set
    (about 4.7 s here), and only its data files are read."""
    spec = importlib.util.find_spec("cfnlint")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cfn-lint is not installed: its resource provider schemas are needed")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=128)
def _schema(kind: str) -> dict[str, Any] | None:
    """The provider schema of `kind`: the first file (by name, for a stable answer) that declares it. The
    text is searched before parsing: cfn-lint ships about 1,900 schemas and JSON-parsing all is slow."""
    folder = _cfnlint_folder() / "data" / "schemas" / "resources"
    marker = re.compile(r'"typeName":\s*"' + re.escape(kind) + '"')
    for path in sorted(folder.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        if marker.search(text):
            schema = json.loads(text)
            if isinstance(schema, dict) and schema.get("typeName") == kind:
                return schema
    return None


def handler_permissions(
    kind: str, properties: Mapping[str, Any], operations: Sequence[str] = HANDLER_OPERATIONS
) -> list[str]:
    """The handler permissions a stack role needs for a resource of `kind` with these properties, for
    the handler `operations` (create, read, update, delete; default: all)."""
    schema = _schema(kind)
    if schema is None:
        raise KeyError(f"no resource provider schema for {kind}")
    handlers = schema.get("handlers", {})
    wanted: list[str] = []
    conditional = CONDITIONAL_PERMISSIONS.get(kind, {})
    for operation in operations:
        for permission in handlers.get(operation, {}).get("permissions", []):
            triggers = conditional.get(permission)
            if triggers is not None and not any(_has_property(properties, t) for t in triggers):
                continue
            if permission not in wanted:
                wanted.append(permission)
    return wanted


def _has_property(properties: Mapping[str, Any], dotted: str) -> bool:
    value: Any = properties
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


# ---------------------------------------------------------------------------------------- the check
def check(
    platform: Mapping[str, Any],
    api: Mapping[str, Any],
    parameters: Mapping[str, str] | None = None,
    buildspec_text: str | None = None,
    dockerfile_text: str | None = None,
    root: Path = REPO_ROOT,
) -> list[Finding]:
    """Every finding for the rendered platform and API templates (empty: nothing missing)."""
    resolver = TemplateResolver(platform, "gptneo-intent-platform", _sample_parameters(platform, parameters))
    roles = _roles(resolver)
    findings: list[Finding] = []
    requirements = [
        *_code_requirements(resolver, root),
        *_state_machine_requirements(resolver),
        *_service_requirements(resolver),
    ]
    api_resolver, api_requirements = _api_requirements(resolver, api, root)
    requirements += api_requirements
    for requirement in requirements:
        policies = roles.get(requirement.role)
        if policies is None:
            findings.append(Finding(requirement.role, requirement.action, "the role is not in the template"))
            continue
        if not _allowed(policies, requirement):
            findings.append(
                Finding(requirement.role, requirement.action, requirement.source, requirement.resource)
            )
    findings += _name_findings(resolver)
    findings += _definition_findings(resolver, buildspec_text, dockerfile_text)
    del api_resolver
    return _unique(findings)


def _sample_parameters(template: Mapping[str, Any], given: Mapping[str, str] | None) -> dict[str, str]:
    samples = {
        "AssetsBucket": "gptneo-intent-assets-assetsbucket-sample",
        "StartTrainingCodeKey": "lambdas/start_training-0000.zip",
        "RegisterModelCodeKey": "lambdas/register_model-0000.zip",
        "PublishApiCodeKey": "lambdas/publish_api-0000.zip",
        "ApiProxyCodeKey": "lambdas/api_proxy-0000.zip",
        "ApiTemplateKey": "templates/api-0000.json",
    }
    declared = template.get("Parameters", {})
    return {k: v for k, v in {**samples, **(given or {})}.items() if k in declared}


def _roles(resolver: TemplateResolver) -> dict[str, list[Policy]]:
    roles: dict[str, list[Policy]] = {}
    for logical in resolver.of_type("AWS::IAM::Role"):
        properties = resolver.resolved(logical)
        policies = []
        for inline in properties.get("Policies", []):
            policies.append(parse_policy(f"{logical}/{inline['PolicyName']}", inline["PolicyDocument"]))
        for arn in properties.get("ManagedPolicyArns", []):
            if arn not in MANAGED_POLICIES:
                raise PolicyError(f"{logical}: the managed policy {arn} is not known to the check")
            policies.append(parse_policy(arn, MANAGED_POLICIES[arn]))
        roles[logical] = policies
    return roles


def allowed(policies: Sequence[Policy], requirement: Requirement) -> bool:
    """Whether the policies allow the requirement: on its resource, or (resource None) on some resource."""
    return _allowed(policies, requirement)


def stack_role_requirements(
    template: Mapping[str, Any],
    stack_name: str,
    parameters: Mapping[str, str],
    role: str,
    operations: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, Requirement]]:
    """(logical id, requirement) for each handler permission `role` needs to deploy the stack's
    resources, in template order; `operations` maps a logical id to the handler operations CloudFormation
    runs for it (default: `create` for every resource). The same rules as check()'s (c)."""
    resolver = TemplateResolver(template, stack_name, parameters)
    found: list[tuple[str, Requirement]] = []
    for logical, resource in resolver.resources.items():
        wanted = ("create",) if operations is None else tuple(operations.get(logical, ()))
        if not wanted:
            continue
        kind = resource["Type"]
        properties = resolver.resolved(logical)
        for permission in handler_permissions(kind, properties, wanted):
            source = _SCHEMAS_SOURCE.format(type=kind, ops="/".join(wanted))
            resource_arn, context = _handler_resource(resolver, kind, logical, properties, permission)
            found.append((logical, Requirement(role, permission, source, resource_arn, context)))
    return found


def _allowed(policies: Sequence[Policy], requirement: Requirement) -> bool:
    if requirement.resource is not None:
        return evaluate(
            policies, Request(requirement.action, requirement.resource, requirement.context)
        ).allowed
    # On some resource: an Allow for the action whose conditions hold, and no Deny of it everywhere.
    statements = [s for policy in policies for s in policy.statements]
    context = requirement.context

    def holds(statement: Statement) -> bool:
        probe = Request(requirement.action, statement.resources[0] if statement.resources else "*", context)
        return statement.matches_action(requirement.action) and statement.matches(probe)

    denied = any(s.effect == "Deny" and "*" in s.resources and holds(s) for s in statements)
    return not denied and any(s.effect == "Allow" and holds(s) for s in statements)


def _role_of(resolver: TemplateResolver, arn: Any) -> str | None:
    for logical in resolver.of_type("AWS::IAM::Role"):
        if resolver.arn(logical) == arn:
            return logical
    return None


def _code_requirements(resolver: TemplateResolver, root: Path) -> Iterator[Requirement]:
    for logical in resolver.of_type("AWS::Lambda::Function"):
        properties = resolver.resolved(logical)
        role = _role_of(resolver, properties.get("Role"))
        if role is None:
            continue
        yield from _calls_as_requirements(role, str(properties["Handler"]), root)
        target = (properties.get("DeadLetterConfig") or {}).get("TargetArn")
        if isinstance(target, str):
            action = "sns:Publish" if ":sns:" in target else "sqs:SendMessage"
            yield Requirement(role, action, DLQ_SOURCE, target)


def _calls_as_requirements(role: str, handler: str, root: Path) -> Iterator[Requirement]:
    for call in lambda_calls(handler, root):
        source = CODE_SOURCE.format(
            module=call.module,
            client=call.client,
            method=call.method,
            service=call.service,
            operation=call.operation,
        )
        yield Requirement(role, call.action, source)


def _state_machine_requirements(resolver: TemplateResolver) -> Iterator[Requirement]:
    for logical in resolver.of_type("AWS::StepFunctions::StateMachine"):
        properties = resolver.resolved(logical)
        role = _role_of(resolver, properties.get("RoleArn"))
        if role is None:
            continue
        definition = json.loads(properties["DefinitionString"])
        for state in _task_states(definition):
            yield from _integration_requirements(role, state)


def _task_states(definition: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for state in (definition.get("States") or {}).values():
        if state.get("Type") == "Task":
            yield state
        for branch in state.get("Branches") or []:
            yield from _task_states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _task_states(state[key])


def _integration_requirements(role: str, state: Mapping[str, Any]) -> Iterator[Requirement]:
    resource = str(state.get("Resource", ""))
    task = resource.removeprefix("arn:aws:states:::")
    parameters = state.get("Parameters") or {}
    if task.startswith("aws-sdk:"):
        service, _, api = task.removeprefix("aws-sdk:").partition(":")
        action = f"{service}:{api[:1].upper()}{api[1:]}"
        yield Requirement(role, action, SFN_SDK_SOURCE.format(task=task))
        return
    if not task.startswith("sagemaker:"):
        return
    api, _, pattern = task.removeprefix("sagemaker:").partition(".")
    operation = api[:1].upper() + api[1:]
    source = SFN_SOURCE.format(task=task)
    yield Requirement(role, f"sagemaker:{operation}", source)
    if operation == "CreateTrainingJob":
        yield Requirement(role, "sagemaker:ListTags", source, "*")
        if pattern == "sync":
            yield Requirement(role, "sagemaker:DescribeTrainingJob", source)
            yield Requirement(role, "sagemaker:StopTrainingJob", source)
            rule = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{SFN_TRAINING_RULE}"
            for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
                yield Requirement(role, action, source, rule)
    passed = parameters.get("RoleArn") or parameters.get("ExecutionRoleArn")
    if isinstance(passed, str):
        context = {"iam:PassedToService": "sagemaker.amazonaws.com"}
        yield Requirement(role, "iam:PassRole", source, passed, context)


def _service_requirements(resolver: TemplateResolver) -> Iterator[Requirement]:
    yield from _pipeline_requirements(resolver)
    for logical in resolver.of_type("AWS::CodeBuild::Project"):
        properties = resolver.resolved(logical)
        role = _role_of(resolver, properties.get("ServiceRole"))
        if role is None:
            continue
        group = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:/aws/codebuild/{properties['Name']}"
        for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"):
            yield Requirement(role, action, BUILD_SOURCE, f"{group}:log-stream:sample")
        bucket = _artifact_bucket(resolver)
        if bucket:
            for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"):
                yield Requirement(role, action, BUILD_SOURCE, f"arn:{PARTITION}:s3:::{bucket}/sample/key")
            for action in ("s3:GetBucketAcl", "s3:GetBucketLocation"):
                yield Requirement(role, action, BUILD_SOURCE, f"arn:{PARTITION}:s3:::{bucket}")
        yield Requirement(role, "ecr:GetAuthorizationToken", ECR_PUSH_SOURCE, "*")
        for repository in resolver.of_type("AWS::ECR::Repository"):
            for action in (
                "ecr:BatchCheckLayerAvailability",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
            ):
                yield Requirement(role, action, ECR_PUSH_SOURCE, resolver.arn(repository))
    for logical in resolver.of_type("AWS::Events::Rule"):
        for target in resolver.resolved(logical).get("Targets", []):
            role = _role_of(resolver, target.get("RoleArn"))
            if role is not None and ":codepipeline:" in str(target.get("Arn")):
                yield Requirement(
                    role, "codepipeline:StartPipelineExecution", EVENTS_SOURCE, str(target["Arn"])
                )
    yield from _sagemaker_role_requirements(resolver)


def _artifact_bucket(resolver: TemplateResolver) -> str | None:
    for logical in resolver.of_type("AWS::CodePipeline::Pipeline"):
        store = resolver.resolved(logical).get("ArtifactStore") or {}
        return str(store.get("Location")) if store.get("Location") else None
    return None


def _pipeline_requirements(resolver: TemplateResolver) -> Iterator[Requirement]:
    for logical in resolver.of_type("AWS::CodePipeline::Pipeline"):
        properties = resolver.resolved(logical)
        role = _role_of(resolver, properties.get("RoleArn"))
        if role is None:
            continue
        bucket = str(properties["ArtifactStore"]["Location"])
        for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"):
            yield Requirement(role, action, PIPELINE_SOURCE, f"arn:{PARTITION}:s3:::{bucket}/sample/key")
        for action in ("s3:GetBucketVersioning", "s3:GetBucketAcl", "s3:GetBucketLocation"):
            yield Requirement(role, action, PIPELINE_SOURCE, f"arn:{PARTITION}:s3:::{bucket}")
        for stage in properties.get("Stages", []):
            for action in stage.get("Actions", []):
                yield from _provider_requirements(resolver, role, action)


def _provider_requirements(
    resolver: TemplateResolver, role: str, action: Mapping[str, Any]
) -> Iterator[Requirement]:
    provider = action["ActionTypeId"]["Provider"]
    configuration = action.get("Configuration") or {}
    prefix = f"arn:{PARTITION}"
    if provider == "CodeCommit":
        repository = f"{prefix}:codecommit:{REGION}:{ACCOUNT}:{configuration['RepositoryName']}"
        for name in (
            "GetBranch",
            "GetCommit",
            "UploadArchive",
            "GetUploadArchiveStatus",
            "CancelUploadArchive",
        ):
            yield Requirement(role, f"codecommit:{name}", PIPELINE_SOURCE, repository)
    elif provider == "CodeStarSourceConnection":
        connection = str(configuration.get("ConnectionArn") or "*")
        yield Requirement(role, "codestar-connections:UseConnection", PIPELINE_SOURCE, connection)
    elif provider == "CodeBuild":
        project = f"{prefix}:codebuild:{REGION}:{ACCOUNT}:project/{configuration['ProjectName']}"
        for name in ("BatchGetBuilds", "StartBuild"):
            yield Requirement(role, f"codebuild:{name}", PIPELINE_SOURCE, project)
    elif provider == "Lambda":
        function = f"{prefix}:lambda:{REGION}:{ACCOUNT}:function:{configuration['FunctionName']}"
        yield Requirement(role, "lambda:InvokeFunction", PIPELINE_SOURCE, function)


def _sagemaker_role_requirements(resolver: TemplateResolver) -> Iterator[Requirement]:
    for logical in resolver.of_type("AWS::IAM::Role"):
        trust = resolver.resolved(logical).get("AssumeRolePolicyDocument", {})
        services = [str(s.get("Principal", {}).get("Service")) for s in trust.get("Statement", [])]
        if "sagemaker.amazonaws.com" not in services:
            continue
        for action in (
            "s3:GetObject",
            "s3:PutObject",
            "s3:ListBucket",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchCheckLayerAvailability",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "logs:CreateLogGroup",
            "logs:DescribeLogStreams",
        ):
            yield Requirement(logical, action, SAGEMAKER_SOURCE)
        yield Requirement(logical, "ecr:GetAuthorizationToken", SAGEMAKER_SOURCE, "*")
        context = {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
        yield Requirement(logical, "cloudwatch:PutMetricData", SAGEMAKER_SOURCE, "*", context)


def _api_requirements(
    platform: TemplateResolver, api: Mapping[str, Any], root: Path
) -> tuple[TemplateResolver | None, list[Requirement]]:
    """(a) for the API's own Lambda and (c) for the API stack's role: the values publish-api passes."""
    publisher = next(
        (
            logical
            for logical in platform.of_type("AWS::Lambda::Function")
            if "API_STACK_ROLE_ARN"
            in (platform.resolved(logical).get("Environment") or {}).get("Variables", {})
        ),
        None,
    )
    if publisher is None:
        return None, []
    variables = platform.resolved(publisher)["Environment"]["Variables"]
    stack_role = _role_of(platform, variables["API_STACK_ROLE_ARN"])
    parameters = {
        "ProjectName": variables["PROJECT_NAME"],
        "EndpointName": variables["ENDPOINT_NAME"],
        "CodeBucket": variables["ASSETS_BUCKET"],
        "ProxyCodeKey": variables["API_PROXY_CODE_KEY"],
        "ProxyRoleArn": variables["API_PROXY_ROLE_ARN"],
    }
    resolver = TemplateResolver(api, variables["API_STACK_NAME"], parameters)
    requirements: list[Requirement] = []
    for logical in resolver.of_type("AWS::Lambda::Function"):
        properties = resolver.resolved(logical)
        proxy_role = _role_of(platform, properties.get("Role"))
        if proxy_role is not None:
            requirements += _calls_as_requirements(proxy_role, str(properties["Handler"]), root)
    if stack_role is None:
        return resolver, requirements
    for logical, resource in resolver.resources.items():
        kind = resource["Type"]
        properties = resolver.resolved(logical)
        for permission in handler_permissions(kind, properties):
            source = _SCHEMAS_SOURCE.format(type=kind, ops="/".join(HANDLER_OPERATIONS))
            resource_arn, context = _handler_resource(resolver, kind, logical, properties, permission)
            requirements.append(Requirement(stack_role, permission, source, resource_arn, context))
    return resolver, requirements


def _handler_resource(
    resolver: TemplateResolver, kind: str, logical: str, properties: Mapping[str, Any], permission: str
) -> tuple[str | None, dict[str, str]]:
    """The resource a handler permission acts on, where the template says it (else: on some resource)."""
    service = permission.partition(":")[0]
    if kind == "AWS::Lambda::Function":
        if service == "lambda":
            return resolver.arn(logical), {}
        if service == "s3":
            code = properties.get("Code") or {}
            return f"arn:{PARTITION}:s3:::{code.get('S3Bucket')}/{code.get('S3Key')}", {}
        if permission == "iam:PassRole":
            return str(properties.get("Role")), {"iam:PassedToService": "lambda.amazonaws.com"}
    if kind == "AWS::Lambda::Permission" and service == "lambda":
        name = str(properties.get("FunctionName"))
        return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}", {}
    return None, {}


def _name_findings(resolver: TemplateResolver) -> Iterator[Finding]:
    declared = resolver.template.get("Parameters", {})
    for logical in resolver.of_type("AWS::IAM::Role"):
        raw = json.dumps(resolver.resources[logical].get("Properties") or {})
        for arn in re.findall(r"arn:\$\{AWS::Partition\}:sagemaker:[^\"]*", raw):
            for name in re.findall(r"\$\{([A-Za-z0-9]+)\}", arn):
                spec = declared.get(name)
                if not spec or "AllowedPattern" not in spec:
                    continue
                sample = str(spec.get("Default", "a")).upper() or "A"
                if re.fullmatch(spec["AllowedPattern"], sample):
                    missing = f"parameter {name} admits upper case ({sample!r}) in a SageMaker ARN"
                    yield Finding(logical, missing, NAMES_SOURCE, arn)


def _definition_findings(
    resolver: TemplateResolver, buildspec_text: str | None, dockerfile_text: str | None
) -> Iterator[Finding]:
    rule_targets = {
        str(target.get("Arn"))
        for logical in resolver.of_type("AWS::Events::Rule")
        for target in resolver.resolved(logical).get("Targets", [])
    }
    for logical in resolver.of_type("AWS::CodePipeline::Pipeline"):
        properties = resolver.resolved(logical)
        arn = f"arn:{PARTITION}:codepipeline:{REGION}:{ACCOUNT}:{properties.get('Name')}"
        for stage in properties.get("Stages", []):
            for action in stage.get("Actions", []):
                configuration = action.get("Configuration") or {}
                codecommit = action["ActionTypeId"]["Provider"] == "CodeCommit"
                polling = str(configuration.get("PollForSourceChanges", "true")).lower() == "true"
                if codecommit and not polling and arn not in rule_targets:
                    yield Finding(
                        logical,
                        "an EventBridge rule targeting the pipeline (a commit starts nothing)",
                        'CodePipeline user guide, "Valid settings for the PollForSourceChanges parameter"',
                    )
    if buildspec_text is not None:
        spec = yaml.safe_load(buildspec_text) or {}
        phases = spec.get("phases") or {}
        commands = json.dumps(phases)
        pinned = ((phases.get("install") or {}).get("runtime-versions") or {}).get("python")
        if "pip wheel" in commands and not pinned:
            yield Finding(
                "deployer/buildspec.yml",
                "install.runtime-versions python (pip wheel runs under whatever Python the image picks)",
                'CodeBuild user guide, "Runtime versions"',
            )
    if dockerfile_text is not None:
        yield from _dockerfile_findings(dockerfile_text)


def _dockerfile_findings(dockerfile_text: str) -> Iterator[Finding]:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)\s*$", dockerfile_text, re.MULTILINE)
    if match is None:
        return
    reference = match.group(1)
    registry = reference.split("/", 1)[0] if "/" in reference else ""
    if "." not in registry and ":" not in registry:
        yield Finding(
            "container/Dockerfile",
            f"a pullable default BASE_IMAGE ({reference!r} names no registry: Docker Hub would be asked)",
            'Docker reference, "docker image pull" (a name without a registry host comes from Docker Hub)',
        )


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    seen: dict[tuple[str, str, str | None], Finding] = {}
    for finding in findings:
        seen.setdefault((finding.subject, finding.missing, finding.resource), finding)
    return list(seen.values())


def load_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a template")
    return loaded
