"""The deployed training state machine, run in the emulator's Step Functions engine.

Most tests need no real training: they run the definition exactly as CloudFormation deployed it except
for the Train state, which becomes a Pass state returning a DescribeTrainingJob-shaped result, and the
endpoint poll's Wait, which becomes 0 s. Everything after Train is real: the quality gate, and the
emulator's SageMaker for the model, the endpoint config, DescribeEndpoint, CreateEndpoint and
UpdateEndpoint (without a compute plane these change the endpoint's metadata only, and it is InService
at once). The tests with the `plane` fixture attach a compute plane (see conftest.py): the unmodified
machine then trains and serves for real, and an endpoint update whose model cannot start fails as on
AWS, so the machine's clean-up runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from deployer import compile as compiler
from harness.emulator import EmbeddedEmulator
from tests.deployer.conftest import PROJECT, Plane, training_machine, training_result, wait_execution

ENDPOINT = "dtest-sm-test-endpoint"  # inside the project prefix the roles allow
# The training data lives in the platform's artifact bucket (an object in its data bucket would start the
# pipeline): the SageMaker execution role may read and list both buckets and write under models/ only.
ARTIFACT_BUCKET_OUTPUT = "ArtifactBucketName"
# Most common intent "greet" (2 of 3 rows): the stand-in's model answers it, with accuracy 0.6667.
GREET_CSV = b"Query,Intent\nhi,greet\nhello,greet\nbye,leave\n"


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
        self.bucket = platform[ARTIFACT_BUCKET_OUTPUT]

    def run(
        self,
        train: dict[str, Any] | None,
        threshold: float = 0.85,
        *,
        deployed: bool = False,
        image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/x@sha256:" + "a" * 64,
        endpoint: str = ENDPOINT,
        timeout: float = 30,
        hosting: tuple[dict[str, str], str] | None = None,
        described: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Run the deployed definition until it ends: the deployed machine itself when `deployed`, else
        a copy with Train replaced by `train` (unless None) and the endpoint poll's Wait at 0 s."""
        self.count += 1
        if deployed:
            machine = self.platform["StateMachineArn"]
        else:
            machine = training_machine(
                self.emulator, self.platform, f"sm-test-{self.count}", train, hosting, described
            )
        execution_input = {
            "TrainingImage": image,
            "TrainingData": f"s3://{self.bucket}/test-data/greet/",
            "OutputPath": f"s3://{self.bucket}/models/",
            "Hyperparameters": {"epochs": "1"},
            "QualityThreshold": threshold,
            "EndpointName": endpoint,
        }
        arn = self.stepfunctions.start_execution(
            stateMachineArn=machine, name=f"{PROJECT}-run{self.count}", input=json.dumps(execution_input)
        )["executionArn"]
        execution = wait_execution(self.emulator, arn, timeout)
        events = self.stepfunctions.get_execution_history(executionArn=arn)["events"]
        execution["path"] = [
            e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
        ]
        return execution

    def models(self) -> set[str]:
        return {m["ModelName"] for m in self.sagemaker.list_models()["Models"]}

    def configs(self) -> set[str]:
        return {c["EndpointConfigName"] for c in self.sagemaker.list_endpoint_configs()["EndpointConfigs"]}


# The deployed machine's endpoints for this file alone ("dtest-sm-*"): the platform's own endpoint names
# are shared with the promotion tests of the same package. The state machine's role gets the rights it
# has on the platform's endpoints for these, while this file runs.
SM_ENDPOINTS_POLICY = "statemachine-tests-endpoints"
SM_ENDPOINT_ACTIONS = [
    "sagemaker:CreateEndpoint",
    "sagemaker:UpdateEndpoint",
    "sagemaker:DescribeEndpoint",
    "sagemaker:DeleteEndpoint",
    "sagemaker:AddTags",
]


@pytest.fixture(scope="module")
def runner(emulator: EmbeddedEmulator, platform: dict[str, str]) -> Iterator[Runner]:
    s3 = emulator.client("s3")
    s3.put_object(Bucket=platform[ARTIFACT_BUCKET_OUTPUT], Key="test-data/greet/part.csv", Body=GREET_CSV)
    role = emulator.client("cloudformation").describe_stack_resource(
        StackName=f"{PROJECT}-platform", LogicalResourceId="StateMachineRole"
    )["StackResourceDetail"]["PhysicalResourceId"]
    statement = {
        "Effect": "Allow",
        "Action": SM_ENDPOINT_ACTIONS,
        "Resource": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{PROJECT}-sm-*",
    }
    iam = emulator.client("iam")
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    iam.put_role_policy(RoleName=role, PolicyName=SM_ENDPOINTS_POLICY, PolicyDocument=document)
    yield Runner(emulator, platform)
    iam.delete_role_policy(RoleName=role, PolicyName=SM_ENDPOINTS_POLICY)


def ask(emulator: EmbeddedEmulator, endpoint: str) -> str:
    answer = emulator.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps({"inputs": "hey"}), ContentType="application/json"
    )
    return str(json.loads(answer["Body"].read())["predictions"][0]["intent"])


def test_cloudformation_resolved_every_placeholder(deployed_definition: dict[str, Any]) -> None:
    text = json.dumps(deployed_definition)
    assert "${" not in text
    train = deployed_definition["States"]["Train"]["Parameters"]
    assert train["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"  # the fixture's parameter
    variant = deployed_definition["States"]["CreateEndpointConfig"]["Parameters"]["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.large"
    # Fn::Sub's variables (Fn::If on HostsOnGpu), for a CPU type: onnxruntime on the CPU.
    assert deployed_definition["States"]["PlanHosting"]["Result"] == {"Device": "cpu", "AmiVersion": "none"}
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
        "FirstTrainingAttempt",
        "Train",
        "HasMetrics",
        "ReadMetrics",
        "QualityGate",
        "PlanHosting",
        "CreateModel",
        "HostsOnGpu",
        "CreateEndpointConfig",
        "StartFindingEndpoint",
        "FindEndpoint",
        "EndpointMissing",
        "CreateEndpoint",
        "WaitForEndpoint",
        "DescribeEndpoint",
        "EndpointReady",
        "Deployed",
    ]
    endpoint = runner.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == f"{name}-config"
    assert f"{name}-model" in runner.models()
    container = runner.sagemaker.describe_model(ModelName=f"{name}-model")["PrimaryContainer"]
    assert container["Environment"] == {"BYOC_INFERENCE_DEVICE": "cpu"}
    variant = runner.sagemaker.describe_endpoint_config(EndpointConfigName=f"{name}-config")[
        "ProductionVariants"
    ][0]
    assert "InferenceAmiVersion" not in variant  # GPU AMIs only: a CPU variant is sent none
    output = json.loads(execution["output"])
    assert output["TrainingJob"]["Accuracy"] == [0.93]
    assert output["Deployment"]["Mode"] == "create"
    assert output["Hosting"] == {"Device": "cpu", "AmiVersion": "none"}  # the hosting plan, CPU type


def test_a_gpu_hosting_type_runs_the_model_on_the_gpu_on_the_ami_whose_driver_runs_the_image(
    runner: Runner,
) -> None:
    """The hosting plan CloudFormation renders for a GPU HostingInstanceType (the template's HostsOnGpu
    values; test_compile checks them against SageMaker's AMI list): the model's container gets
    BYOC_INFERENCE_DEVICE=cuda and the variant InferenceAmiVersion, which botocore's model validates
    (the CPU path never sends it). No compute plane here: what the container does with a GPU it cannot
    use (it exits 1, so the endpoint fails) is test_server_process's."""
    variables = compiler.render_platform()["Resources"]["TrainingStateMachine"]["Properties"][
        "DefinitionString"
    ]["Fn::Sub"][1]
    plan = {
        "Device": variables["HostingDevice"]["Fn::If"][1],
        "AmiVersion": variables["HostingAmiVersion"]["Fn::If"][1],
    }
    execution = runner.run(training_result(0.93), endpoint="dtest-sm-gpu", hosting=(plan, "ml.g4dn.xlarge"))
    assert execution["status"] == "SUCCEEDED", execution
    assert "CreateGpuEndpointConfig" in execution["path"]
    assert "CreateEndpointConfig" not in execution["path"]
    name = execution["name"]
    container = runner.sagemaker.describe_model(ModelName=f"{name}-model")["PrimaryContainer"]
    assert container["Environment"] == {"BYOC_INFERENCE_DEVICE": "cuda"}
    config = runner.sagemaker.describe_endpoint_config(EndpointConfigName=f"{name}-config")
    variant = config["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    assert variant["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"


def test_an_endpoint_updating_while_it_serves_this_executions_config_is_deployed(runner: Runner) -> None:
    """Another execution's UpdateEndpoint (which waited for this one's) began between two polls: the
    endpoint is Updating and still names this execution's config, the one that serves (DescribeEndpoint
    names the serving config; the new one is its PendingDeploymentSummary's). This run's deployment
    succeeded; it is not taken for a rollback."""
    name = f"{PROJECT}-run{runner.count + 1}"
    execution = runner.run(
        training_result(0.93),
        endpoint="dtest-sm-superseded",
        described={"EndpointStatus": "Updating", "EndpointConfigName": f"{name}-config"},
    )
    assert execution["name"] == name
    assert execution["status"] == "SUCCEEDED", execution
    assert execution["path"][-3:] == ["DescribeEndpoint", "EndpointReady", "Deployed"]


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


def test_a_good_model_updates_an_existing_endpoint(runner: Runner) -> None:
    runner.run(training_result(0.9), endpoint="dtest-sm-updated")  # creates it
    execution = runner.run(training_result(0.95), endpoint="dtest-sm-updated")
    assert execution["status"] == "SUCCEEDED", execution
    assert execution["path"][9:] == [
        "StartFindingEndpoint",
        "FindEndpoint",
        "EndpointIdle",
        "UpdateEndpoint",
        "WaitForEndpoint",
        "DescribeEndpoint",
        "EndpointReady",
        "Deployed",
    ]
    output = json.loads(execution["output"])
    assert output["Deployment"]["Mode"] == "update"
    previous = output["Deployment"]["PreviousEndpointConfigName"]
    assert previous != f"{execution['name']}-config"
    endpoint = runner.sagemaker.describe_endpoint(EndpointName="dtest-sm-updated")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService",
        f"{execution['name']}-config",
    )
    assert previous in runner.configs()  # the machine never deletes a config it did not create


def test_without_a_compute_plane_a_training_job_runs_nothing_and_deploys_nothing(runner: Runner) -> None:
    """The unmodified machine, no plane attached: the SageMaker seam keeps moto's record of the job
    (Completed at once, a `train:progress` metric only), so the gate finds no accuracy and stops."""
    before = runner.models()
    execution = runner.run(None, endpoint="dtest-sm-no-plane")
    assert execution["status"] == "FAILED"
    assert execution["path"][:3] == ["FirstTrainingAttempt", "Train", "HasMetrics"]
    assert execution["cause"].startswith("QualityGateFailed: the training job reported no accuracy metric")
    assert runner.models() == before
    assert "dtest-sm-no-plane" not in {
        e["EndpointName"] for e in runner.sagemaker.list_endpoints()["Endpoints"]
    }


def test_with_a_compute_plane_the_deployed_machine_trains_and_serves(runner: Runner, plane: Plane) -> None:
    execution = runner.run(
        None,
        threshold=0.5,
        deployed=True,
        image=plane.image,
        endpoint="dtest-sm-served",
        timeout=120,
    )
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    name = execution["name"]
    job = runner.sagemaker.describe_training_job(TrainingJobName=f"{name}-train")
    assert job["TrainingJobStatus"] == "Completed"
    assert {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}["accuracy"] == pytest.approx(
        0.6667
    )
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"s3://{runner.bucket}/models/{name}-train/output/model.tar.gz"
    )
    output = json.loads(execution["output"])
    assert output["TrainingJob"]["Accuracy"] == [pytest.approx(0.6667)]
    assert output["Deployment"]["Mode"] == "create"
    endpoint = runner.sagemaker.describe_endpoint(EndpointName="dtest-sm-served")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", f"{name}-config")
    assert ask(runner.emulator, "dtest-sm-served") == "greet"


def test_a_failed_endpoint_update_deletes_only_what_the_run_created(runner: Runner, plane: Plane) -> None:
    first = runner.run(
        None, threshold=0.5, deployed=True, image=plane.image, endpoint="dtest-sm-steady", timeout=120
    )
    assert first["status"] == "SUCCEEDED", first.get("cause")
    serving = f"{first['name']}-config"
    # A model whose artifact does not exist: the update's container cannot start, the update rolls back
    # (InService, still on the serving config, as SageMaker's does) and the old model keeps answering.
    missing = training_result(0.95)
    missing["ModelArtifacts"]["S3ModelArtifacts"] = f"s3://{runner.bucket}/models/missing/model.tar.gz"
    execution = runner.run(missing, image=plane.image, endpoint="dtest-sm-steady", timeout=120)
    name = execution["name"]
    assert execution["status"] == "FAILED"
    assert execution["error"] == "TrainingPipelineFailed"
    assert execution["cause"] == (
        f"EndpointUpdateFailed: endpoint dtest-sm-steady went back to InService on {serving}, not on the "
        f"config of this execution, {name}-config"
    )
    path = execution["path"]
    assert path[9:13] == ["StartFindingEndpoint", "FindEndpoint", "EndpointIdle", "UpdateEndpoint"]
    # The poll goes round while the endpoint is Updating, then the update path's clean-up (the endpoint
    # itself is kept: it still serves its previous config).
    assert set(path[13:-4]) == {"WaitForEndpoint", "DescribeEndpoint", "EndpointReady"}
    assert path[-4:] == ["UpdateRolledBack", "DeleteEndpointConfig", "DeleteModel", "ExecutionFailed"]
    assert f"{name}-model" not in runner.models()
    assert f"{name}-config" not in runner.configs()
    assert serving in runner.configs()
    endpoint = runner.sagemaker.describe_endpoint(EndpointName="dtest-sm-steady")
    assert endpoint["EndpointConfigName"] == serving
    assert "Failed to download model data" in endpoint["FailureReason"]  # the artifact is missing
    assert ask(runner.emulator, "dtest-sm-steady") == "greet"
