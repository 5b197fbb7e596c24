"""The deployer's state machine against AWS's durations (the `aws` timing profile, harness/timing.py):
every retry budget and poll that waits for SageMaker must outlast what SageMaker takes on AWS, or a
flow that passes locally (where an endpoint starts in a second) fails there.

Retry arithmetic: Step Functions developer guide, "Handling errors in Step Functions workflows",
Retrying after an error: the n-th retry waits IntervalSeconds x BackoffRate^(n-1), capped at
MaxDelaySeconds, for MaxAttempts retries.
"""

from __future__ import annotations

from typing import Any

from harness.timing import AWS
from tests.conformance.sfn_helpers import deployer_state


def retry_budget_s(retrier: dict[str, Any]) -> float:
    """The seconds a Retry waits in all before it gives up (no jitter)."""
    interval = float(retrier.get("IntervalSeconds", 1))
    rate = float(retrier.get("BackoffRate", 2.0))
    cap = float(retrier.get("MaxDelaySeconds", float("inf")))
    return sum(min(interval * rate**attempt, cap) for attempt in range(int(retrier.get("MaxAttempts", 3))))


def test_the_update_endpoint_retry_outlasts_an_endpoint_update_on_aws() -> None:
    """SageMaker refuses UpdateEndpoint while the endpoint is Updating ("Cannot update in-progress
    endpoint", a ValidationException: SageMaker API Reference, UpdateEndpoint). A run that meets another
    deployment retries until that one ends: its Retry must wait longer than an update takes on AWS
    (AWS.endpoint_update_s, cited in harness/timing.py), or the run fails there."""
    (retrier,) = deployer_state("UpdateEndpoint")["Retry"]
    assert retrier["ErrorEquals"] == ["SageMaker.AmazonSageMakerException"]
    assert retry_budget_s(retrier) > AWS.endpoint_update_s
    assert retry_budget_s(retrier) > AWS.endpoint_create_s  # the other deployment may be a create


def test_the_endpoint_polls_wait_as_long_as_sagemaker_is_creating_or_updating() -> None:
    """DescribeEndpoint (SageMaker API Reference): Creating and Updating are transient statuses that end
    in InService or Failed. The poll after CreateEndpoint/UpdateEndpoint and the wait before an update
    loop without a count while the endpoint is in them, so no AWS duration outlasts them; each lap waits
    less than a tenth of AWS's create time, so the run notices InService within a lap."""
    ready = deployer_state("EndpointReady")
    assert ready["Default"] == "WaitForEndpoint"
    assert {choice.get("Variable") or "" for choice in ready["Choices"]} <= {
        "$.Endpoint.EndpointStatus",
        "",
    }
    poll = deployer_state("WaitForEndpoint")
    assert poll["Next"] == "DescribeEndpoint" and poll["Seconds"] < AWS.endpoint_create_s / 10
    idle = deployer_state("EndpointIdle")
    assert idle["Choices"][0]["Next"] == "WaitForEndpointIdle"
    assert deployer_state("WaitForEndpointIdle")["Next"] == "FindEndpoint"


def test_a_throttled_poll_is_retried_for_longer_than_a_throttling_burst() -> None:
    """The DescribeEndpoint poll's Retry on SageMaker.SageMakerException (throttling and 5xx in an
    aws-sdk task) waits minutes in all: SageMaker's API throttles per account and Region (SageMaker
    developer guide, "Amazon SageMaker AI endpoints and quotas"; AWS re:Post "SageMaker Python SDK
    ThrottlingException": back off and retry), so a burst is outlasted rather than cleaned up."""
    (retrier,) = deployer_state("DescribeEndpoint")["Retry"]
    assert retrier["ErrorEquals"] == ["SageMaker.SageMakerException"]
    assert retry_budget_s(retrier) >= 300
