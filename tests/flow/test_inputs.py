"""The flow's inputs and outputs that need no stack: data and sample queries, options, registry items."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.datasets import LabelledQuery, write_csv
from harness.flow_model import FlowOptions, Query
from harness.inputs import read_queries, resolve_runtime, training_and_queries
from harness.model_registry import plain_item


def test_default_queries_are_held_out_test_rows_one_per_intent() -> None:
    training, queries = training_and_queries(None, None, 5)
    assert len(training) == 500
    assert len({query.expected for query in queries}) == 5
    trained_on = {example.query for example in training}
    assert all(query.text not in trained_on for query in queries)


def test_given_data_without_queries_holds_rows_out_of_training(tmp_path: Path) -> None:
    rows = [LabelledQuery(f"question {n}", f"intent_{n % 3}") for n in range(12)]
    data = write_csv(tmp_path / "data.csv", rows)
    training, queries = training_and_queries(data, None, 2)
    assert len(queries) == 2 and len(training) == 10
    assert {query.text for query in queries}.isdisjoint(example.query for example in training)
    assert {query.expected for query in queries} == {"intent_2", "intent_1"}  # taken from the end


def test_given_queries_keep_every_training_row(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "data.csv", [LabelledQuery("a", "x"), LabelledQuery("b", "y")])
    queries_file = tmp_path / "queries.csv"
    queries_file.write_text("Query\nhello there\nwhat time is it\n", encoding="utf-8")
    training, queries = training_and_queries(data, queries_file, 5)
    assert len(training) == 2
    assert queries == [Query("hello there"), Query("what time is it")]


def test_queries_need_a_query_column(tmp_path: Path) -> None:
    path = tmp_path / "queries.csv"
    path.write_text("Text\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Query"):
        read_queries(path)


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="runtime"):
        FlowOptions(work_dir=tmp_path, runtime="kubernetes")
    with pytest.raises(ValueError, match="approval"):
        FlowOptions(work_dir=tmp_path, approval="maybe")
    with pytest.raises(ValueError, match="is not a file"):
        FlowOptions(work_dir=tmp_path, data=tmp_path / "missing.csv")


def test_auto_is_docker_only_with_an_engine_and_the_base_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` needs both an engine and the base image; `docker` without them is a clear Setup error.
    The engine's answers are replaced (no Docker engine may run here): `available` and the image
    lookup `resolve`, the two questions the runtime table asks."""
    from harness.compute.container_runtime import ImageNotFound, ResolvedImage
    from harness.compute.docker import DockerRuntime
    from harness.compute.runtimes import BASE_IMAGE, choose_runtime
    from harness.flow_model import FlowError

    def holds_base(self: DockerRuntime, uri: str) -> ResolvedImage:
        if uri != BASE_IMAGE:
            raise ImageNotFound(uri)
        return ResolvedImage("sha256:" + "0" * 64, "sha256:" + "0" * 64)

    def holds_nothing(self: DockerRuntime, uri: str) -> ResolvedImage:
        raise ImageNotFound(uri)

    monkeypatch.setattr(DockerRuntime, "available", lambda self: True)
    monkeypatch.setattr(DockerRuntime, "resolve", holds_base)
    assert resolve_runtime("auto") == "docker" == choose_runtime("auto").name
    assert resolve_runtime("docker") == "docker"
    monkeypatch.setattr(DockerRuntime, "resolve", holds_nothing)
    assert resolve_runtime("auto") == "process" == choose_runtime("auto").name
    with pytest.raises(FlowError, match=BASE_IMAGE):
        resolve_runtime("docker")
    monkeypatch.setattr(DockerRuntime, "available", lambda self: False)
    assert resolve_runtime("auto") == "process" and resolve_runtime("process") == "process"


def test_registry_items_lose_their_dynamodb_types() -> None:
    item = {
        "Version": {"S": "v1"},
        "Accuracy": {"N": "0.9"},
        "Metrics": {"M": {"accuracy": {"N": "0.9"}, "eval_examples": {"N": "50"}}},
    }
    expected = {"Version": "v1", "Accuracy": 0.9, "Metrics": {"accuracy": 0.9, "eval_examples": 50}}
    assert plain_item(item) == expected
