"""Each call as the authorization requests AWS makes for it (harness/iam/actions.py, s3_actions.py).

Sources: the Service Authorization Reference ("Actions, resources, and condition keys for" Amazon
SageMaker AI, AWS Step Functions, Amazon DynamoDB, AWS CodePipeline, AWS CloudFormation, AWS Lambda,
Amazon S3): the action names and resource types below; the IAM user guide, "Grant a user permissions
to pass a role to an AWS service" (iam:PassRole, iam:PassedToService).
"""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from harness.iam.actions import Call, action_of, requests_for, signing_name
from harness.iam.s3_actions import s3_requests

ACCOUNT = "123456789012"
REGION = "us-east-1"


def call(service: str, operation: str, **params: object) -> Call:
    return Call(service, operation, params, REGION, ACCOUNT)


def test_the_action_prefix_is_the_signing_name_and_lambda_invoke_is_invoke_function() -> None:
    assert signing_name("stepfunctions") == "states"
    assert signing_name("sagemaker-runtime") == "sagemaker"
    assert action_of(call("lambda", "Invoke", FunctionName="f")) == "lambda:InvokeFunction"
    assert action_of(call("sagemaker-runtime", "InvokeEndpoint")) == "sagemaker:InvokeEndpoint"


def test_create_training_job_is_on_the_job_and_passes_its_role_to_sagemaker() -> None:
    requests = requests_for(
        call("sagemaker", "CreateTrainingJob", TrainingJobName="Run-1-train", RoleArn="arn:aws:iam::1:role/r")
    )
    assert [(r.action, r.resource) for r in requests] == [
        ("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/run-1-train"),
        ("iam:PassRole", "arn:aws:iam::1:role/r"),
    ]
    assert requests[1].context["iam:PassedToService"] == "sagemaker.amazonaws.com"


def test_create_endpoint_is_authorized_on_the_endpoint_and_its_config() -> None:
    resources = [
        r.resource
        for r in requests_for(call("sagemaker", "CreateEndpoint", EndpointName="E", EndpointConfigName="c"))
    ]
    assert resources == [
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/e",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/c",
    ]


@given(st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=63))
def test_sagemaker_arns_are_lower_case_whatever_the_name(name: str) -> None:
    """SageMaker lower-cases resource names in ARNs, so an upper-case name never matches a policy
    written with it: IAM's ARN matching is case-sensitive (IAM user guide, "IAM JSON policy elements:
    Resource")."""
    (request,) = requests_for(call("sagemaker", "DescribeEndpoint", EndpointName=name))
    assert request.resource == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name.lower()}"


def test_step_functions_calls_are_on_the_machine_or_the_execution() -> None:
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:m"
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:m:run"
    assert (
        requests_for(call("stepfunctions", "StartExecution", stateMachineArn=machine))[0].resource == machine
    )
    assert requests_for(call("stepfunctions", "DescribeExecution", executionArn=execution))[0].resource == (
        execution
    )


def test_the_codepipeline_job_api_has_no_resource_level_permissions() -> None:
    for operation in ("GetJobDetails", "PutJobSuccessResult", "PutJobFailureResult"):
        assert requests_for(call("codepipeline", operation, jobId="j"))[0].resource == "*"
    pipeline = requests_for(call("codepipeline", "GetPipelineState", name="p"))[0]
    assert pipeline.resource == f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:p"


def test_create_stack_passes_its_role_to_cloudformation_and_names_a_new_stack_with_a_wildcard_id() -> None:
    stack, passed = requests_for(call("cloudformation", "CreateStack", StackName="api", RoleARN="arn:r"))
    assert stack.resource == f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/api/*"
    assert (passed.action, passed.resource) == ("iam:PassRole", "arn:r")
    assert passed.context["iam:PassedToService"] == "cloudformation.amazonaws.com"


def test_lambda_function_names_partial_arns_and_qualifiers_name_the_function() -> None:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f"
    for name in ("f", "f:live", arn, f"{arn}:3"):
        assert requests_for(call("lambda", "Invoke", FunctionName=name))[0].resource == arn


def test_put_metric_data_carries_its_namespace_and_get_caller_identity_needs_nothing() -> None:
    (request,) = requests_for(call("cloudwatch", "PutMetricData", Namespace="/aws/sagemaker/TrainingJobs"))
    assert (
        request.resource == "*" and request.context["cloudwatch:namespace"] == "/aws/sagemaker/TrainingJobs"
    )
    assert requests_for(call("sts", "GetCallerIdentity")) == []


def test_s3_head_bucket_is_list_bucket_and_a_copy_reads_its_source() -> None:
    """S3 API reference: HeadBucket needs s3:ListBucket; CopyObject needs s3:GetObject on the source."""
    (head,) = s3_requests("HeadBucket", "b", None, {}, {}, REGION)
    assert (head.action, head.resource) == ("s3:ListBucket", "arn:aws:s3:::b")
    put, read = s3_requests("PutObject", "b", "k", {"x-amz-copy-source": "/src/a%20b.txt"}, {}, REGION)
    assert (put.action, put.resource) == ("s3:PutObject", "arn:aws:s3:::b/k")
    assert (read.action, read.resource) == ("s3:GetObject", "arn:aws:s3:::src/a b.txt")
    (listing,) = s3_requests("ListBucket", "b", None, {}, {"prefix": ["data/"]}, REGION)
    assert listing.context["s3:prefix"] == "data/"
