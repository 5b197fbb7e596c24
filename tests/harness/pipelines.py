"""A CodePipeline pipeline made with moto's own CreatePipeline, for the seams' tests."""

from __future__ import annotations

import json

from harness.emulator import EmbeddedEmulator


def create_pipeline(emulator: EmbeddedEmulator, name: str) -> None:
    """A pipeline made with CreatePipeline (moto's own: it checks that CodePipeline may assume the role)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "codepipeline.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = emulator.client("iam").create_role(
        RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust)
    )
    action = {"category": "Source", "owner": "AWS", "provider": "CodeCommit", "version": "1"}
    stages = [
        {"name": stage, "actions": [{"name": stage, "actionTypeId": action, "configuration": {}}]}
        for stage in ("One", "Two")
    ]
    emulator.client("codepipeline").create_pipeline(
        pipeline={
            "name": name,
            "roleArn": role["Role"]["Arn"],
            "artifactStore": {"type": "S3", "location": "bucket"},
            "stages": stages,
        }
    )
