"""The opt-in path: with --aws-account the aws_verified tests talk to AWS's own endpoints."""

from __future__ import annotations

import boto3

from tests.conformance.conftest import aws_target


def test_the_aws_target_uses_aws_endpoints_and_the_default_credential_chain() -> None:
    """Not an AWS behaviour: shows where `--aws-account` sends calls (no request is made here). The
    session is built with dummy keys so that the test needs no account."""
    session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
    target = aws_target("eu-west-1", session)
    assert target.is_aws and target.harness is None
    assert target.client("sagemaker").meta.endpoint_url == "https://api.sagemaker.eu-west-1.amazonaws.com"
    assert target.client("stepfunctions").meta.endpoint_url == "https://states.eu-west-1.amazonaws.com"
    assert target.client("lambda").meta.endpoint_url == "https://lambda.eu-west-1.amazonaws.com"


def test_the_harness_target_uses_the_emulator(target: object) -> None:
    """Without --aws-account every conformance test runs against the harness's emulator on loopback."""
    client = target.client("sagemaker")  # type: ignore[attr-defined]
    assert client.meta.endpoint_url.startswith("http://127.0.0.1:") or "localhost" in client.meta.endpoint_url
