"""The SageMaker seams: real training jobs and endpoints behind moto's SageMaker API, through boto3.

The image is the stand-in source tree (tests/harness/standin.py), run by the process runtime: these
tests check the lifecycle the harness adds (statuses, failure reasons, metrics, artifacts, stop,
zero-drop updates, error mapping), which does not depend on the model. The real container runs the
same path in test_compute_real_container.py.
"""

from __future__ import annotations

import inspect
import io
import json
import re
import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.sagemaker import models as sagemaker_models
from moto.sagemaker import responses as sagemaker_responses
from moto.sagemakerruntime import responses as runtime_responses

from harness.compute import endpoints as endpoints_module
from harness.compute.plane import ComputePlane
from harness.seams import sagemaker as seam
from tests.harness.planes import ROLE_ARN, Harness, running_harness, training_request, wait_until
from tests.harness.standin import write_standin_tree

GREET_ROWS = "Query,Intent\nhi,greet\nhello,greet\nbye,leave\n"
LEAVE_ROWS = "Query,Intent\nbye,leave\nsee you,leave\nhi,greet\n"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_harness(tmp_path_factory.mktemp("plane"), startup_limit_s=4.0) as running:
        s3 = running.client("s3")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="greet/part-1.csv", Body=GREET_ROWS.encode())
        s3.put_object(Bucket="data", Key="leave/nested/part-1.csv", Body=LEAVE_ROWS.encode())
        yield running


@pytest.fixture(scope="module")
def image(harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> str:
    return harness.image_uri(write_standin_tree(tmp_path_factory.mktemp("standin")))


def _train(
    harness: Harness, image: str, name: str, data: str = "greet/", **hyperparameters: str
) -> dict[str, Any]:
    sagemaker = harness.client("sagemaker")
    request = training_request(
        name, image, f"s3://data/{data}", "s3://data/models/", HyperParameters=hyperparameters
    )
    sagemaker.create_training_job(**request)
    return dict(
        wait_until(
            lambda: sagemaker.describe_training_job(TrainingJobName=name),
            lambda job: job["TrainingJobStatus"] not in ("InProgress", "Stopping"),
            timeout=60,
        )
    )


def _deploy_config(harness: Harness, image: str, name: str, artifact: str) -> str:
    sagemaker = harness.client("sagemaker")
    sagemaker.create_model(
        ModelName=name, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": image, "ModelDataUrl": artifact}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    return name


def _wait_endpoint(harness: Harness, name: str) -> dict[str, Any]:
    sagemaker = harness.client("sagemaker")
    return dict(
        wait_until(
            lambda: sagemaker.describe_endpoint(EndpointName=name),
            lambda endpoint: endpoint["EndpointStatus"] not in ("Creating", "Updating"),
            timeout=30,
        )
    )


def _invoke(harness: Harness, name: str, inputs: object, **extra: Any) -> Any:
    return harness.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, Body=json.dumps({"inputs": inputs}), ContentType="application/json", **extra
    )


@pytest.fixture(scope="module")
def greet_artifact(harness: Harness, image: str) -> str:
    job = _train(harness, image, "greet-job", "greet/")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return str(job["ModelArtifacts"]["S3ModelArtifacts"])


@pytest.fixture(scope="module")
def leave_artifact(harness: Harness, image: str) -> str:
    job = _train(harness, image, "leave-job", "leave/")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    return str(job["ModelArtifacts"]["S3ModelArtifacts"])


# -- the seams' hold on moto -------------------------------------------------------------------------
def test_the_seams_are_in_place_where_moto_looks_for_them(harness: Harness) -> None:
    assert sagemaker_models.sagemaker_backends.backend is seam.HarnessSageMakerBackend  # type: ignore[attr-defined]
    assert seam.HarnessSageMakerBackend.__module__ == "moto.sagemaker.models"
    assert sagemaker_responses.SageMakerResponse.update_endpoint is seam._update_endpoint_response  # type: ignore[attr-defined]
    assert sagemaker_responses.SageMakerResponse.stop_training_job is seam._stop_training_job_response  # type: ignore[attr-defined]
    assert runtime_responses.SageMakerRuntimeResponse.invoke_endpoint is seam._invoke_endpoint
    # The backend methods the seam overrides keep the signatures moto's responses call them with.
    base = sagemaker_models.SageMakerModelBackend
    assert list(inspect.signature(base.create_endpoint).parameters) == [
        "self",
        "endpoint_name",
        "endpoint_config_name",
        "tags",
    ]
    assert "training_job_name" in inspect.signature(base.create_training_job).parameters
    assert {"training_jobs", "endpoints", "endpoint_configs", "_models"} <= set(
        vars(base("us-east-1", "1" * 12))
    )


def test_moto_alone_still_fakes_what_the_seam_makes_real() -> None:
    """If moto ever runs jobs itself, this seam should be revisited."""
    source = inspect.getsource(sagemaker_models.FakeTrainingJob.__init__)
    assert 'self.training_job_status = "Completed"' in source
    assert 'self.endpoint_status = "InService"' in inspect.getsource(sagemaker_models.FakeEndpoint.__init__)


# -- training jobs ---------------------------------------------------------------------------------
def test_a_training_job_runs_and_reports_like_sagemaker(harness: Harness, image: str) -> None:
    job = _train(harness, image, "report-job", "leave/", seed="7")
    assert job["TrainingJobStatus"] == "Completed"
    assert job["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics == {"accuracy": pytest.approx(2 / 3, abs=1e-4), "macro_f1": 0.25}
    assert job["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"] == "accuracy"
    assert job["TrainingEndTime"] >= job["TrainingStartTime"]
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://data/models/report-job/output/model.tar.gz"
    body = (
        harness.client("s3")
        .get_object(Bucket="data", Key="models/report-job/output/model.tar.gz")["Body"]
        .read()
    )
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["model.json"]
        model = json.loads(tar.extractfile("model.json").read())  # type: ignore[union-attr]
    assert model == {"intent": "leave", "seed": "7"}  # nested objects under the prefix were downloaded
    run = harness.plane.training.get("123456789012", "us-east-1", "report-job")
    assert run is not None and "accuracy=0.6667;" in run.log_text()


def test_a_failed_job_carries_the_containers_reason(harness: Harness, image: str) -> None:
    job = _train(harness, image, "failing-job", fail="the CSV has a single intent")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "AlgorithmError: bad data: the CSV has a single intent"
    assert "ModelArtifacts" not in job


def test_a_channel_with_no_objects_fails_as_a_client_error(harness: Harness, image: str) -> None:
    job = _train(harness, image, "no-data-job", "nothing-here/")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(
        "ClientError: channel training: no objects under s3://data/nothing-here/"
    )


def test_a_duplicate_job_name_is_rejected_as_aws_does(
    harness: Harness, image: str, greet_artifact: str
) -> None:
    request = training_request("greet-job", image, "s3://data/greet/", "s3://data/models/")
    with pytest.raises(ClientError) as raised:
        harness.client("sagemaker").create_training_job(**request)
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"


def test_an_unknown_image_fails_the_job(harness: Harness) -> None:
    job = _train(harness, "byoc@sha256:" + "0" * 64, "unknown-image-job")
    assert job["TrainingJobStatus"] == "Failed"
    assert "no source tree with digest" in job["FailureReason"]


def test_stop_training_job_sends_sigterm(harness: Harness, image: str) -> None:
    sagemaker = harness.client("sagemaker")
    request = training_request(
        "stopped-job", image, "s3://data/greet/", "s3://data/models/", HyperParameters={"sleep": "60"}
    )
    sagemaker.create_training_job(**request)
    wait_until(
        lambda: harness.plane.training.get("123456789012", "us-east-1", "stopped-job"),
        lambda run: run is not None and "training starts" in run.log_text(),  # its SIGTERM handler is set
        timeout=30,
    )
    sagemaker.stop_training_job(TrainingJobName="stopped-job")
    job = wait_until(
        lambda: sagemaker.describe_training_job(TrainingJobName="stopped-job"),
        lambda job: job["TrainingJobStatus"] == "Stopped",
        timeout=15,
    )
    assert job["SecondaryStatus"] == "Stopped"
    run = harness.plane.training.get("123456789012", "us-east-1", "stopped-job")
    assert run is not None and run.snapshot().exit_code == 143
    with pytest.raises(ClientError, match="in status Stopped"):
        sagemaker.stop_training_job(TrainingJobName="stopped-job")


def test_max_runtime_stops_the_job(harness: Harness, image: str) -> None:
    sagemaker = harness.client("sagemaker")
    request = training_request(
        "slow-job",
        image,
        "s3://data/greet/",
        "s3://data/models/",
        HyperParameters={"sleep": "60"},
        StoppingCondition={"MaxRuntimeInSeconds": 1},
    )
    sagemaker.create_training_job(**request)
    job = wait_until(
        lambda: sagemaker.describe_training_job(TrainingJobName="slow-job"),
        lambda job: job["TrainingJobStatus"] == "Stopped",
        timeout=20,
    )
    assert job["SecondaryStatus"] == "MaxRuntimeExceeded"


# -- endpoints -------------------------------------------------------------------------------------
def test_an_endpoint_serves_the_trained_model(harness: Harness, image: str, greet_artifact: str) -> None:
    sagemaker = harness.client("sagemaker")
    config = _deploy_config(harness, image, "greet-serving", greet_artifact)
    sagemaker.create_endpoint(EndpointName="serving", EndpointConfigName=config)
    assert sagemaker.describe_endpoint(EndpointName="serving")["EndpointStatus"] == "Creating"
    assert _wait_endpoint(harness, "serving")["EndpointStatus"] == "InService"
    answer = _invoke(harness, "serving", ["hey", "hi there"], CustomAttributes="trace=1")
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert answer["CustomAttributes"] == "trace=1"
    predictions = json.loads(answer["Body"].read())["predictions"]
    assert [p["query"] for p in predictions] == ["hey", "hi there"]
    assert {p["intent"] for p in predictions} == {"greet"}
    with pytest.raises(ClientError, match="Cannot create already existing endpoint"):
        sagemaker.create_endpoint(EndpointName="serving", EndpointConfigName=config)


def test_container_errors_map_to_model_error(harness: Harness, image: str, greet_artifact: str) -> None:
    sagemaker = harness.client("sagemaker")
    sagemaker.create_endpoint(
        EndpointName="errors", EndpointConfigName=_deploy_config(harness, image, "errors", greet_artifact)
    )
    _wait_endpoint(harness, "errors")
    with pytest.raises(ClientError) as server_error:
        _invoke(harness, "errors", "boom")
    response = server_error.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 500
    assert json.loads(response["OriginalMessage"]) == {"error": "the model broke"}
    with pytest.raises(ClientError) as client_error:
        _invoke(harness, "errors", 42)
    assert client_error.value.response["OriginalStatusCode"] == 400
    assert "Received client error (400)" in client_error.value.response["Error"]["Message"]


def test_sagemaker_limits_apply_to_invocations(
    harness: Harness, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sagemaker = harness.client("sagemaker")
    slow_job = _train(harness, image, "slow-answers-job", answer_delay="3")
    config = _deploy_config(harness, image, "slow-answers", slow_job["ModelArtifacts"]["S3ModelArtifacts"])
    sagemaker.create_endpoint(EndpointName="limits", EndpointConfigName=config)
    _wait_endpoint(harness, "limits")
    runtime = harness.client("sagemaker-runtime")
    with pytest.raises(ClientError) as too_big:
        runtime.invoke_endpoint(
            EndpointName="limits", Body=b"x" * (6 * 1024 * 1024 + 1), ContentType="text/csv"
        )
    assert too_big.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    # 60 s in SageMaker; shortened here so that the test takes seconds.
    monkeypatch.setattr(endpoints_module, "INVOCATION_TIMEOUT_S", 1.0)
    with pytest.raises(ClientError) as timed_out:
        _invoke(harness, "limits", "hey")
    assert timed_out.value.response["Error"]["Code"] == "ModelError"
    assert "timed out" in timed_out.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as unknown:
        _invoke(harness, "no-such-endpoint", "hey")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"


def test_an_endpoint_that_never_gets_healthy_fails_with_a_reason(harness: Harness, image: str) -> None:
    job = _train(harness, image, "unhealthy-job", ping_never="1")
    config = _deploy_config(harness, image, "unhealthy", job["ModelArtifacts"]["S3ModelArtifacts"])
    harness.client("sagemaker").create_endpoint(EndpointName="unhealthy", EndpointConfigName=config)
    endpoint = _wait_endpoint(harness, "unhealthy")
    assert endpoint["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check within 4 s" in endpoint["FailureReason"]
    assert _endpoint_log(harness, "unhealthy")  # the stopped container's log, where SageMaker puts it
    with pytest.raises(ClientError, match="is not ready"):
        _invoke(harness, "unhealthy", "hey")


def test_update_switches_models_without_dropping_a_request(
    harness: Harness, image: str, greet_artifact: str, leave_artifact: str
) -> None:
    sagemaker = harness.client("sagemaker")
    sagemaker.create_endpoint(
        EndpointName="rolling",
        EndpointConfigName=_deploy_config(harness, image, "rolling-greet", greet_artifact),
    )
    creating = sagemaker.describe_endpoint(EndpointName="rolling")  # its container has not started yet
    assert creating["EndpointStatus"] == "Creating"
    assert creating["PendingDeploymentSummary"]["EndpointConfigName"] == "rolling-greet"
    _wait_endpoint(harness, "rolling")
    first_container = harness.plane.endpoints._endpoints[("123456789012", "us-east-1", "rolling")].current
    assert first_container is not None
    answers: list[str] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                body = json.loads(_invoke(harness, "rolling", "hey")["Body"].read())
                answers.append(body["predictions"][0]["intent"])
            except Exception as error:
                errors.append(error)

    caller = threading.Thread(target=keep_asking)
    caller.start()
    try:
        wait_until(lambda: len(answers), lambda n: n >= 3, timeout=10)
        sagemaker.update_endpoint(
            EndpointName="rolling",
            EndpointConfigName=_deploy_config(harness, image, "rolling-leave", leave_artifact),
        )
        updating = sagemaker.describe_endpoint(EndpointName="rolling")
        assert updating["EndpointStatus"] == "Updating"
        # The config that serves until the update is done (the new one is the in-progress deployment's,
        # DescribeEndpoint's PendingDeploymentSummary); the state machine's EndpointReady relies on it.
        assert updating["EndpointConfigName"] == "rolling-greet"
        pending = updating["PendingDeploymentSummary"]
        assert pending["EndpointConfigName"] == "rolling-leave"
        assert pending["StartTime"] >= updating["CreationTime"]
        endpoint = _wait_endpoint(harness, "rolling")
        count = len(answers)
        wait_until(lambda: len(answers), lambda n: n >= count + 3, timeout=10)
    finally:
        stop.set()
        caller.join(30)
    assert errors == []
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "rolling-leave"
    assert "PendingDeploymentSummary" not in endpoint  # only while a deployment is in progress
    assert answers[0] == "greet" and answers[-1] == "leave"
    switch = answers.index("leave")
    assert set(answers[:switch]) == {"greet"} and set(answers[switch:]) == {"leave"}
    wait_until(lambda: first_container.serving.process.poll(), lambda code: code is not None, timeout=15)


def _endpoint_log(harness: Harness, name: str) -> list[str]:
    """The messages of the endpoint's one log stream, once it exists (SageMaker developer guide, "Log
    Amazon SageMaker AI Events with Amazon CloudWatch": `/aws/sagemaker/Endpoints/<endpoint>`, a stream
    `<variant>/<instance id>` per instance)."""
    logs = harness.client("logs")
    group = f"/aws/sagemaker/Endpoints/{name}"

    def streams() -> list[dict[str, Any]]:
        try:
            return list(logs.describe_log_streams(logGroupName=group)["logStreams"])
        except logs.exceptions.ResourceNotFoundException:
            return []

    [stream] = wait_until(streams, lambda found: len(found) == 1, timeout=15)
    assert re.fullmatch(r"AllTraffic/i-[0-9a-f]{17}", stream["logStreamName"]), stream

    def messages() -> list[str]:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
        return [event["message"] for event in events]

    # A stream exists before its first PutLogEvents (as on CloudWatch): wait for the events too.
    return wait_until(messages, lambda found: len(found) > 0, timeout=15)


def test_a_serving_containers_log_reaches_cloudwatch_when_it_stops(
    harness: Harness, image: str, greet_artifact: str
) -> None:
    sagemaker = harness.client("sagemaker")
    config = _deploy_config(harness, image, "logged", greet_artifact)
    sagemaker.create_endpoint(EndpointName="logged", EndpointConfigName=config)
    assert _wait_endpoint(harness, "logged")["EndpointStatus"] == "InService"
    replica = harness.plane.endpoints._endpoints[("123456789012", "us-east-1", "logged")].current
    assert replica is not None
    _invoke(harness, "logged", "hey")
    sagemaker.delete_endpoint(EndpointName="logged")
    wait_until(lambda: replica.serving.process.poll(), lambda code: code is not None, timeout=15)
    # The stand-in writes nothing; the real container's lines are checked in tests/flow/test_gpu_hosting.py.
    written = replica.serving.process.log_path.read_text().splitlines()
    assert _endpoint_log(harness, "logged") == (written or ["(the container wrote nothing)"])


# The failed update's rollback is a conformance test: tests/conformance/test_sagemaker_endpoints.py.


def test_delete_endpoint_stops_the_container(harness: Harness, image: str, greet_artifact: str) -> None:
    sagemaker = harness.client("sagemaker")
    sagemaker.create_endpoint(
        EndpointName="short-lived",
        EndpointConfigName=_deploy_config(harness, image, "short-lived", greet_artifact),
    )
    _wait_endpoint(harness, "short-lived")
    replica = harness.plane.endpoints._endpoints[("123456789012", "us-east-1", "short-lived")].current
    assert replica is not None
    sagemaker.delete_endpoint(EndpointName="short-lived")
    wait_until(lambda: replica.serving.process.poll(), lambda code: code is not None, timeout=15)
    with pytest.raises(ClientError, match="not found"):
        _invoke(harness, "short-lived", "hey")


def test_without_a_plane_moto_behaviour_is_kept(harness: Harness, image: str) -> None:
    context = harness.emulator.context
    detached = harness.plane
    context.detach()  # stops the plane's containers
    try:
        sagemaker = harness.client("sagemaker")
        sagemaker.create_training_job(
            **training_request("metadata-only", image, "s3://data/greet/", "s3://data/m/")
        )
        status = sagemaker.describe_training_job(TrainingJobName="metadata-only")["TrainingJobStatus"]
        assert status == "Completed"
        assert detached.training.get("123456789012", "us-east-1", "metadata-only") is None
    finally:  # a plane again for the tests after this one, on the same runtime (registered images)
        harness.plane = ComputePlane.create(
            detached.runtime,
            harness.emulator.endpoint_url,
            detached.work_dir,
            endpoint_startup_limit_s=detached.endpoints.startup_limit_s,
            faults=context.faults,
        )
        context.attach(harness.plane)
