"""The whole flow with a GPU hosting type, on this machine without a GPU.

The platform deployed with `HostingInstanceType=ml.g4dn.xlarge` (a GPU type moto lists): the pipeline
builds and trains as always; the state machine's hosting plan gives the model
`BYOC_INFERENCE_DEVICE=cuda` and the production variant the hosting AMI whose NVIDIA driver runs the
image's CUDA build (deployer/README.md, "Hosting plan"). Here the container finds a CPU build of torch
and no GPU, so `serve` exits 1 before it answers a ping, as on a GPU host whose driver cannot run the
image's CUDA: the endpoint fails, the execution cleans up what it made and the Train action fails with
the reason. Nothing falls back to serving on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.flow import LocalFlow
from harness.flow_model import FlowOptions
from harness.inputs import training_and_queries
from tests.flow.source_repo import make_source_repository

pytestmark = pytest.mark.slow

AMI = "al2023-ami-sagemaker-inference-gpu-4-1"


def test_a_gpu_hosting_type_without_a_usable_gpu_fails_the_endpoint_and_not_quietly(tmp_path: Path) -> None:
    source = make_source_repository(tmp_path / "source")
    options = FlowOptions(
        work_dir=tmp_path / "work",
        runtime="process",
        approval="auto",
        source=source,
        report_dir=tmp_path / "report",
        parameters={"HostingInstanceType": "ml.g4dn.xlarge"},
    )
    with LocalFlow(options, lambda line: None) as flow:
        training, _ = training_and_queries(None, None, 5)
        flow.put_data(training)
        result = flow.run_pipeline(source)
        sagemaker = flow.stack.client("sagemaker")
        stepfunctions = flow.stack.client("stepfunctions")
        executions = stepfunctions.list_executions(stateMachineArn=flow.stack.deployment.state_machine_arn)[
            "executions"
        ]
        history = stepfunctions.get_execution_history(executionArn=executions[0]["executionArn"])["events"]
        configs = sagemaker.list_endpoint_configs()["EndpointConfigs"]
        models = sagemaker.list_models()["Models"]
        endpoints = sagemaker.list_endpoints()["Endpoints"]
        logs = flow.stack.client("logs")
        flow_endpoint = flow.stack.deployment.endpoint_name
        prefix = "/aws/sagemaker/Endpoints/"
        groups = [g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix=prefix)["logGroups"]]
        cloudwatch = [
            event["message"]
            for group in groups
            for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]
            for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])[
                "events"
            ]
        ]
    assert not result.succeeded
    assert (result.failed_stage, result.failed_action) == ("Train", "StartTraining"), result.reason
    assert "EndpointFailed" in str(result.reason) and "did not reach InService" in str(result.reason)
    assert [execution["status"] for execution in executions] == ["FAILED"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert "CreateGpuEndpointConfig" in entered and "CreateEndpointConfig" not in entered
    scheduled = [e["taskScheduledEventDetails"] for e in history if "taskScheduledEventDetails" in e]
    variants = [
        variant
        for task in scheduled
        if task["resource"] == "createEndpointConfig"
        for variant in json.loads(task["parameters"])["ProductionVariants"]
    ]
    assert variants == [
        {
            "VariantName": "AllTraffic",
            "ModelName": variants[0]["ModelName"],
            "InstanceType": "ml.g4dn.xlarge",
            "InitialInstanceCount": 1,
            "InferenceAmiVersion": AMI,
        }
    ]
    model_tasks = [json.loads(t["parameters"]) for t in scheduled if t["resource"] == "createModel"]
    assert [task["PrimaryContainer"]["Environment"] for task in model_tasks] == [
        {"BYOC_INFERENCE_DEVICE": "cuda"}
    ]
    # The execution created the endpoint, which served nothing: its clean-up deleted all it made.
    assert (configs, models, endpoints) == ([], [], [])
    # The container's own log (the endpoint's CloudWatch stream on AWS) says why it did not start.
    logs = [path.read_text(encoding="utf-8") for path in (tmp_path / "work").rglob("serve.log")]
    assert logs and all("model_load_failed" in text and "CPU build" in text for text in logs), logs
    # ... and so does its CloudWatch stream, written with the model's execution role (the endpoint the
    # state machine deploys first is the candidate: deployer/README.md).
    assert groups == [f"{prefix}{flow_endpoint}-candidate"], groups
    assert any("model_load_failed" in line and "CPU build" in line for line in cloudwatch), cloudwatch
