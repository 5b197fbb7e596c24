"""Per principal: a copy of platform.yaml without one permission the flow needs is deployed, the part of
the flow that uses it runs, and it fails where AWS would, with access denied naming the role and the
action (IAM user guide, "Troubleshoot access denied error messages": "User: arn:aws:sts::ACCOUNT:
assumed-role/ROLE/SESSION is not authorized to perform: ACTION on resource: ARN because no
identity-based policy allows the ACTION action").

The roles of the Lambda functions and of the state machine are covered here; the service roles that
harness code acts for (SageMaker, CodeBuild, CodePipeline, CloudFormation) are covered with them.
No training runs: each denial comes before any job would start.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer import compile as compiler
from harness.local import LocalAws, LocalAwsOptions

EVENTS = Path(__file__).resolve().parents[1] / "events"
EXECUTION_DEADLINE_S = 120
NOT_AUTHORIZED = "is not authorized to perform: {action} on resource: {resource}"


def without(template: dict[str, Any], role: str, action: str) -> dict[str, Any]:
    """`template` with `action` removed from every inline policy of `role` (a statement, then a policy,
    left empty is dropped); fails when the role never granted it."""
    changed = copy.deepcopy(template)
    properties = changed["Resources"][role]["Properties"]
    removed = False
    policies = []
    for policy in properties.get("Policies", []):
        statements = []
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            kept = [name for name in actions if name != action]
            removed = removed or len(kept) != len(actions)
            if kept:
                statements.append({**statement, "Action": kept})
        if statements:  # IAM refuses a policy without statements: the policy goes with its last one
            policy["PolicyDocument"]["Statement"] = statements
            policies.append(policy)
    properties["Policies"] = policies
    assert removed, f"{role} does not grant {action} in platform.yaml"
    return changed


@pytest.fixture
def deploy_without(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """deploy_without(role, action) -> a started LocalAws with that copy of the template deployed."""
    stacks: list[LocalAws] = []
    original = compiler.load_template

    def deploy(role: str, action: str) -> LocalAws:
        def load(name: str) -> dict[str, Any]:
            template = original(name)
            return without(template, role, action) if name == "platform" else template

        monkeypatch.setattr(compiler, "load_template", load)
        stack = LocalAws(LocalAwsOptions(work_dir=tmp_path / role, time_scale=0.01, build_cache=None))
        stacks.append(stack)
        stack.start()
        stack.deploy()
        return stack

    yield deploy
    for stack in stacks:
        stack.stop()


def physical_role(stack: LocalAws, logical_id: str) -> str:
    resource = stack.client("cloudformation").describe_stack_resource(
        StackName=stack.deployment.platform_stack_name, LogicalResourceId=logical_id
    )
    return str(resource["StackResourceDetail"]["PhysicalResourceId"])


def session_arn(stack: LocalAws, logical_id: str, session: str) -> str:
    return f"arn:aws:sts::123456789012:assumed-role/{physical_role(stack, logical_id)}/{session}"


def invoke(stack: LocalAws, function: str, event: Any) -> tuple[str | None, dict[str, Any]]:
    answer = stack.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return answer.get("FunctionError"), json.loads(answer["Payload"].read())


def test_start_training_role_without_s3_get_object_cannot_read_the_build_record(deploy_without: Any) -> None:
    """New data under the prefix: start-training reads builds/latest.json with its role; without
    s3:GetObject on the artifact bucket, S3 answers AccessDenied and the invoke fails."""
    stack = deploy_without("StartTrainingRole", "s3:GetObject")
    deployment = stack.deployment
    event = json.loads((EVENTS / "eventbridge_s3_object_created.json").read_text())
    event["detail"]["bucket"]["name"] = deployment.data_bucket
    event["detail"]["object"]["key"] = f"{deployment.data_prefix}train.csv"
    error, payload = invoke(stack, stack.deployment.start_training_function, event)
    assert error == "Unhandled"
    message = payload["errorMessage"]
    assert "AccessDenied" in message
    assert session_arn(stack, "StartTrainingRole", "gptneo-intent-start-training") in message
    resource = f"arn:aws:s3:::{deployment.artifact_bucket}/builds/latest.json"
    assert NOT_AUTHORIZED.format(action="s3:GetObject", resource=resource) in message
    denials = stack.access_denials()
    assert denials[-1]["action"] == "s3:GetObject" and denials[-1]["resource"] == resource


def test_register_model_role_without_describe_execution_cannot_register(deploy_without: Any) -> None:
    """register-model first reads the execution (states:DescribeExecution): Step Functions answers
    AccessDeniedException and the handler raises it."""
    stack = deploy_without("RegisterModelRole", "states:DescribeExecution")
    execution = "arn:aws:states:us-east-1:123456789012:execution:gptneo-intent-training:gptneo-intent-x"
    error, payload = invoke(stack, stack.deployment.register_model_function, {"ExecutionArn": execution})
    assert error == "Unhandled"
    message = payload["errorMessage"]
    # botocore raises Step Functions' unmodeled AccessDeniedException as a plain ClientError.
    assert payload["errorType"] == "ClientError" and "(AccessDeniedException)" in message
    assert session_arn(stack, "RegisterModelRole", "gptneo-intent-register-model") in message
    assert NOT_AUTHORIZED.format(action="states:DescribeExecution", resource=execution) in message


def test_publish_api_role_without_pass_role_cannot_create_the_api_stack(deploy_without: Any) -> None:
    """publish-api creates the API stack with RoleARN=ApiStackRole: CloudFormation authorizes
    iam:PassRole on that role for the caller (IAM user guide, "Grant a user permissions to pass a role
    to an AWS service") and answers AccessDenied without it."""
    stack = deploy_without("PublishApiRole", "iam:PassRole")
    error, payload = invoke(stack, stack.deployment.publish_api_function, {})
    assert error == "Unhandled"
    message = payload["errorMessage"]
    assert "AccessDenied" in message
    assert session_arn(stack, "PublishApiRole", "gptneo-intent-publish-api") in message
    role_arn = f"arn:aws:iam::123456789012:role/{physical_role(stack, 'ApiStackRole')}"
    assert NOT_AUTHORIZED.format(action="iam:PassRole", resource=role_arn) in message


def test_api_proxy_role_without_invoke_endpoint_answers_502_and_logs_the_denial(deploy_without: Any) -> None:
    """The API's proxy calls sagemaker:InvokeEndpoint with ApiProxyRole: denied, SageMaker Runtime
    answers AccessDeniedException (403), which the proxy turns into a 502 and logs."""
    stack = deploy_without("ApiProxyRole", "sagemaker:InvokeEndpoint")
    error, payload = invoke(stack, stack.deployment.publish_api_function, {})
    assert error is None, payload  # the API stack (and the proxy function) exist now
    functions = [f["FunctionName"] for f in stack.client("lambda").list_functions()["Functions"]]
    proxy = next(name for name in functions if name.endswith("-api-proxy"))
    event = json.loads((EVENTS / "apigateway_proxy_post.json").read_text())
    event["body"] = json.dumps({"inputs": "what is my balance"})
    error, payload = invoke(stack, proxy, event)
    assert error is None and payload["statusCode"] == 502
    assert "AccessDeniedException" in payload["body"]
    log = stack.lambdas.invocations(proxy)[-1].log
    endpoint = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{stack.deployment.endpoint_name.lower()}"
    assert session_arn(stack, "ApiProxyRole", proxy) in log
    assert NOT_AUTHORIZED.format(action="sagemaker:InvokeEndpoint", resource=endpoint) in log


def test_state_machine_role_without_create_training_job_fails_the_train_task(deploy_without: Any) -> None:
    """The Train Task calls sagemaker:CreateTrainingJob with the state machine's role: SageMaker answers
    AccessDeniedException, which an optimized SageMaker task names `SageMaker.AmazonSageMakerException`
    (the SDK's base exception: SageMaker models no AccessDeniedException) with SageMaker's message in
    the cause (Step Functions developer guide, "Handling errors in Step Functions workflows")."""
    stack = deploy_without("StateMachineRole", "sagemaker:CreateTrainingJob")
    deployment = stack.deployment
    sfn = stack.client("stepfunctions")
    name = "gptneo-intent-iam-test"
    execution_input = {
        "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/byoc@sha256:" + "0" * 64,
        "TrainingData": f"s3://{deployment.data_bucket}/{deployment.data_prefix}",
        "OutputPath": f"s3://{deployment.artifact_bucket}/models/",
        "Hyperparameters": {"model_preset": "tiny"},
        "QualityThreshold": 0.5,
        "EndpointName": f"{deployment.endpoint_name}-candidate",
        "CommitId": "0" * 40,
        "DataVersion": "0" * 16,
        "ImageDigest": "sha256:" + "0" * 64,
        "Trigger": "codepipeline",
    }
    arn = sfn.start_execution(
        stateMachineArn=deployment.state_machine_arn, name=name, input=json.dumps(execution_input)
    )["executionArn"]
    started = time.monotonic()
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() - started < EXECUTION_DEADLINE_S
        time.sleep(0.2)
    history = sfn.get_execution_history(executionArn=arn)["events"]
    failed = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert failed, [e["type"] for e in history]
    assert failed[0]["error"] == "SageMaker.AmazonSageMakerException"
    job = f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}-train"
    assert session_arn(stack, "StateMachineRole", "StepFunctions") in failed[0]["cause"]
    assert NOT_AUTHORIZED.format(action="sagemaker:CreateTrainingJob", resource=job) in failed[0]["cause"]
    assert "Error Code: AccessDeniedException" in failed[0]["cause"]


def test_source_event_role_without_start_pipeline_execution_starts_nothing(
    deploy_without: Any, tmp_path: Path
) -> None:
    """EventBridge user guide, "Using IAM roles for targets": EventBridge calls a CodePipeline target
    with the role the target names (here SourceEventRole, which CodePipeline's "Create an EventBridge
    rule for a CodeCommit source" says needs codepipeline:StartPipelineExecution). Without it the call
    is refused, the delivery fails (the rule's FailedInvocations, nothing reaches the pusher) and the
    commit starts no execution."""
    from harness.pipeline.approval import auto_approve
    from harness.pipeline.trigger import TriggerError
    from tests.gitrepo import git

    stack = deploy_without("SourceEventRole", "codepipeline:StartPipelineExecution")
    stack.pipeline_runner(auto_approve, lambda event: None)
    repository = tmp_path / "source"
    repository.mkdir()
    git(repository, "init", "-q", "-b", "main")
    (repository / "README.md").write_text("a commit\n")
    git(repository, "add", "README.md")
    git(repository, "commit", "-q", "-m", "a commit")
    commit, moved = stack.trigger.push(repository)
    assert moved
    with pytest.raises(TriggerError, match="started no execution"):
        stack.trigger.started_for(commit.commit_id, timeout_s=3)
    denial = stack.access_denials()[-1]
    pipeline = f"arn:aws:codepipeline:us-east-1:123456789012:{stack.deployment.pipeline_name}"
    assert denial["action"] == "codepipeline:StartPipelineExecution"
    assert denial["resource"] == pipeline
    assert denial["principal"] == session_arn(stack, "SourceEventRole", "EventBridge")
