"""start-training against the emulator: real S3 and Step Functions calls, the events of tests/events/."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from deployer.lambdas import start_training
from deployer.lambdas.pipeline_job import EventError, PipelineJob
from harness.emulator import EmbeddedEmulator
from tests.deployer.conftest import (
    PROJECT,
    LambdaContext,
    RecordingReporter,
    load_event,
    training_machine,
    training_result,
    wait_execution,
)

DIGEST = "sha256:" + "4f" * 32
BUILD: dict[str, Any] = {
    "ImageUri": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{PROJECT}@{DIGEST}",
    "ImageDigest": DIGEST,
    "CommitId": "9fceb02d0ae598e95dc970b74767f19372d61af8",
    "Hyperparameters": {"model_preset": "tiny", "epochs": "8", "learning_rate": "0.002"},
}
CSV = "Query,Intent\nwhat is my balance,balance\nbook a table for two,restaurant_reservation\n"


@pytest.fixture(scope="module")
def machines(emulator: EmbeddedEmulator, platform: dict[str, str]) -> dict[str, str]:
    good = training_machine(emulator, platform, "st-good", training_result(0.93))
    poor = training_machine(emulator, platform, "st-poor", training_result(0.41))
    slow = emulator.client("stepfunctions").create_state_machine(
        name="st-slow",
        definition=json.dumps(
            {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 2, "End": True}}}
        ),
        roleArn="arn:aws:iam::123456789012:role/test",
    )["stateMachineArn"]
    return {"good": good, "poor": poor, "slow": slow}


@pytest.fixture(scope="module")
def data(emulator: EmbeddedEmulator, platform: dict[str, str]) -> None:
    emulator.client("s3").put_object(
        Bucket=platform["DataBucketName"], Key="data/intents/train.csv", Body=CSV.encode()
    )


def settings_for(
    platform: dict[str, str], machine: str, endpoint: str = "st-endpoint"
) -> start_training.Settings:
    return start_training.Settings.from_env(
        {
            "STATE_MACHINE_ARN": machine,
            "NAME_PREFIX": PROJECT,
            "DATA_BUCKET": platform["DataBucketName"],
            "DATA_PREFIX": "data/intents/",
            "ARTIFACT_BUCKET": platform["ArtifactBucketName"],
            "ENDPOINT_NAME": endpoint,
            "CANDIDATE_ENDPOINT_NAME": f"{endpoint}-candidate",
            "QUALITY_THRESHOLD": "0.85",
            "POLL_SECONDS": "0.05",
        }
    )


def clients(emulator: EmbeddedEmulator) -> start_training.Clients:
    return start_training.Clients(stepfunctions=emulator.client("stepfunctions"), s3=emulator.client("s3"))


def pipeline_job(emulator: EmbeddedEmulator, bucket: str, key: str, record: object) -> PipelineJob:
    """The sample job event, its input artifact (a zip holding build.json) put where the event says."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("build.json", json.dumps(record))
    emulator.client("s3").put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    event = load_event("codepipeline_job")
    location = event["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"]
    location.update(bucketName=bucket, objectKey=key)
    # The sample's artifact credentials are AWS's format; the emulator takes the test's own.
    event["CodePipeline.job"]["data"]["artifactCredentials"] = {}
    return PipelineJob.from_event(event)


@pytest.fixture
def reporter() -> RecordingReporter:
    return RecordingReporter()


def test_a_pipeline_job_trains_and_reports_the_execution(
    emulator: EmbeddedEmulator,
    platform: dict[str, str],
    machines: dict[str, str],
    data: None,
    reporter: RecordingReporter,
) -> None:
    settings = settings_for(platform, machines["good"])
    job = pipeline_job(emulator, platform["ArtifactBucketName"], "pipe/BuildOutpu/good", BUILD)
    result = start_training.run_pipeline_action(job, settings, clients(emulator), reporter, lambda: 60_000)
    assert reporter.failures == []
    [success] = reporter.successes
    assert success["job_id"] == job.id and success["continuation_token"] is None
    variables = success["output_variables"]
    assert variables["Accuracy"] == "0.93"
    execution = emulator.client("stepfunctions").describe_execution(executionArn=variables["ExecutionArn"])
    assert execution["status"] == "SUCCEEDED" and result["status"] == "SUCCEEDED"
    given = json.loads(execution["input"])
    assert given["TrainingImage"] == BUILD["ImageUri"]
    assert given["CommitId"] == BUILD["CommitId"] and given["ImageDigest"] == DIGEST
    assert given["Hyperparameters"] == BUILD["Hyperparameters"]
    assert given["TrainingData"] == f"s3://{platform['DataBucketName']}/data/intents/"
    assert given["OutputPath"] == f"s3://{platform['ArtifactBucketName']}/models/"
    assert given["QualityThreshold"] == 0.85 and given["Trigger"] == "codepipeline"
    # A pipeline run deploys to the candidate endpoint; PublishApi promotes its config after approval.
    assert given["EndpointName"] == variables["EndpointName"] == "st-endpoint-candidate"
    assert given["DataVersion"] == start_training.data_version(
        emulator.client("s3"), platform["DataBucketName"], "data/intents/"
    )
    assert execution["name"].startswith(f"{PROJECT}-{BUILD['CommitId'][:8]}-{given['DataVersion'][:8]}-")
    assert variables["ModelName"] == f"{execution['name']}-model"
    assert variables["EndpointConfigName"] == f"{execution['name']}-config"
    # The record now names what new data retrains.
    latest = emulator.client("s3").get_object(Bucket=platform["ArtifactBucketName"], Key="builds/latest.json")
    assert json.loads(latest["Body"].read()) == BUILD


def test_a_retried_job_follows_the_same_execution(
    emulator: EmbeddedEmulator,
    platform: dict[str, str],
    machines: dict[str, str],
    data: None,
) -> None:
    settings = settings_for(platform, machines["good"])
    arns = []
    for attempt in ("a", "b"):
        reporter = RecordingReporter()
        job = pipeline_job(
            emulator, platform["ArtifactBucketName"], f"pipe/BuildOutpu/retry-{attempt}", BUILD
        )
        start_training.run_pipeline_action(job, settings, clients(emulator), reporter, lambda: 60_000)
        arns.append(reporter.successes[0]["output_variables"]["ExecutionArn"])
    assert arns[0] == arns[1]
    executions = emulator.client("stepfunctions").list_executions(stateMachineArn=machines["good"])[
        "executions"
    ]
    assert [e["executionArn"] for e in executions].count(arns[0]) == 1


def test_a_failed_execution_fails_the_action_with_its_cause(
    emulator: EmbeddedEmulator,
    platform: dict[str, str],
    machines: dict[str, str],
    data: None,
    reporter: RecordingReporter,
) -> None:
    settings = settings_for(platform, machines["poor"])
    job = pipeline_job(emulator, platform["ArtifactBucketName"], "pipe/BuildOutpu/poor", BUILD)
    result = start_training.run_pipeline_action(job, settings, clients(emulator), reporter, lambda: 60_000)
    assert reporter.successes == []
    [(job_id, message)] = reporter.failures
    assert job_id == job.id
    assert "training execution FAILED" in message
    assert "held-out accuracy 0.41 is below the quality threshold 0.85" in message
    assert result["status"] == "FAILED"


def test_a_long_execution_continues_with_a_token_then_reports(
    emulator: EmbeddedEmulator,
    platform: dict[str, str],
    machines: dict[str, str],
    data: None,
) -> None:
    settings = settings_for(platform, machines["slow"])
    first = RecordingReporter()
    job = pipeline_job(emulator, platform["ArtifactBucketName"], "pipe/BuildOutpu/slow", BUILD)
    # No time left: the action must hand CodePipeline a continuation token at once.
    start_training.run_pipeline_action(job, settings, clients(emulator), first, lambda: 1_000)
    [handed] = first.successes
    token = handed["continuation_token"]
    assert token is not None and token.startswith("arn:aws:states:") and handed["output_variables"] == {}
    event = load_event("codepipeline_job")
    event["CodePipeline.job"]["data"]["continuationToken"] = token
    second = RecordingReporter()
    start_training.run_pipeline_action(
        PipelineJob.from_event(event), settings, clients(emulator), second, lambda: 60_000
    )
    assert second.failures == []
    assert second.successes[0]["output_variables"]["ExecutionArn"] == token


def test_a_build_artifact_without_a_record_fails_the_action(
    emulator: EmbeddedEmulator,
    platform: dict[str, str],
    machines: dict[str, str],
    reporter: RecordingReporter,
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("other.txt", "no record here")
    bucket = platform["ArtifactBucketName"]
    emulator.client("s3").put_object(Bucket=bucket, Key="pipe/BuildOutpu/empty", Body=archive.getvalue())
    event = load_event("codepipeline_job")
    event["CodePipeline.job"]["data"]["inputArtifacts"][0]["location"]["s3Location"].update(
        bucketName=bucket, objectKey="pipe/BuildOutpu/empty"
    )
    event["CodePipeline.job"]["data"]["artifactCredentials"] = {}
    settings = settings_for(platform, machines["good"])
    start_training.run_pipeline_action(
        PipelineJob.from_event(event), settings, clients(emulator), reporter, lambda: 60_000
    )
    [(_, message)] = reporter.failures
    assert "has no 'build.json'" in message


def test_the_endpoint_is_part_of_the_execution_name() -> None:
    """A pipeline run (candidate endpoint) and a data-triggered run (serving endpoint) of the same build
    and data are two executions: neither follows the other's deployment."""
    build = start_training.BuildRecord.from_json(json.dumps(BUILD))
    names = {
        start_training.execution_name(PROJECT, build, "0f1e2d3c4b5a6978", 0.85, endpoint)
        for endpoint in ("st-endpoint", "st-endpoint-candidate", "st-endpoint")
    }
    assert len(names) == 2


def test_the_candidate_endpoint_must_not_be_the_serving_one() -> None:
    environ = {
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:x",
        "NAME_PREFIX": PROJECT,
        "DATA_BUCKET": "data",
        "DATA_PREFIX": "data/intents/",
        "ARTIFACT_BUCKET": "artifacts",
        "ENDPOINT_NAME": "st-endpoint",
        "CANDIDATE_ENDPOINT_NAME": "st-endpoint",
        "QUALITY_THRESHOLD": "0.85",
    }
    with pytest.raises(RuntimeError, match="CANDIDATE_ENDPOINT_NAME must differ"):
        start_training.Settings.from_env(environ)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"ImageDigest": "latest"}, "ImageDigest"),
        ({"ImageUri": "repo:latest"}, "digest form"),
        ({"CommitId": "not a commit!"}, "CommitId"),
        ({"Hyperparameters": {"epochs": True}}, "Hyperparameters"),
    ],
)
def test_a_bad_build_record_is_rejected(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(EventError, match=complaint):
        start_training.BuildRecord.from_json(json.dumps({**BUILD, **change}))


@pytest.fixture
def handler_env(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, platform: dict[str, str], machines: dict[str, str]
) -> Iterator[None]:
    for key, value in {
        "STATE_MACHINE_ARN": machines["good"],
        "NAME_PREFIX": PROJECT,
        "DATA_BUCKET": platform["DataBucketName"],
        "DATA_PREFIX": "data/intents/",
        "ARTIFACT_BUCKET": platform["ArtifactBucketName"],
        "ENDPOINT_NAME": "st-endpoint",
        "CANDIDATE_ENDPOINT_NAME": "st-endpoint-candidate",
        "QUALITY_THRESHOLD": "0.85",
    }.items():
        monkeypatch.setenv(key, value)
    yield


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    event = load_event("eventbridge_s3_object_created")
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def test_new_data_starts_a_run_of_the_last_build(
    emulator: EmbeddedEmulator,
    platform: dict[str, str],
    handler_env: None,
) -> None:
    s3 = emulator.client("s3")
    s3.put_object(
        Bucket=platform["ArtifactBucketName"], Key="builds/latest.json", Body=json.dumps(BUILD).encode()
    )
    s3.put_object(Bucket=platform["DataBucketName"], Key="data/intents/more.csv", Body=CSV.encode())
    event = s3_event(platform["DataBucketName"], "data/intents/more.csv")
    result = start_training.handler(event, LambdaContext())
    assert result["status"] == "STARTED"
    execution = wait_execution(emulator, result["executionArn"])
    given = json.loads(execution["input"])
    assert given["Trigger"] == "s3" and given["CommitId"] == BUILD["CommitId"]
    # New data has no approval to wait for: it deploys to the serving endpoint.
    assert given["EndpointName"] == "st-endpoint"
    assert given["DataVersion"] == start_training.data_version(
        s3, platform["DataBucketName"], "data/intents/"
    )
    assert execution["status"] == "SUCCEEDED"


def test_an_object_outside_the_data_prefix_is_skipped(platform: dict[str, str], handler_env: None) -> None:
    result = start_training.handler(s3_event(platform["DataBucketName"], "other/readme.txt"), LambdaContext())
    assert result["status"] == "SKIPPED"


def test_new_data_before_any_build_is_a_clear_error(
    emulator: EmbeddedEmulator,
    platform: dict[str, str],
    handler_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator.client("s3").create_bucket(Bucket="st-no-builds")
    monkeypatch.setenv("ARTIFACT_BUCKET", "st-no-builds")
    with pytest.raises(EventError, match="run the pipeline once first"):
        start_training.handler(
            s3_event(platform["DataBucketName"], "data/intents/train.csv"), LambdaContext()
        )


def test_an_event_of_another_kind_is_rejected(handler_env: None) -> None:
    with pytest.raises(EventError, match="expected a CodePipeline job or an EventBridge"):
        start_training.handler(load_event("apigateway_proxy_post"), LambdaContext())


def test_the_data_version_follows_the_data(emulator: EmbeddedEmulator) -> None:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="st-versions")
    s3.put_object(Bucket="st-versions", Key="d/a.csv", Body=b"Query,Intent\na,b\n")
    first = start_training.data_version(s3, "st-versions", "d/")
    assert start_training.data_version(s3, "st-versions", "d/") == first
    s3.put_object(Bucket="st-versions", Key="d/a.csv", Body=b"Query,Intent\na,c\n")
    assert start_training.data_version(s3, "st-versions", "d/") != first
    with pytest.raises(EventError, match="no training data"):
        start_training.data_version(s3, "st-versions", "empty/")


def test_a_rerun_after_a_failed_execution_starts_a_new_one(
    emulator: EmbeddedEmulator, platform: dict[str, str], machines: dict[str, str], data: None
) -> None:
    """StartExecution refuses the name of a closed execution (ExecutionAlreadyExists, see
    tests/conformance/test_stepfunctions_executions.py): a re-run of a failed one (a capacity failure,
    say) starts `<name>-r2` with the same inputs, while a succeeded one is followed."""
    sfn = emulator.client("stepfunctions")
    build = start_training.BuildRecord.from_json(json.dumps(BUILD))
    settings = settings_for(platform, machines["poor"], endpoint="st-rerun")
    first = start_training.start_execution(build, settings, clients(emulator), "s3", "st-rerun")
    assert wait_execution(emulator, first)["status"] == "FAILED"
    second = start_training.start_execution(build, settings, clients(emulator), "s3", "st-rerun")
    assert second == f"{first}-r2"
    assert json.loads(sfn.describe_execution(executionArn=second)["input"]) == json.loads(
        sfn.describe_execution(executionArn=first)["input"]
    )
    good = settings_for(platform, machines["good"], endpoint="st-rerun-good")
    done = start_training.start_execution(build, good, clients(emulator), "s3", "st-rerun-good")
    assert wait_execution(emulator, done)["status"] == "SUCCEEDED"
    assert start_training.start_execution(build, good, clients(emulator), "s3", "st-rerun-good") == done


def test_new_data_waits_for_the_upload_to_settle(
    emulator: EmbeddedEmulator, platform: dict[str, str]
) -> None:
    """S3 sends one event per object (S3 User Guide, Amazon S3 Event Notifications): each file of an
    upload invokes the function, and each waits until the data has not changed for POLL_SECONDS, so all
    of them name the execution of the whole upload."""
    s3 = emulator.client("s3")
    bucket = platform["DataBucketName"]
    s3.put_object(Bucket=bucket, Key="settle/part-1.csv", Body=CSV.encode())
    before = start_training.data_version(s3, bucket, "settle/")
    uploads = iter(["settle/part-2.csv", "settle/part-3.csv"])

    def remaining_ms() -> int:
        key = next(uploads, None)
        if key is not None:  # another file of the upload lands while the function waits
            s3.put_object(Bucket=bucket, Key=key, Body=CSV.encode())
        return 60_000

    settled = start_training.settled_data_version(s3, bucket, "settle/", 0.01, remaining_ms)
    assert settled != before
    assert settled == start_training.data_version(s3, bucket, "settle/")
    assert next(uploads, None) is None
