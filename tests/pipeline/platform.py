"""The deployer's platform stack deployed into the embedded emulator, read back as the runner reads it.

`deploy_platform()` deploys with the deployer's own code (as `mlops deploy` does) and returns the
pipeline and CodeBuild projects through GetPipeline and BatchGetProjects; `platform_build_project()` is
the platform's CodeBuild project, deployed once per test process in an emulator of its own (call it
while no other emulator runs: one runs per process).
"""

from __future__ import annotations

import functools

from deployer import deploy as deployment
from deployer.client import AwsClient
from harness.emulator import ACCOUNT_ID, EmbeddedEmulator
from harness.pipeline.definition import CodeBuildProject
from harness.pipeline.wiring import DeployedPipeline, deployed_pipeline

# moto's SageMaker lists no ml.g5.* types: any type it lists (as harness.local.EMULATOR_PARAMETERS).
EMULATOR_TYPES = {"TrainingInstanceType": "ml.m5.xlarge", "HostingInstanceType": "ml.m5.large"}


def deploy_platform(emulator: EmbeddedEmulator, prefix: str, **parameters: str) -> DeployedPipeline:
    """Deploys `<prefix>-assets` and `<prefix>-platform` (ProjectName = prefix) and reads the pipeline."""
    client = AwsClient(emulator.session(), endpoint_url=emulator.endpoint_url, poll_seconds=0.05)
    deployment.deploy(client, prefix, {"ProjectName": prefix, **EMULATOR_TYPES, **parameters})
    return deployed_pipeline(
        emulator.client("codepipeline"), emulator.client("codebuild"), f"{prefix}-pipeline", ACCOUNT_ID
    )


@functools.cache
def platform_build_project() -> CodeBuildProject:
    """The platform's CodeBuild project (`gptneo-intent-image`) as BatchGetProjects answers it."""
    with EmbeddedEmulator() as emulator:
        return deploy_platform(emulator, "gptneo-intent").projects["gptneo-intent-image"]
