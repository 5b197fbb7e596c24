"""The deployed training state machine, run for real in moto's Step Functions engine.

moto cannot run `sagemaker:createTrainingJob.sync` (the harness adds it, issue 4), so these tests run
the definition exactly as CloudFormation deployed it except for the Train state, which becomes a Pass
state returning a DescribeTrainingJob-shaped result, and the endpoint poll's Wait, which becomes 0 s.
Everything after Train is real: the quality gate, and moto's SageMaker for the model, the endpoint
config, DescribeEndpoint and CreateEndpoint. moto has no UpdateEndpoint: that path ends in the
state machine's own clean-up, which these tests check.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from harness.emulator import EmbeddedEmulator
from tests.deployer.conftest import training_machine, training_result, wait_execution

ENDPOINT = "sm-test-endpoint"


@pytest.fixture(scope="module")
def deployed_definition(emulator: EmbeddedEmulator, platform: dict[str, str]) -> dict[str, Any]:
    described = emulator.client("stepfunctions").describe_state_machine(
        stateMachineArn=platform["StateMachineArn"]
    )
    definition: dict[str, Any] = json.loads(described["definition"])
    return definition


class Runner:
    def __init__(self, emulator: EmbeddedEmulator, platform: dict[str, str]) -> None:
        self.emulator = emulator
        self.platform = platform
        self.stepfunctions = emulator.client("stepfunctions")
        self.sagemaker = emulator.client("sagemaker")
        self.count = 0

    def run(self, train: dict[str, Any] | None, threshold: float = 0.85) -> dict[str, Any]:
        """Run the deployed definition (Train replaced unless `train` is None) until it ends."""
        self.count += 1
        machine = training_machine(self.emulator, self.platform, f"sm-test-{self.count}", train)
        execution_input = {
            "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x@sha256:" + "a" * 64,
            "TrainingData": "s3://data/data/intents/",
            "OutputPath": "s3://artifacts/models/",
            "Hyperparameters": {"epochs": "1"},
            "QualityThreshold": threshold,
            "EndpointName": ENDPOINT,
        }
        arn = self.stepfunctions.start_execution(
            stateMachineArn=machine, name=f"run{self.count}", input=json.dumps(execution_input)
        )["executionArn"]
        execution = wait_execution(self.emulator, arn)
        events = self.stepfunctions.get_execution_history(executionArn=arn)["events"]
        execution["path"] = [
            e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
        ]
        return execution

    def models(self) -> set[str]:
        return {m["ModelName"] for m in self.sagemaker.list_models()["Models"]}

    def configs(self) -> set[str]:
        return {c["EndpointConfigName"] for c in self.sagemaker.list_endpoint_configs()["EndpointConfigs"]}


@pytest.fixture(scope="module")
def runner(emulator: EmbeddedEmulator, platform: dict[str, str]) -> Runner:
    return Runner(emulator, platform)


def test_cloudformation_resolved_every_placeholder(deployed_definition: dict[str, Any]) -> None:
    text = json.dumps(deployed_definition)
    assert "${" not in text
    train = deployed_definition["States"]["Train"]["Parameters"]
    assert train["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"  # the fixture's parameter
    variant = deployed_definition["States"]["CreateEndpointConfig"]["Parameters"]["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.large"
    assert train["RoleArn"].startswith("arn:aws:iam::123456789012:role/")
    assert train["EnableNetworkIsolation"] is True


def test_the_metric_definitions_match_the_containers_metric_lines(
    deployed_definition: dict[str, Any],
) -> None:
    definitions = deployed_definition["States"]["Train"]["Parameters"]["AlgorithmSpecification"][
        "MetricDefinitions"
    ]
    log = (
        "epoch=3; train_loss=0.4123;\n"
        "accuracy=0.93; macro_f1=0.912; unknown_rate=1.5e-05; eval_accuracy=0.1;\n"
    )
    found = {d["Name"]: re.findall(d["Regex"], log) for d in definitions}
    assert found == {
        "accuracy": ["0.93"],
        "macro_f1": ["0.912"],
        "unknown_rate": ["1.5e-05"],
        "train_loss": ["0.4123"],
    }


def test_a_good_model_is_deployed_to_a_new_endpoint(runner: Runner) -> None:
    execution = runner.run(training_result(0.93))
    assert execution["status"] == "SUCCEEDED", execution
    name = execution["name"]
    assert execution["path"] == [
        "Train",
        "HasMetrics",
        "ReadMetrics",
        "QualityGate",
        "CreateModel",
        "CreateEndpointConfig",
        "FindEndpoint",
        "CreateEndpoint",
        "WaitForEndpoint",
        "DescribeEndpoint",
        "EndpointReady",
        "Deployed",
    ]
    endpoint = runner.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == f"{name}-config"
    assert f"{name}-model" in runner.models()
    output = json.loads(execution["output"])
    assert output["TrainingJob"]["Accuracy"] == [0.93]
    assert output["Deployment"]["Mode"] == "create"


def test_a_model_below_the_threshold_fails_the_gate_and_creates_nothing(runner: Runner) -> None:
    before = runner.models()
    execution = runner.run(training_result(0.5), threshold=0.85)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "TrainingPipelineFailed"
    assert (
        execution["cause"] == "QualityGateFailed: held-out accuracy 0.5 is below the quality threshold 0.85"
    )
    assert runner.models() == before


@pytest.mark.parametrize("drop", ["accuracy", "FinalMetricDataList"])
def test_a_job_without_an_accuracy_metric_fails_the_gate(runner: Runner, drop: str) -> None:
    result = training_result(None)  # train_loss only
    if drop == "FinalMetricDataList":  # DescribeTrainingJob omits the list when no metric was logged
        del result["FinalMetricDataList"]
    execution = runner.run(result)
    assert execution["status"] == "FAILED"
    assert execution["cause"].startswith("QualityGateFailed: the training job reported no accuracy metric")
    assert execution["path"][-2:] == ["MetricMissing", "ExecutionFailed"]


def test_a_failed_endpoint_update_deletes_only_what_the_run_created(runner: Runner) -> None:
    # Creates the endpoint, unless an earlier test did (then this run is an update, which fails too).
    runner.run(training_result(0.9))
    serving = runner.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    execution = runner.run(training_result(0.95))
    name = execution["name"]
    assert execution["status"] == "FAILED"
    # moto 5.2.5 has no UpdateEndpoint: the task fails, and the Catch cleans up.
    assert "UpdateEndpoint" in execution["cause"]
    assert execution["path"][-4:] == [
        "UpdateEndpoint",
        "DeleteEndpointConfig",
        "DeleteModel",
        "ExecutionFailed",
    ]
    assert f"{name}-model" not in runner.models()
    assert f"{name}-config" not in runner.configs()
    assert serving in runner.configs()
    assert runner.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == serving


def test_without_the_harness_the_unmodified_machine_stops_at_train(runner: Runner) -> None:
    """moto alone has no `.sync` for SageMaker: its engine ends the run at Train (not catchable in ASL)."""
    execution = runner.run(None)
    assert execution["status"] == "FAILED"
    assert "Unsupported sync callback procedure" in execution["cause"]
    assert "createTrainingJob.sync" in execution["cause"]
