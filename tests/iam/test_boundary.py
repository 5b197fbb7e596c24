"""IAM at the emulator's boundary (harness/seams/iam.py): who signed, what was decided, how a refusal
looks on each protocol.

Sources: IAM user guide, "Troubleshoot access denied error messages" (the message's two forms) and
"Policy evaluation logic" (explicit deny over allow); the API references' "Common Errors"
(AccessDeniedException 400 on JSON services; AccessDenied 403 on query services; UnrecognizedClientException
/ InvalidClientTokenId "The security token included in the request is invalid."); S3 API reference,
"Error responses" (AccessDenied, InvalidAccessKeyId 403); Lambda API reference, CreateFunction
(InvalidParameterValueException "The role defined for the function cannot be assumed by Lambda.").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from harness.emulator import EmbeddedEmulator, client_config
from harness.iam.credentials import Credentials, TrustPolicyError, credentials_for
from harness.lambda_runtime import zip_sources

ROLE = "iam-boundary-role"
BUCKET = "iam-boundary-bucket"


def trust(service: str) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmbeddedEmulator]:
    with EmbeddedEmulator() as running:
        iam = running.client("iam")
        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=trust("lambda.amazonaws.com"))
        iam.put_role_policy(
            RoleName=ROLE,
            PolicyName="scoped",
            PolicyDocument=policy(
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/ok/*"},
                {"Effect": "Allow", "Action": "sagemaker:Describe*", "Resource": "*"},
                {"Effect": "Deny", "Action": "sagemaker:DescribeModel", "Resource": "*"},
            ),
        )
        s3 = running.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for key in ("ok/a", "no/a"):
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        yield running


@pytest.fixture(scope="module")
def credentials(emulator: EmbeddedEmulator) -> Credentials:
    return credentials_for(
        emulator.context, f"arn:aws:iam::123456789012:role/{ROLE}", "probe", "lambda.amazonaws.com"
    )


def client(emulator: EmbeddedEmulator, service: str, credentials: Credentials | dict[str, str]) -> Any:
    given = credentials.as_boto3() if isinstance(credentials, Credentials) else credentials
    return boto3.client(
        service, region_name="us-east-1", endpoint_url=emulator.endpoint_url, config=client_config(), **given
    )


def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response  # type: ignore[no-any-return]


SESSION = f"arn:aws:sts::123456789012:assumed-role/{ROLE}/probe"


def test_a_json_service_answers_access_denied_exception_with_aws_message(
    emulator: EmbeddedEmulator, credentials: Credentials
) -> None:
    sagemaker = client(emulator, "sagemaker", credentials)
    answer = refused(lambda: sagemaker.create_endpoint(EndpointName="E", EndpointConfigName="c"))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert answer["Error"]["Code"] == "AccessDeniedException"
    resource = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"
    assert answer["Error"]["Message"] == (
        f"User: {SESSION} is not authorized to perform: sagemaker:CreateEndpoint on resource: {resource} "
        "because no identity-based policy allows the sagemaker:CreateEndpoint action"
    )


def test_an_explicit_deny_wins_over_an_allow(emulator: EmbeddedEmulator, credentials: Credentials) -> None:
    sagemaker = client(emulator, "sagemaker", credentials)
    message = refused(lambda: sagemaker.describe_model(ModelName="m"))["Error"]["Message"]
    assert message.endswith("with an explicit deny in an identity-based policy")
    # Allowed (Describe*), so the call reaches SageMaker, which does not know the endpoint.
    assert refused(lambda: sagemaker.describe_endpoint(EndpointName="nothing"))["Error"]["Code"] != (
        "AccessDeniedException"
    )


def test_query_and_rest_json_services_answer_in_their_own_shapes(
    emulator: EmbeddedEmulator, credentials: Credentials
) -> None:
    stacks = refused(lambda: client(emulator, "cloudformation", credentials).describe_stacks(StackName="s"))
    assert stacks["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert (stacks["Error"]["Code"], stacks["Error"]["Type"]) == ("AccessDenied", "Sender")
    functions = refused(lambda: client(emulator, "lambda", credentials).get_function(FunctionName="f"))
    assert functions["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert functions["Error"]["Code"] == "AccessDeniedException"
    assert (
        "lambda:GetFunction on resource: arn:aws:lambda:us-east-1:123456789012:function:f"
        in (functions["Error"]["Message"])
    )


def test_s3_answers_access_denied_403_and_allows_what_the_policy_allows(
    emulator: EmbeddedEmulator, credentials: Credentials
) -> None:
    s3 = client(emulator, "s3", credentials)
    assert s3.get_object(Bucket=BUCKET, Key="ok/a")["Body"].read() == b"x"
    answer = refused(lambda: s3.get_object(Bucket=BUCKET, Key="no/a"))
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert answer["Error"]["Code"] == "AccessDenied"
    assert f"s3:GetObject on resource: arn:aws:s3:::{BUCKET}/no/a" in answer["Error"]["Message"]
    head = refused(lambda: s3.head_object(Bucket=BUCKET, Key="no/a"))
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 403  # HEAD: no body, as S3 answers


def test_an_unknown_key_or_a_wrong_token_is_refused_as_aws_refuses_it(
    emulator: EmbeddedEmulator, credentials: Credentials
) -> None:
    unknown = {"aws_access_key_id": "ASIAUNKNOWNKEY000000", "aws_secret_access_key": "x"}
    json_answer = refused(lambda: client(emulator, "stepfunctions", unknown).list_state_machines())
    assert json_answer["Error"]["Code"] == "UnrecognizedClientException"
    assert json_answer["Error"]["Message"] == "The security token included in the request is invalid."
    query_answer = refused(lambda: client(emulator, "sts", unknown).get_caller_identity())
    assert query_answer["Error"]["Code"] == "InvalidClientTokenId"
    s3_answer = refused(lambda: client(emulator, "s3", unknown).list_buckets())
    assert s3_answer["Error"]["Code"] == "InvalidAccessKeyId"
    wrong_token = {**credentials.as_boto3(), "aws_session_token": "not-the-token"}
    assert refused(lambda: client(emulator, "sagemaker", wrong_token).list_endpoints())["Error"]["Code"] == (
        "UnrecognizedClientException"
    )


def test_a_changed_policy_applies_to_credentials_issued_before(
    emulator: EmbeddedEmulator, credentials: Credentials
) -> None:
    """Policies are read at each call, as IAM evaluates them per request."""
    iam = emulator.client("iam")
    dynamodb = client(emulator, "dynamodb", credentials)
    assert refused(lambda: dynamodb.describe_table(TableName="t"))["Error"]["Code"] == "AccessDeniedException"
    allow = {"Effect": "Allow", "Action": "dynamodb:DescribeTable", "Resource": "*"}
    iam.put_role_policy(RoleName=ROLE, PolicyName="later", PolicyDocument=policy(allow))
    try:
        assert refused(lambda: dynamodb.describe_table(TableName="t"))["Error"]["Code"] == (
            "ResourceNotFoundException"
        )
    finally:
        iam.delete_role_policy(RoleName=ROLE, PolicyName="later")


def test_enforcement_off_gives_every_call_full_rights(
    emulator: EmbeddedEmulator, credentials: Credentials
) -> None:
    emulator.context.iam.set_enabled(False)
    try:
        assert (
            client(emulator, "s3", credentials).get_object(Bucket=BUCKET, Key="no/a")["Body"].read() == b"x"
        )
    finally:
        emulator.context.iam.set_enabled(True)


def test_a_role_is_assumed_only_by_whom_its_trust_policy_names(emulator: EmbeddedEmulator) -> None:
    role_arn = f"arn:aws:iam::123456789012:role/{ROLE}"
    with pytest.raises(TrustPolicyError, match=r"states\.amazonaws\.com"):
        credentials_for(emulator.context, role_arn, "s", "states.amazonaws.com")
    # The admin (the account) is not in the trust policy either: STS refuses it.
    sts = emulator.client("sts")
    answer = refused(lambda: sts.assume_role(RoleArn=role_arn, RoleSessionName="admin"))
    assert answer["Error"]["Code"] == "AccessDenied"
    assert f"sts:AssumeRole on resource: {role_arn}" in answer["Error"]["Message"]


def test_create_function_refuses_a_role_lambda_cannot_assume(emulator: EmbeddedEmulator) -> None:
    iam = emulator.client("iam")
    role = iam.create_role(
        RoleName="iam-boundary-states", AssumeRolePolicyDocument=trust("states.amazonaws.com")
    )
    answer = refused(
        lambda: emulator.client("lambda").create_function(
            FunctionName="iam-untrusted",
            Runtime="python3.11",
            Role=role["Role"]["Arn"],
            Handler="app.handler",
            Code={"ZipFile": zip_sources({"app.py": "def handler(e, c):\n    return 1\n"})},
        )
    )
    assert answer["Error"]["Code"] == "InvalidParameterValueException"
    assert answer["Error"]["Message"] == "The role defined for the function cannot be assumed by Lambda."


def test_create_state_machine_refuses_a_role_that_cannot_create_the_sync_managed_rule(
    emulator: EmbeddedEmulator,
) -> None:
    iam = emulator.client("iam")
    role = iam.create_role(
        RoleName="iam-boundary-sfn", AssumeRolePolicyDocument=trust("states.amazonaws.com")
    )
    iam.put_role_policy(
        RoleName="iam-boundary-sfn",
        PolicyName="sagemaker-only",
        PolicyDocument=policy({"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}),
    )
    definition = {
        "StartAt": "Train",
        "States": {
            "Train": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
                "End": True,
            }
        },
    }
    answer = refused(
        lambda: emulator.client("stepfunctions").create_state_machine(
            name="iam-sync", definition=json.dumps(definition), roleArn=role["Role"]["Arn"]
        )
    )
    assert answer["Error"]["Code"] == "AccessDeniedException"
    assert answer["Error"]["Message"] == f"'{role['Role']['Arn']}' is not authorized to create managed-rule."


def test_a_stack_role_gets_its_managed_policies_and_lambda_writes_logs_only_with_them(
    emulator: EmbeddedEmulator,
) -> None:
    """AWS::IAM::Role ManagedPolicyArns are attached (moto drops them); Lambda writes a function's log
    with its role (Lambda developer guide, "Sending Lambda function logs to CloudWatch Logs"): a role
    without the logs permissions leaves no log, and the function still runs."""
    template = {
        "Resources": {
            "Basic": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": json.loads(trust("lambda.amazonaws.com")),
                    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
                },
            }
        },
        "Outputs": {"Arn": {"Value": {"Fn::GetAtt": ["Basic", "Arn"]}}},
    }
    cloudformation = emulator.client("cloudformation")
    cloudformation.create_stack(StackName="iam-roles", TemplateBody=json.dumps(template))
    outputs = cloudformation.describe_stacks(StackName="iam-roles")["Stacks"][0]["Outputs"]
    basic_arn = outputs[0]["OutputValue"]
    attached = emulator.client("iam").list_attached_role_policies(RoleName=basic_arn.rsplit("/", 1)[-1])
    assert [p["PolicyName"] for p in attached["AttachedPolicies"]] == ["AWSLambdaBasicExecutionRole"]
    bare = emulator.client("iam").create_role(
        RoleName="iam-no-logs", AssumeRolePolicyDocument=trust("lambda.amazonaws.com")
    )
    lambdas, logs = emulator.client("lambda"), emulator.client("logs")
    code = {"ZipFile": zip_sources({"app.py": "def handler(e, c):\n    print('hello')\n    return 1\n"})}
    for name, role_arn in (("iam-with-logs", basic_arn), ("iam-without-logs", bare["Role"]["Arn"])):
        lambdas.create_function(
            FunctionName=name, Runtime="python3.11", Role=role_arn, Handler="app.handler", Code=code
        )
        assert lambdas.invoke(FunctionName=name)["Payload"].read() == b"1"
    groups = {
        g["logGroupName"]
        for g in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/iam-")["logGroups"]
    }
    assert groups == {"/aws/lambda/iam-with-logs"}
    denied = emulator.context.iam.denials()[-1]
    assert denied.principal_arn.endswith("assumed-role/iam-no-logs/iam-without-logs")
    assert denied.action == "logs:CreateLogGroup"
