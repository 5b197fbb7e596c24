"""Fixtures for the container's tests: temporary `/opt/ml` trees (through SAGEMAKER_BASE_DIR) filled
with real CLINC150 data, and one tiny model trained once per run by the real `container/train`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.datasets import LabelledQuery, clinc10_intents, clinc150_split, write_csv
from tests.workers import built_once

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO_ROOT / "container" / "train"


def make_opt_ml(
    root: Path,
    train: list[LabelledQuery],
    validation: list[LabelledQuery] | None = None,
    hyperparameters: Mapping[str, str] | None = None,
) -> Path:
    """A SageMaker `/opt/ml` tree under `root`: config files and the data channels."""
    write_csv(root / "input" / "data" / "training" / "train.csv", train)
    if validation is not None:
        write_csv(root / "input" / "data" / "validation" / "val.csv", validation)
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(dict(hyperparameters or {})), encoding="utf-8")
    channels = {"training": {"ContentType": "text/csv"}}
    if validation is not None:
        channels["validation"] = {"ContentType": "text/csv"}
    (config / "inputdataconfig.json").write_text(json.dumps(channels), encoding="utf-8")
    return root


def train_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SAGEMAKER_BASE_DIR"] = str(root)
    return env


def run_train(root: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Runs the real `container/train` as a plain process on the tree at `root`."""
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT)],
        env=train_env(root),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class TrainedModel:
    root: Path
    model_dir: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def clinc10() -> tuple[list[LabelledQuery], list[LabelledQuery], list[LabelledQuery]]:
    """CLINC150's train, val and test splits restricted to the 10-intent subset."""
    intents = clinc10_intents()
    return clinc150_split("train", intents), clinc150_split("val", intents), clinc150_split("test", intents)


@pytest.fixture(scope="session")
def trained_model(
    tmp_path_factory: pytest.TempPathFactory,
    clinc10: tuple[list[LabelledQuery], list[LabelledQuery], list[LabelledQuery]],
) -> TrainedModel:
    """The tiny preset trained once with its default hyperparameters on clinc10 (val split held out):
    once per run, whatever the number of pytest-xdist workers (tests/workers.py). Tests only read it."""
    train, val, _ = clinc10
    with built_once(tmp_path_factory, "trained_model") as (root, built):
        logs = root / "train-logs.json"
        if not built:
            make_opt_ml(root, train, val)
            result = run_train(root)
            assert result.returncode == 0, result.stderr[-3000:]
            logs.write_text(json.dumps({"stdout": result.stdout, "stderr": result.stderr}), encoding="utf-8")
    output = json.loads(logs.read_text(encoding="utf-8"))
    return TrainedModel(root, root / "model", output["stdout"], output["stderr"])
