"""The CloudFormation seam: a stack deployed through change sets shows its executed template's outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto.cloudformation import models as cloudformation_models

from harness.emulator import EmbeddedEmulator
from harness.seams import cloudformation as seam

TEMPLATE = {
    "Parameters": {"Suffix": {"Type": "String"}},
    "Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "seam-bucket"}}},
    "Outputs": {"BucketName": {"Value": {"Ref": "Bucket"}}, "Suffix": {"Value": {"Ref": "Suffix"}}},
}


@pytest.fixture(scope="module")
def cloudformation() -> Iterator[Any]:
    with EmbeddedEmulator() as emulator:
        yield emulator.client("cloudformation")


def _execute(client: Any, kind: str, suffix: str) -> dict[str, str]:
    change_set = client.create_change_set(
        StackName="seam-test",
        ChangeSetName=f"cs-{suffix}",
        ChangeSetType=kind,
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": "Suffix", "ParameterValue": suffix}],
    )
    client.execute_change_set(ChangeSetName=change_set["Id"], StackName="seam-test")
    stack = client.describe_stacks(StackName="seam-test")["Stacks"][0]
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}


def test_the_seam_wraps_moto_change_set_apply(cloudformation: Any) -> None:
    assert cloudformation_models.ChangeSet.apply is seam._apply
    assert seam._moto_apply is not seam._apply


def test_outputs_and_parameters_follow_each_executed_change_set(cloudformation: Any) -> None:
    # Without the seam a created stack shows no outputs at all, and an update the previous ones.
    assert _execute(cloudformation, "CREATE", "one") == {"BucketName": "seam-bucket", "Suffix": "one"}
    assert _execute(cloudformation, "UPDATE", "two") == {"BucketName": "seam-bucket", "Suffix": "two"}
    stack = cloudformation.describe_stacks(StackName="seam-test")["Stacks"][0]
    assert stack["Parameters"] == [{"ParameterKey": "Suffix", "ParameterValue": "two"}]
