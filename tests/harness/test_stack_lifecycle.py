"""`LocalAws` starts its parts in order, stops them all (twice, and on Ctrl-C), validates its options,
and with an external endpoint embeds nothing. No training here: see test_stack_flow.py for that."""

from __future__ import annotations

import csv
import io
import json
import socket
from pathlib import Path

import pytest

from deployer.lambdas.contracts import BuildRecord
from harness import context as harness_context
from harness.datasets import LabelledQuery, write_csv
from harness.emulator import ACCOUNT_ID, REGION, EmbeddedEmulator
from harness.local import LocalAws, LocalAwsError, LocalAwsOptions


def read_csv_text(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"))))


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"runtime": "podman"}, "runtime must be"),
        ({"time_scale": 0.0}, "time_scale must be"),
        ({"endpoint_startup_limit_s": -1.0}, "endpoint_startup_limit_s must be"),
        ({"external_endpoint_url": "127.0.0.1:4566"}, "http"),
    ],
)
def test_options_are_checked_where_they_are_given(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LocalAwsOptions(work_dir=tmp_path, **changes)  # type: ignore[arg-type]


def test_it_starts_every_part_and_stops_them_all_idempotently(tmp_path: Path) -> None:
    aws = LocalAws(LocalAwsOptions(work_dir=tmp_path, time_scale=0.05))
    with aws:
        emulator_port = int(aws.endpoint_url.rsplit(":", 1)[1])
        gateway_port = aws.gateway.port
        assert aws.embedded
        assert aws.client("s3").list_buckets()["Buckets"] == []
        context = harness_context.current()
        assert context is aws.context and context.step_functions.scale == 0.05
        assert context.plane is aws.plane and aws.plane.runtime.name == "process"
        assert aws.plane.work_dir == (tmp_path / "compute").resolve()
        assert _listening(emulator_port) and _listening(gateway_port)
        with pytest.raises(LocalAwsError, match="deploy"):
            aws.put_training_data([])
        with pytest.raises(LocalAwsError, match="already started"):
            aws.start()
    assert harness_context.current() is None and context.plane is None
    assert not _listening(emulator_port) and not _listening(gateway_port)
    aws.stop()  # a second stop does nothing
    with pytest.raises(LocalAwsError, match="not started"):
        aws.client("s3")


def test_an_interrupt_inside_the_block_still_stops_everything(tmp_path: Path) -> None:
    aws = LocalAws(LocalAwsOptions(work_dir=tmp_path))
    with pytest.raises(KeyboardInterrupt), aws:
        port = int(aws.endpoint_url.rsplit(":", 1)[1])
        raise KeyboardInterrupt
    assert harness_context.current() is None and not _listening(port)
    # The process is free for the next stack (moto's state is process-wide).
    with LocalAws(LocalAwsOptions(work_dir=tmp_path)) as again:
        assert again.client("s3").list_buckets()["Buckets"] == []


def test_with_an_external_endpoint_nothing_is_embedded(tmp_path: Path) -> None:
    # The "external" endpoint is an emulator this test runs itself: nothing else answers offline.
    with EmbeddedEmulator() as elsewhere:
        elsewhere.client("s3").create_bucket(Bucket="made-elsewhere")
        with LocalAws(
            LocalAwsOptions(work_dir=tmp_path, external_endpoint_url=elsewhere.endpoint_url)
        ) as aws:
            assert not aws.embedded
            assert aws.endpoint_url == elsewhere.endpoint_url
            assert [b["Name"] for b in aws.client("s3").list_buckets()["Buckets"]] == ["made-elsewhere"]
            assert harness_context.current() is elsewhere.context and elsewhere.context.plane is None
            with pytest.raises(LocalAwsError, match="compute plane"):
                aws.register_image()
            with pytest.raises(LocalAwsError, match="gateway"):
                _ = aws.gateway
        # Stopping the stack left the endpoint it did not start alone.
        assert elsewhere.client("s3").list_buckets()["Buckets"]


def test_deploy_gives_typed_outputs_and_the_data_helpers_write_what_the_lambdas_read(tmp_path: Path) -> None:
    parameters = {"ProjectName": "life", "QualityThreshold": "0.42", "PublishApiPollSeconds": "0.5"}
    options = LocalAwsOptions(work_dir=tmp_path, stack_prefix="life", parameters=parameters)
    with LocalAws(options) as aws:
        deployed = aws.deploy()
        # What the harness changes reaches the functions as stack parameters, never as patches.
        lambdas = aws.client("lambda")
        start = lambdas.get_function_configuration(FunctionName=deployed.start_training_function)
        publish = lambdas.get_function_configuration(FunctionName=deployed.publish_api_function)
        assert start["Environment"]["Variables"]["QUALITY_THRESHOLD"] == "0.42"
        assert start["Environment"]["Variables"]["POLL_SECONDS"] == "10"  # the template's default
        assert publish["Environment"]["Variables"]["POLL_SECONDS"] == "0.5"
        assert deployed.platform_stack_name == "life-platform"
        assert deployed.state_machine_arn.endswith(":stateMachine:life-training")
        assert deployed.api_stack_name == "life-api" and deployed.data_prefix == "data/intents/"
        assert aws.client("s3").head_bucket(Bucket=deployed.data_bucket)

        csv_file = write_csv(
            tmp_path / "rows.csv", [LabelledQuery("hi there", "greeting"), LabelledQuery("bye", "farewell")]
        )
        data = aws.put_training_data(csv_file, "runs/life/train.csv")
        assert data.uri == f"s3://{deployed.data_bucket}/runs/life/train.csv"
        stored = aws.client("s3").get_object(Bucket=data.bucket, Key=data.key)["Body"].read()
        assert read_csv_text(stored) == [["Query", "Intent"], ["hi there", "greeting"], ["bye", "farewell"]]
        version = aws.data_version("runs/life/")
        aws.put_training_data([LabelledQuery("hello", "greeting")], "runs/life/more.csv")
        assert aws.data_version("runs/life/") != version
        bad = tmp_path / "bad.csv"
        bad.write_text("text,label\nhi,greeting\n", encoding="utf-8")
        with pytest.raises(ValueError, match="Query and Intent"):
            aws.put_training_data(bad, "runs/life/bad.csv")

        image = aws.register_image()
        assert image.uri == f"{deployed.image_repository_uri}@{image.digest}"
        record_uri = aws.write_build_record(image, "a" * 40, {"epochs": "1"})
        record = json.loads(
            aws.client("s3")
            .get_object(Bucket=deployed.artifact_bucket, Key="builds/latest.json")["Body"]
            .read()
        )
        assert record_uri == f"s3://{deployed.artifact_bucket}/builds/latest.json"
        assert BuildRecord.from_json(json.dumps(record)).image_uri == image.uri  # the Lambda's own parser
        with pytest.raises(LocalAwsError, match="publish_api"):
            aws.api()


def test_a_second_stack_in_the_same_process_finds_nothing_of_the_first(tmp_path: Path) -> None:
    """Everything a run leaves lives with its stack: executions and jobs with moto (reset on stop),
    pipeline states on moto's CodePipeline backend, faults, the compute plane, the Lambda runtime and
    the time scale with the emulator's context (closed on stop). The first stack runs a flow (a
    training fault fails the Train state at once, on a real training process) and leaves one of each
    behind; the second stack, started after it in this process, sees none of it."""
    first_options = LocalAwsOptions(work_dir=tmp_path / "first", stack_prefix="one", time_scale=0.05)
    with LocalAws(first_options) as first:
        deployed = first.deploy()
        first.faults.fail_training("injected by the first stack", exit_code=3)
        first.faults.raise_in_lambda(deployed.register_model_function, "injected by the first stack")
        image = first.register_image()
        rows = [LabelledQuery("hi", "greeting"), LabelledQuery("bye", "farewell")]
        data = first.put_training_data(rows, "runs/a/x.csv")
        execution_input = first.execution_input(image, f"s3://{data.bucket}/runs/a/", {"epochs": "1"}, 0.5)
        # Named as start_training names executions (`<ProjectName>-...`): the state machine's role may
        # create training jobs, models and configs under that prefix only.
        started = first.start_execution("gptneo-intent-first-run", execution_input)
        result = first.wait_for_execution(started, timeout_s=300)
        assert result.status == "FAILED" and "injected by the first stack" in (result.cause or "")
        first.context.pipeline_states(ACCOUNT_ID, REGION).publish(
            ACCOUNT_ID, REGION, {"pipelineName": "one-pipeline", "created": 1.0, "stageStates": []}
        )
        first_context, first_plane = first.context, first.plane
        job_name = _job_name(first, result.arn)
        assert first_plane.training.get(ACCOUNT_ID, REGION, job_name) is not None
        answer = first.client("lambda").invoke(FunctionName=deployed.register_model_function, Payload=b"{}")
        assert b"injected by the first stack" in answer["Payload"].read()
        assert first.lambdas.invocations(deployed.register_model_function)
    assert harness_context.current() is None and first_context.plane is None
    assert first_context.faults.replacement("train") is None  # closing cleared the board

    second_options = LocalAwsOptions(work_dir=tmp_path / "second", stack_prefix="one", time_scale=None)
    with LocalAws(second_options) as second:
        context = second.context
        assert context is not first_context and harness_context.current() is context
        assert context.plane is second.plane and second.plane is not first_plane
        assert context.step_functions.scale == 1.0  # the first stack's 0.05 went with it
        assert context.faults.replacement("train") is None
        assert context.faults.lambda_error(deployed.register_model_function) is None
        assert context.lambdas.invocations() == []
        assert context.pipeline_states(ACCOUNT_ID, REGION).get(ACCOUNT_ID, REGION, "one-pipeline") is None
        assert second.client("stepfunctions").list_state_machines()["stateMachines"] == []
        assert second.client("s3").list_buckets()["Buckets"] == []
        assert second.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
        assert second.plane.training.get(ACCOUNT_ID, REGION, job_name) is None
        redeployed = second.deploy()
        sfn = second.client("stepfunctions")
        assert sfn.list_executions(stateMachineArn=redeployed.state_machine_arn)["executions"] == []


def _job_name(aws: LocalAws, execution_arn: str) -> str:
    """The training job an execution created (from its history's TaskScheduled parameters)."""
    history = aws.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    for event in history:
        parameters = event.get("taskScheduledEventDetails", {}).get("parameters")
        if parameters and "TrainingJobName" in parameters:
            return str(json.loads(parameters)["TrainingJobName"])
    raise AssertionError("the execution created no training job")
