"""The SageMaker `/opt/ml` contract, in one place.

Every path the container reads or writes derives from one root: `/opt/ml`, unless the environment
variable `SAGEMAKER_BASE_DIR` moves it (as the SageMaker training toolkit names it), so the same code
runs inside the image and as a plain process. The environment variable names the container honours are
constants here. Importing this module has no side effects; nothing is read until a function is called.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from byoc.errors import UserError

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
"""Moves the `/opt/ml` root (a plain process, a test, the local harness)."""
DEFAULT_BASE_DIR = Path("/opt/ml")

PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
"""The port `serve` listens on."""
DEFAULT_PORT = 8080

BACKEND_ENV = "BYOC_INFERENCE_BACKEND"
"""`onnx` or `torch`; unset means onnx when the model has an ONNX export, else torch."""

DEVICE_ENV = "BYOC_INFERENCE_DEVICE"
"""`cpu` (default) or `cuda`: where `serve` runs the model. `cuda` means the torch back end (the image's
onnxruntime is the CPU build) on the instance's GPU, never a fallback to the CPU."""
DEVICES = ("cpu", "cuda")
CUDA_INFERENCE_AMI = "al2023-ami-sagemaker-inference-gpu-4-1"
"""The SageMaker hosting AMI whose NVIDIA driver (580, CUDA 13.0) runs torch 2.13.0's CUDA build (it
needs cuda-toolkit 13.0); the default AMIs of ml.g4dn/ml.g5 (driver 470) and ml.g6 (535) do not."""

WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
"""How many serving worker processes; unset means one per CPU core (the SageMaker toolkits' default)."""

BATCHING_ENV = "BYOC_BATCHING"
"""`on` (default) decodes the queries of concurrent requests together; `off` decodes each query alone."""

BATCH_WAIT_ENV = "BYOC_BATCH_WAIT_MS"
"""How long a worker waits for more requests to join a batch, in milliseconds (default 2, at most 100)."""
DEFAULT_BATCH_WAIT_MS = 2.0
MAX_BATCH_WAIT_MS = 100.0

TRAINING_CHANNEL = "training"
VALIDATION_CHANNEL = "validation"
PRETRAINED_CHANNEL = "pretrained"


@dataclass(frozen=True)
class Paths:
    """Every path of the contract, derived from one root."""

    root: Path

    @property
    def input_config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / "hyperparameters.json"

    @property
    def inputdataconfig_file(self) -> Path:
        return self.input_config_dir / "inputdataconfig.json"

    @property
    def resourceconfig_file(self) -> Path:
        return self.input_config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    def channel(self, name: str) -> Path:
        """The directory of one input channel (`input/data/<name>`)."""
        if not name or "/" in name or name in {".", ".."}:
            raise ValueError(f"invalid channel name {name!r}")
        return self.data_dir / name


def paths(environ: Mapping[str, str] | None = None) -> Paths:
    """The contract's paths; the root comes from `SAGEMAKER_BASE_DIR` when it is set and not empty."""
    env = os.environ if environ is None else environ
    base = env.get(BASE_DIR_ENV, "")
    return Paths(root=Path(base) if base else DEFAULT_BASE_DIR)


def port(environ: Mapping[str, str] | None = None) -> int:
    """The serving port from `SAGEMAKER_BIND_TO_PORT` (default 8080)."""
    env = os.environ if environ is None else environ
    raw = env.get(PORT_ENV, "")
    if not raw:
        return DEFAULT_PORT
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{PORT_ENV} must be an integer port, got {raw!r}") from None
    if not 1 <= value <= 65535:
        raise UserError(f"{PORT_ENV} must be between 1 and 65535, got {value}")
    return value


def cpu_count() -> int:
    """The cores this process may run on (a container's CPU set, not the host's)."""
    return len(os.sched_getaffinity(0)) or 1


@dataclass(frozen=True)
class ServingSettings:
    """How `serve` uses the instance: worker processes and batching."""

    workers: int
    batching: bool
    batch_wait_s: float
    device: str = "cpu"

    @property
    def threads_per_worker(self) -> int:
        return max(1, cpu_count() // self.workers)


def inference_device(environ: Mapping[str, str] | None = None) -> str:
    """`BYOC_INFERENCE_DEVICE`, validated: `cpu` when unset."""
    env = os.environ if environ is None else environ
    device = env.get(DEVICE_ENV, "").strip().lower() or "cpu"
    if device not in DEVICES:
        raise UserError(f"{DEVICE_ENV} must be one of {', '.join(DEVICES)}, got {env.get(DEVICE_ENV)!r}")
    return device


def serving_settings(
    environ: Mapping[str, str] | None = None, default_workers: int | None = None
) -> ServingSettings:
    """`SAGEMAKER_MODEL_SERVER_WORKERS` (else `default_workers`, else the core count), `BYOC_BATCHING` and
    `BYOC_BATCH_WAIT_MS` and `BYOC_INFERENCE_DEVICE`, validated."""
    env = os.environ if environ is None else environ
    raw_workers = env.get(WORKERS_ENV, "").strip()
    if not raw_workers:
        workers = default_workers or cpu_count()
    else:
        try:
            workers = int(raw_workers)
        except ValueError:
            raise UserError(f"{WORKERS_ENV} must be a whole number of workers, got {raw_workers!r}") from None
        if not 1 <= workers <= 256:
            raise UserError(f"{WORKERS_ENV} must be between 1 and 256, got {workers}")
    raw_batching = env.get(BATCHING_ENV, "on").strip().lower() or "on"
    if raw_batching not in ("on", "off"):
        raise UserError(f"{BATCHING_ENV} must be on or off, got {raw_batching!r}")
    raw_wait = env.get(BATCH_WAIT_ENV, "").strip()
    try:
        wait_ms = float(raw_wait) if raw_wait else DEFAULT_BATCH_WAIT_MS
    except ValueError:
        raise UserError(f"{BATCH_WAIT_ENV} must be a number of milliseconds, got {raw_wait!r}") from None
    if not 0 <= wait_ms <= MAX_BATCH_WAIT_MS:
        raise UserError(f"{BATCH_WAIT_ENV} must be between 0 and {MAX_BATCH_WAIT_MS:g}, got {raw_wait}")
    return ServingSettings(
        workers=workers,
        batching=raw_batching == "on",
        batch_wait_s=wait_ms / 1000,
        device=inference_device(env),
    )


def _read_json_object(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise UserError(f"missing {path.name}: expected it at {path}")
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path.name} must hold a JSON object, got {type(value).__name__}")
    return value


def read_hyperparameters(contract: Paths) -> dict[str, Any]:
    """The raw `hyperparameters.json` (an empty mapping when the file is absent: all defaults)."""
    return _read_json_object(contract.hyperparameters_file, required=False)


def read_inputdataconfig(contract: Paths) -> dict[str, Any]:
    """The raw `inputdataconfig.json` (channel name -> settings; empty when absent)."""
    return _read_json_object(contract.inputdataconfig_file, required=False)


def read_resourceconfig(contract: Paths) -> dict[str, Any]:
    """The raw `resourceconfig.json` (hosts, current host; empty when absent)."""
    return _read_json_object(contract.resourceconfig_file, required=False)


OFFLINE_SETTINGS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
"""Set before transformers is imported so that nothing ever reaches a model hub."""


def go_offline() -> None:
    """Turns the Hugging Face libraries offline for this process (the container never downloads)."""
    for name, value in OFFLINE_SETTINGS.items():
        os.environ[name] = value
