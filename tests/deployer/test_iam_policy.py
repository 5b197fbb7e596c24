"""The IAM policy evaluator (deployer.iam_policy) against the rules of IAM's documentation.

IAM user guide: "Policy evaluation logic" (explicit deny over allow, implicit deny), "IAM JSON policy
elements: Action / NotAction / Resource / NotResource" (wildcards; actions case-insensitive, ARNs
case-sensitive) and "IAM JSON policy elements: Condition operators" (IfExists, Null, negated operators,
ForAnyValue / ForAllValues).
"""

from __future__ import annotations

from typing import Any

import pytest

from deployer.iam_policy import PolicyError, Request, evaluate, parse_policy

ROLE_ARN = "arn:aws:iam::123456789012:role/sm-exec"
ENDPOINT = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/gptneo-intent"


def _policy(*statements: dict[str, Any]) -> Any:
    return parse_policy("test", {"Version": "2012-10-17", "Statement": list(statements)})


def test_an_allow_matches_action_and_resource_with_wildcards() -> None:
    policy = _policy(
        {
            "Effect": "Allow",
            "Action": "sagemaker:Describe*",
            "Resource": "arn:aws:sagemaker:*:*:endpoint/gptneo-*",
        }
    )
    assert evaluate([policy], Request("sagemaker:DescribeEndpoint", ENDPOINT)).allowed
    assert evaluate([policy], Request("SageMaker:describeendpoint", ENDPOINT)).allowed  # actions: any case
    assert not evaluate([policy], Request("sagemaker:DeleteEndpoint", ENDPOINT)).allowed
    upper = ENDPOINT.replace("gptneo-intent", "GptNeo-Intent")
    decision = evaluate([policy], Request("sagemaker:DescribeEndpoint", upper))
    assert (decision.allowed, decision.reason) == (False, "implicit-deny")  # ARNs: case-sensitive


def test_a_star_spans_colons_and_slashes_and_a_question_mark_one_character() -> None:
    policy = _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*/x?"})
    assert evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::bucket/a/b:c/x1")).allowed
    assert not evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::bucket/a/x12")).allowed
    assert not evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::bucket2/a/x1")).allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    allow = _policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    deny = _policy({"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/*"})
    decision = evaluate([allow, deny], Request("s3:DeleteObject", "arn:aws:s3:::b/k"))
    assert (decision.allowed, decision.reason) == (False, "explicit-deny")
    assert decision.statement is not None and decision.statement.effect == "Deny"
    assert evaluate([allow, deny], Request("s3:GetObject", "arn:aws:s3:::b/k")).allowed


def test_not_action_and_not_resource_match_everything_else() -> None:
    policy = _policy(
        {"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"},
    )
    assert evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::open/k")).allowed
    assert not evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::secret/k")).allowed
    assert not evaluate([policy], Request("iam:PassRole", ROLE_ARN)).allowed


def test_pass_role_is_allowed_only_to_the_named_service() -> None:
    policy = _policy(
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": ROLE_ARN,
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        }
    )
    to_sagemaker = Request("iam:PassRole", ROLE_ARN, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    assert evaluate([policy], to_sagemaker).allowed
    assert evaluate(
        [policy], Request("iam:PassRole", ROLE_ARN, {"IAM:passedtoservice": "sagemaker.amazonaws.com"})
    ).allowed
    assert not evaluate(
        [policy], Request("iam:PassRole", ROLE_ARN, {"iam:PassedToService": "lambda.amazonaws.com"})
    ).allowed
    assert not evaluate([policy], Request("iam:PassRole", ROLE_ARN)).allowed  # the key is absent


def test_string_like_values_are_ored_and_keys_anded() -> None:
    policy = _policy(
        {
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {
                "StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "Custom/*"]},
                "Bool": {"aws:SecureTransport": True},
            },
        }
    )
    good = {"cloudwatch:namespace": "Custom/x", "aws:SecureTransport": "true"}
    assert evaluate([policy], Request("cloudwatch:PutMetricData", "*", good)).allowed
    insecure = {**good, "aws:SecureTransport": "false"}
    assert not evaluate([policy], Request("cloudwatch:PutMetricData", "*", insecure)).allowed
    other = {**good, "cloudwatch:namespace": "AWS/EC2"}
    assert not evaluate([policy], Request("cloudwatch:PutMetricData", "*", other)).allowed


@pytest.mark.parametrize(
    ("operator", "context", "holds"),
    [
        ("StringEqualsIfExists", {}, True),
        ("StringEqualsIfExists", {"aws:RequestTag/team": "ml"}, True),
        ("StringEqualsIfExists", {"aws:RequestTag/team": "web"}, False),
        ("StringNotEquals", {}, True),
        ("StringNotEquals", {"aws:RequestTag/team": "ml"}, False),
        ("StringEquals", {}, False),
        ("StringEqualsIgnoreCase", {"aws:RequestTag/team": "ML"}, True),
        ("ForAllValues:StringEquals", {"aws:RequestTag/team": ["ml", "ml"]}, True),
        ("ForAllValues:StringEquals", {"aws:RequestTag/team": ["ml", "web"]}, False),
        ("ForAllValues:StringEquals", {}, True),
        ("ForAnyValue:StringEquals", {"aws:RequestTag/team": ["web", "ml"]}, True),
        ("ForAnyValue:StringEquals", {}, False),
    ],
)
def test_condition_operators_on_present_and_absent_keys(
    operator: str, context: dict[str, Any], holds: bool
) -> None:
    policy = _policy(
        {
            "Effect": "Allow",
            "Action": "*",
            "Resource": "*",
            "Condition": {operator: {"aws:RequestTag/team": "ml"}},
        }
    )
    assert evaluate([policy], Request("s3:GetObject", "*", context)).allowed is holds


def test_null_and_arn_like_conditions() -> None:
    policy = _policy(
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": "*",
            "Condition": {
                "Null": {"aws:SourceArn": "false"},
                "ArnLike": {"aws:SourceArn": "arn:aws:events:*:*:rule/*"},
            },
        }
    )
    rule = {"aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/data"}
    assert evaluate([policy], Request("lambda:InvokeFunction", "*", rule)).allowed
    assert not evaluate([policy], Request("lambda:InvokeFunction", "*", {})).allowed


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"Statement": []}, "non-empty"),
        ({"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}, "Effect"),
        ({"Statement": [{"Effect": "Allow", "Resource": "*"}]}, "Action and NotAction"),
        ({"Statement": [{"Effect": "Allow", "Action": "*"}]}, "Resource and NotResource"),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "arn:${aws:username}"}]}, "variables"),
        ({"Statement": [{"Effect": "Allow", "Action": 3, "Resource": "*"}]}, "list of strings"),
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"DateLess": {}}}
                ]
            },
            "not supported",
        ),
        ({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}, "Principal"),
    ],
)
def test_documents_it_cannot_read_are_rejected(document: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy("bad", document)
