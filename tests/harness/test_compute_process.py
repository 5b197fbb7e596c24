"""The process runtime, the runtime table and the training job's pure parts (no emulator).

The image here is the stand-in source tree (tests/harness/standin.py), not the real container: these
tests check the runtime's contract (moved /opt/ml, the log, exit status, SIGTERM), which does not
depend on the model. The real container runs in test_compute_real_container.py.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.compute.container_runtime import ImageNotFound, digest_of
from harness.compute.process import ProcessRuntime, tree_digest
from harness.compute.runtimes import RUNTIMES, choose_runtime
from harness.compute.training import MetricDefinition, TrainingJobError, TrainingJobSpec, final_metrics
from tests.harness.standin import write_standin_tree


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_standin_tree(tmp_path / "tree")


def _opt_ml(base: Path, hyperparameters: dict[str, str], rows: str) -> Path:
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {"TrainingInputMode": "File"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    data = base / "input" / "data" / "training"
    data.mkdir(parents=True)
    (data / "part.csv").write_text(rows)
    (base / "model").mkdir()
    (base / "output").mkdir()
    return base


def test_the_digest_follows_the_content_of_the_container_folder(tree: Path) -> None:
    first = tree_digest(tree)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", first)
    (tree / "container" / "__pycache__").mkdir()
    (tree / "container" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert tree_digest(tree) == first, "caches are not part of the image"
    (tree / "container" / "train").write_text("#!/usr/bin/env python3\nprint('changed')\n")
    assert tree_digest(tree) != first


def test_register_and_resolve_by_the_digest_an_image_uri_names(tree: Path) -> None:
    runtime = ProcessRuntime()
    digest = runtime.register(tree)
    uri = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/byoc@{digest}"
    assert digest_of(uri) == digest
    assert runtime.resolve(uri).reference == str(tree.resolve())
    with pytest.raises(ImageNotFound, match="names none"):
        runtime.resolve("123456789012.dkr.ecr.us-east-1.amazonaws.com/byoc:latest")
    with pytest.raises(ImageNotFound, match="no source tree"):
        runtime.resolve("byoc@sha256:" + "0" * 64)


def test_a_tree_without_the_programs_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "container").mkdir()
    (tmp_path / "container" / "train").write_text("")
    with pytest.raises(ImageNotFound, match="container/serve missing"):
        ProcessRuntime().register(tmp_path)


def test_the_runtime_table_is_explicit() -> None:
    assert set(RUNTIMES) == {"docker", "process"}
    assert choose_runtime("process").name == "process"
    assert choose_runtime("auto").name in RUNTIMES
    with pytest.raises(ValueError, match="unknown container runtime 'podman'"):
        choose_runtime("podman")


def test_train_runs_with_a_moved_opt_ml_and_its_log_kept(tree: Path, tmp_path: Path) -> None:
    runtime = ProcessRuntime()
    image = runtime.resolve(f"byoc@{runtime.register(tree)}")
    base = _opt_ml(tmp_path / "opt" / "ml", {}, "Query,Intent\nhi,greet\nyo,greet\nbye,leave\n")
    process = runtime.start_training(image, base, tmp_path / "train.log", {})
    assert process.wait(30) == 0
    assert json.loads((base / "model" / "model.json").read_text())["intent"] == "greet"
    assert "accuracy=0.6667;" in (tmp_path / "train.log").read_text()


def test_sigterm_reaches_the_training_process(tree: Path, tmp_path: Path) -> None:
    runtime = ProcessRuntime()
    image = runtime.resolve(f"byoc@{runtime.register(tree)}")
    base = _opt_ml(tmp_path / "opt" / "ml", {"sleep": "60"}, "Query,Intent\nhi,greet\n")
    process = runtime.start_training(image, base, tmp_path / "train.log", {})
    deadline = time.monotonic() + 30
    while "training starts" not in (tmp_path / "train.log").read_text():  # its SIGTERM handler is set
        assert time.monotonic() < deadline, "the stand-in never started"
        time.sleep(0.05)
    started = time.monotonic()
    process.terminate()
    assert process.wait(10) == 143  # the stand-in's SIGTERM handler exits 128 + SIGTERM
    assert time.monotonic() - started < 5


def test_final_metrics_take_each_metrics_last_value() -> None:
    definitions = (
        MetricDefinition("accuracy", re.compile(r"accuracy=([0-9.]+);")),
        MetricDefinition("absent", re.compile(r"absent=([0-9.]+);")),
    )
    at = datetime.now(UTC)
    log = "epoch 1 accuracy=0.5;\nepoch 2 accuracy=0.75; other\n"
    assert final_metrics(log, definitions, at) == [{"MetricName": "accuracy", "Value": 0.75, "Timestamp": at}]


def _request(**changes: object) -> dict[str, object]:
    request: dict[str, object] = {
        "TrainingJobName": "job",
        "AlgorithmSpecification": {"TrainingImage": "byoc@sha256:" + "1" * 64, "TrainingInputMode": "File"},
        "InputDataConfig": [
            {"ChannelName": "training", "DataSource": {"S3DataSource": {"S3Uri": "s3://data/train/"}}}
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://data/out/"},
    }
    request.update(changes)
    return request


def test_the_model_artifact_goes_under_the_output_path() -> None:
    spec = TrainingJobSpec.from_request(_request())
    assert str(spec.model_artifact_uri) == "s3://data/out/job/output/model.tar.gz"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"AlgorithmSpecification": {"TrainingInputMode": "File"}}, "TrainingImage is required"),
        (
            {"AlgorithmSpecification": {"TrainingImage": "x@sha256:1", "TrainingInputMode": "Pipe"}},
            "Pipe",
        ),
        (
            {
                "AlgorithmSpecification": {
                    "TrainingImage": "x",
                    "MetricDefinitions": [{"Name": "a", "Regex": "accuracy=("}],
                }
            },
            "invalid Regex",
        ),
        (
            {
                "AlgorithmSpecification": {
                    "TrainingImage": "x",
                    "MetricDefinitions": [{"Name": "a", "Regex": "a="}],
                }
            },
            "must capture",
        ),
        (
            {
                "InputDataConfig": [
                    {
                        "ChannelName": "training",
                        "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://d/m"}},
                    }
                ]
            },
            "ManifestFile",
        ),
        ({"OutputDataConfig": {"S3OutputPath": "/local/path"}}, "s3://"),
        ({"HyperParameters": {"epochs": 3}}, "strings to strings"),
    ],
)
def test_requests_the_harness_cannot_honour_are_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingJobError, match=message):
        TrainingJobSpec.from_request(_request(**changes))
