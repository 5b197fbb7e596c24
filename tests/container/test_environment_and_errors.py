"""The /opt/ml contract (paths, readers, port) and the failure-file rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from byoc import environment
from byoc.errors import (
    EXIT_FRAMEWORK_ERROR,
    EXIT_STOPPED,
    EXIT_USER_ERROR,
    TrainingStopped,
    UserError,
    exit_code,
    failure_reason,
    write_failure,
)


def test_root_defaults_to_opt_ml_and_moves_with_the_variable(tmp_path: Path) -> None:
    assert environment.paths({}).root == Path("/opt/ml")
    assert environment.paths({environment.BASE_DIR_ENV: ""}).root == Path("/opt/ml")
    moved = environment.paths({environment.BASE_DIR_ENV: str(tmp_path)})
    assert moved.hyperparameters_file == tmp_path / "input" / "config" / "hyperparameters.json"
    assert moved.inputdataconfig_file == tmp_path / "input" / "config" / "inputdataconfig.json"
    assert moved.resourceconfig_file == tmp_path / "input" / "config" / "resourceconfig.json"
    assert moved.channel("training") == tmp_path / "input" / "data" / "training"
    assert moved.model_dir == tmp_path / "model"
    assert moved.failure_file == tmp_path / "output" / "failure"
    with pytest.raises(ValueError, match="invalid channel name"):
        moved.channel("../model")


def test_readers(tmp_path: Path) -> None:
    contract = environment.paths({environment.BASE_DIR_ENV: str(tmp_path)})
    assert environment.read_hyperparameters(contract) == {}  # absent: all defaults
    contract.input_config_dir.mkdir(parents=True)
    contract.hyperparameters_file.write_text(json.dumps({"epochs": "2"}))
    contract.resourceconfig_file.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    assert environment.read_hyperparameters(contract) == {"epochs": "2"}
    assert environment.read_resourceconfig(contract)["current_host"] == "algo-1"
    contract.inputdataconfig_file.write_text("{not json")
    with pytest.raises(UserError, match=r"inputdataconfig\.json is not valid JSON"):
        environment.read_inputdataconfig(contract)
    contract.hyperparameters_file.write_text("[1, 2]")
    with pytest.raises(UserError, match="must hold a JSON object"):
        environment.read_hyperparameters(contract)


def test_port() -> None:
    assert environment.port({}) == 8080
    assert environment.port({environment.PORT_ENV: "9000"}) == 9000
    for bad in ("http", "0", "70000"):
        with pytest.raises(UserError, match=environment.PORT_ENV):
            environment.port({environment.PORT_ENV: bad})


def test_failure_file_is_written_once_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "output" / "failure"
    assert write_failure(path, "first " + "x" * 5000)
    assert not write_failure(path, "second")
    text = path.read_text()
    assert text.startswith("first ") and len(text) == 1024 and text.endswith("[truncated]")


def test_reasons_and_exit_codes_tell_user_errors_apart() -> None:
    assert failure_reason(UserError("fix the CSV")) == "UserError: fix the CSV"
    assert failure_reason(KeyError("x")).startswith("InternalError: KeyError")
    assert exit_code(UserError("x")) == EXIT_USER_ERROR == 2
    assert exit_code(TrainingStopped("x")) == EXIT_STOPPED == 143
    assert exit_code(RuntimeError("x")) == EXIT_FRAMEWORK_ERROR == 1
