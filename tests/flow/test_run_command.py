"""`mlops run` end to end, as a user runs it: a commit in, correct HTTP answers out, a JSON summary,
the registry item tied to the commit, the image and the data, and the run report.

One real run (process runtime) in a subprocess, shared by every test of this module.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployer.lambdas.start_training import data_version
from harness.inputs import training_and_queries
from harness.local import csv_bytes
from tests.flow.source_repo import git, hyperparameters, make_source_repository

pytestmark = pytest.mark.slow

MLOPS = Path(sys.executable).parent / "mlops"
PIPELINE_STAGES = ["Source", "Build", "Train", "Approve", "Register", "PublishApi"]
SUMMARY_KEYS = {
    "status",
    "stage_timings_s",
    "execution_arn",
    "endpoint_name",
    "model_version",
    "api_url",
    "api_key",
    "sample_answers",
    "report_dir",
}
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("run-command")
    source = make_source_repository(root / "source")
    done = subprocess.run(
        [
            str(MLOPS),
            "run",
            "--runtime",
            "process",
            "--json",
            "--source",
            str(source),
            "--work-dir",
            str(root / "work"),
            "--report-dir",
            str(root / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    yield {"done": done, "source": source, "root": root}


@pytest.fixture(scope="module")
def summary(run: dict[str, Any]) -> dict[str, Any]:
    done = run["done"]
    assert done.returncode == 0, f"mlops run failed:\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}"
    document: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return document


def test_json_summary_is_the_last_line_with_every_field(run: dict[str, Any], summary: dict[str, Any]) -> None:
    assert set(summary) >= SUMMARY_KEYS, SUMMARY_KEYS - set(summary)
    assert summary["status"] == "succeeded"
    assert "failed_stage" not in summary and "reason" not in summary
    assert list(summary["stage_timings_s"])[: len(PIPELINE_STAGES)] == PIPELINE_STAGES
    assert all(seconds >= 0 for seconds in summary["stage_timings_s"].values())
    assert summary["execution_arn"].startswith("arn:aws:states:")
    assert summary["api_url"].startswith("http://127.0.0.1:") and summary["api_url"].endswith("/v1/predict")
    assert len(summary["api_key"]) >= 20
    # Progress went to stderr, stage by stage, with the training job's epochs.
    progress = run["done"].stderr
    for stage in PIPELINE_STAGES:
        assert f"{stage} Succeeded" in progress
    assert "epoch=8; train_loss=" in progress


def test_the_api_answers_the_held_out_queries_correctly(summary: dict[str, Any]) -> None:
    _, queries = training_and_queries(None, None, 5)
    answers = summary["sample_answers"]
    assert [answer["query"] for answer in answers] == [query.text for query in queries]
    assert {answer["http_status"] for answer in answers} == {200}
    for answer in answers:
        assert set(answer) >= {"query", "expected", "http_status", "intent"}
    correct = sum(answer["intent"] == answer["expected"] for answer in answers)
    assert correct >= len(answers) - 1, answers


def test_registry_item_names_the_commit_the_image_and_the_data(
    run: dict[str, Any], summary: dict[str, Any]
) -> None:
    item = summary["registry_item"]
    assert item["Version"] == summary["model_version"]
    assert item["ExecutionArn"] == summary["execution_arn"]
    assert item["CommitId"] == git(run["source"], "rev-parse", "HEAD") == summary["commit_id"]
    assert item["ImageDigest"] == summary["image_digest"]
    assert item["ImageDigest"].startswith("sha256:") and item["ImageUri"].endswith("@" + item["ImageDigest"])
    assert item["Hyperparameters"] == hyperparameters(run["source"])
    assert item["EndpointName"] == summary["endpoint_name"]
    assert item["Approver"] == "auto"
    assert item["Metrics"]["accuracy"] == item["Accuracy"] >= 0.85
    # The data version is the one the definitions compute for exactly the CSV the run uploaded.
    training, _ = training_and_queries(None, None, 5)
    body = csv_bytes(training)
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    listing = [{"Key": "data/intents/train.csv", "Size": len(body), "ETag": etag}]
    assert item["DataVersion"] == data_version(_OneListing(listing), "bucket", "data/intents/")
    assert item["DataVersion"] == summary["data_version"]


class _OneListing:
    """Stands in for S3's ListObjectsV2 paginator over the one object the run put (the emulator is gone
    with the run)."""

    def __init__(self, contents: list[dict[str, Any]]) -> None:
        self._contents = contents

    def get_paginator(self, name: str) -> _OneListing:
        assert name == "list_objects_v2"
        return self

    def paginate(self, **_: str) -> list[dict[str, Any]]:
        return [{"Contents": self._contents}]


def test_report_has_the_timeline_the_state_machine_path_and_the_metrics(summary: dict[str, Any]) -> None:
    folder = Path(summary["report_dir"])
    for name in ("index.html", "report.md", "summary.json", "timeline.json"):
        assert (folder / name).is_file(), name
    names = ("statemachine.svg", "timeline.svg", "loss.svg")
    pictures = {name: ET.parse(folder / name).getroot() for name in names}
    assert all(root.tag == f"{SVG}svg" for root in pictures.values())
    states = {
        group.get("data-state"): group
        for group in pictures["statemachine.svg"].iter(f"{SVG}g")
        if group.get("class") == "state"
    }
    for name in ("Train", "QualityGate", "CreateEndpoint", "WaitForEndpoint", "Deployed"):
        assert states[name].get("data-status") == "succeeded", name
        assert states[name].find(f"{SVG}rect").get("fill") == "#d7f0d2"  # type: ignore[union-attr]
    assert states["ExecutionFailed"].get("data-status") == "not_reached"
    timeline = json.loads((folder / "timeline.json").read_text(encoding="utf-8"))
    assert {row["stage"] for row in timeline} == set(PIPELINE_STAGES)
    report = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert report["metrics"]["accuracy"] == summary["registry_item"]["Accuracy"]
    assert report["registry_item"] == summary["registry_item"]
    assert len(report["sample_answers"]) == len(summary["sample_answers"])
    # One point per epoch on the loss curve.
    [curve] = pictures["loss.svg"].findall(f".//{SVG}polyline")
    assert len(curve.get("points", "").split()) == int(summary["registry_item"]["Hyperparameters"]["epochs"])
