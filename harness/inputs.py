"""What the main job takes in: the container runtime it runs on, the training rows and the sample
queries sent to the API at the end."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from harness import datasets
from harness.compute.docker import DockerRuntime
from harness.compute.runtimes import BASE_IMAGE, choose_runtime, docker_ready
from harness.datasets import LabelledQuery
from harness.flow_model import SETUP_STAGE, FlowError, Query


def resolve_runtime(name: str) -> str:
    """`docker` or `process` for `name`: `auto` as harness.compute.runtimes.choose_runtime means it;
    `docker` where it is not ready is a clear Setup error."""
    if name == "auto":
        return choose_runtime("auto").name
    if name == "docker" and not docker_ready(DockerRuntime()):
        raise FlowError(
            SETUP_STAGE,
            f"the docker runtime needs a Docker engine and the base image {BASE_IMAGE} "
            "(scripts/docker-engine.sh makes both); use --runtime process",
        )
    return name


def training_and_queries(
    data: Path | None, queries: Path | None, samples: int
) -> tuple[list[LabelledQuery], list[Query]]:
    """The training rows and the sample queries. Without `queries`, a few rows are held out: from
    CLINC150's test split for the default data, else taken out of the given data (one per intent, for
    as many intents as `samples`), so the model never trained on them."""
    if data is None:
        intents = datasets.clinc10_intents()
        training = datasets.clinc150_split("train", intents)
        pool = datasets.clinc150_split("test", intents)
        held_out = _one_per_intent(pool, samples)
    else:
        rows = datasets.read_csv(data)
        if not rows:
            raise FlowError(SETUP_STAGE, f"--data {data} has no rows")
        held_out = [] if queries is not None else _one_per_intent(list(reversed(rows)), samples)
        taken = {id(example) for example in held_out}
        training = [example for example in rows if id(example) not in taken]
    if queries is not None:
        return training, read_queries(queries)
    return training, [Query(example.query, example.intent) for example in held_out]


def _one_per_intent(pool: Sequence[LabelledQuery], count: int) -> list[LabelledQuery]:
    chosen: dict[str, LabelledQuery] = {}
    for example in pool:
        if example.intent not in chosen:
            chosen[example.intent] = example
        if len(chosen) == count:
            break
    return list(chosen.values())


def read_queries(path: Path) -> list[Query]:
    """A CSV with the header `Query` and optionally `Intent` (the expected answer)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "Query" not in reader.fieldnames:
            raise ValueError(f"{path}: expected a CSV header with Query (and optionally Intent)")
        found = [Query(row["Query"], row.get("Intent") or None) for row in reader if row["Query"]]
    if not found:
        raise ValueError(f"{path}: no queries")
    return found
