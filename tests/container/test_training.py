"""The real `train` on real CLINC150 data: outputs, metrics, failures, SIGTERM, reproducibility."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import torch
from byoc.artifacts import PromptCodec
from byoc.errors import EXIT_STOPPED, EXIT_USER_ERROR
from byoc.fitting import encode_examples, fit, generation_spec
from byoc.hyperparameters import parse_hyperparameters
from byoc.metrics import metric_line, score
from byoc.modeling import from_preset
from byoc.training import StopFlag, main

from harness.datasets import LabelledQuery
from tests.container.conftest import TRAIN_SCRIPT, TrainedModel, make_opt_ml, run_train, train_env

pytestmark = pytest.mark.slow

EXPECTED_FILES = {
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "labels.json",
    "metrics.json",
    "manifest.json",
    "model.onnx",
}


def test_default_tiny_preset_learns_clinc10(trained_model: TrainedModel) -> None:
    metrics = json.loads((trained_model.model_dir / "metrics.json").read_text())
    assert metrics["eval_examples"] == 200  # CLINC150's val split: 20 per intent
    assert metrics["accuracy"] >= 0.85
    assert metrics["train_seconds"] < 60
    assert 0.0 <= metrics["unknown_rate"] <= 1 - metrics["accuracy"]
    assert 0.0 < metrics["macro_f1"] <= 1.0


def test_model_directory_holds_every_output(trained_model: TrainedModel) -> None:
    names = {path.name for path in trained_model.model_dir.iterdir()}
    assert names >= EXPECTED_FILES
    labels = json.loads((trained_model.model_dir / "labels.json").read_text())
    assert len(labels) == 10 and labels == sorted(labels)
    tokenizer_config = json.loads((trained_model.model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert not (trained_model.root / "output" / "failure").exists()


def test_manifest_records_versions_hyperparameters_and_data(trained_model: TrainedModel) -> None:
    manifest = json.loads((trained_model.model_dir / "manifest.json").read_text())
    assert manifest["versions"]["torch"] == metadata.version("torch")
    assert manifest["versions"]["onnxruntime"] == metadata.version("onnxruntime")
    assert manifest["hyperparameters"] == parse_hyperparameters({}).to_json()
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["data"]["fingerprint"])
    assert [f["channel"] for f in manifest["data"]["files"]] == ["training", "validation"]
    assert manifest["data"]["eval_source"] == "validation"
    assert manifest["data"]["train_examples"] == 500  # 50 per intent


def test_metrics_print_as_metric_definition_lines(trained_model: TrainedModel) -> None:
    epochs = re.findall(r"^epoch=(\d+); train_loss=([0-9.e-]+);$", trained_model.stdout, flags=re.M)
    assert [int(epoch) for epoch, _ in epochs] == list(range(1, 9))
    assert float(epochs[-1][1]) < float(epochs[0][1])
    final = re.search(
        r"^accuracy=([0-9.]+); macro_f1=([0-9.]+); unknown_rate=([0-9.]+); eval_examples=200;$",
        trained_model.stdout,
        flags=re.M,
    )
    assert final is not None
    metrics = json.loads((trained_model.model_dir / "metrics.json").read_text())
    assert float(final.group(1)) == pytest.approx(metrics["accuracy"], abs=1e-5)


def test_bad_hyperparameter_fails_with_reason_and_user_exit_code(
    tmp_path: Path, clinc10: tuple[list[LabelledQuery], ...]
) -> None:
    root = make_opt_ml(
        tmp_path, clinc10[0][:100], hyperparameters={"epochs": "many", "sagemaker_region": "x"}
    )
    result = run_train(root)
    assert result.returncode == EXIT_USER_ERROR
    reason = (root / "output" / "failure").read_text()
    assert reason.startswith("UserError: hyperparameter epochs must be an integer")
    assert len(reason) <= 1024
    assert not (root / "model").exists() or not any((root / "model").iterdir())


def test_missing_training_channel_is_a_user_error(tmp_path: Path) -> None:
    # In-process (the script only calls main): a user error needs no second interpreter.
    (tmp_path / "input" / "config").mkdir(parents=True)
    failure = tmp_path / "output" / "failure"
    failure.parent.mkdir()
    failure.write_text("UserError: the reason of an earlier run on this tree")
    code = main({"SAGEMAKER_BASE_DIR": str(tmp_path)}, install_signal_handler=False)
    assert code == EXIT_USER_ERROR
    assert failure.read_text().startswith("UserError: channel 'training' is missing")


def test_sigterm_stops_training_cleanly(tmp_path: Path, clinc10: tuple[list[LabelledQuery], ...]) -> None:
    root = make_opt_ml(tmp_path, clinc10[0], hyperparameters={"epochs": "200"})
    process = subprocess.Popen(
        [sys.executable, str(TRAIN_SCRIPT)],
        env=train_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:  # wait until the training loop runs
        if "training steps=" in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_STOPPED, stderr[-2000:]
    reason = (root / "output" / "failure").read_text()
    assert reason.startswith("Stopped: SIGTERM received; training stopped at step")
    assert not (root / "model").exists() or not any((root / "model").iterdir())
    assert not (root / "output" / ".model-staging").exists()


def test_pretrained_channel_is_the_base_model(
    tmp_path: Path, trained_model: TrainedModel, clinc10: tuple[list[LabelledQuery], ...]
) -> None:
    train, val, _ = clinc10
    hyperparameters = {"max_steps": "3", "learning_rate": "1e-5"}
    root = make_opt_ml(tmp_path, train, val[::8], hyperparameters=hyperparameters)
    pretrained = root / "input" / "data" / "pretrained"
    pretrained.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (pretrained / name).write_bytes((trained_model.model_dir / name).read_bytes())
    # In-process (the script only calls main) to spare a second torch import; the session fixture and
    # the failure tests run the script itself.
    assert main({"SAGEMAKER_BASE_DIR": str(root)}, install_signal_handler=False) == 0
    manifest = json.loads((root / "model" / "manifest.json").read_text())
    assert manifest["base_model"] == "pretrained"
    assert manifest["training"]["train_steps"] == 3
    # The base model already knows these intents: three small steps keep it accurate.
    assert json.loads((root / "model" / "metrics.json").read_text())["accuracy"] >= 0.85
    assert (root / "model" / "tokenizer.json").read_bytes() == (
        trained_model.model_dir / "tokenizer.json"
    ).read_bytes()


def test_training_is_seeded_and_reproducible(clinc10: tuple[list[LabelledQuery], ...]) -> None:
    from byoc.data import Example as DataExample

    examples = [DataExample(e.query, e.intent) for e in clinc10[0][:64]]
    hp = parse_hyperparameters({"max_steps": "4", "batch_size": "8"})
    texts = [f"Query: {e.query} Intent: {e.intent}" for e in examples]
    weights = []
    for _ in range(2):
        bundle = from_preset("tiny", texts, hp.seed)
        labels = sorted({e.intent for e in examples})
        spec = generation_spec(bundle.tokenizer, labels, bundle.eos_token_id, hp, 128)
        codec = PromptCodec(bundle.tokenizer, spec, labels)
        fit(
            bundle.model,
            encode_examples(codec, examples),
            hp,
            bundle.eos_token_id,
            torch.device("cpu"),
            StopFlag(),
        )
        weights.append({k: v.clone() for k, v in bundle.model.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_score_counts_unknowns_as_wrong_and_averages_f1_over_intents() -> None:
    truth = ["a", "a", "b", "b"]
    predicted = ["a", None, "b", "a"]
    metrics = score(truth, predicted)
    # a: tp 1, fp 1, fn 1 -> 0.5; b: tp 1, fp 0, fn 1 -> 2/3
    assert metrics == {
        "accuracy": 0.5,
        "macro_f1": (0.5 + 2 / 3) / 2,
        "unknown_rate": 0.25,
        "eval_examples": 4,
    }
    assert metric_line(accuracy=0.5, eval_examples=4) == "accuracy=0.5; eval_examples=4;"


@pytest.mark.parametrize(
    ("config", "warned"),
    [
        ('{"current_host": "algo-1", "current_instance_type": "ml.g5.xlarge"}', True),
        ('{"current_host": "algo-1", "current_instance_type": "ml.p4d.24xlarge"}', True),
        ('{"current_host": "algo-1", "current_instance_type": "ml.m5.xlarge"}', False),
        ('{"current_host": "algo-1"}', False),
        ("not json", False),
    ],
)
def test_a_gpu_instance_training_on_its_cpu_is_said_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, config: str, warned: bool
) -> None:
    """SageMaker's resourceconfig.json names the instance type; this machine's torch is a CPU build, as
    a GPU host's would be useless to a CUDA build its driver cannot run: the job still trains (on the
    CPU), and the log says why the GPU idles."""
    from byoc import environment
    from byoc.fitting import _warn_of_an_idle_gpu

    contract = environment.Paths(tmp_path)
    contract.input_config_dir.mkdir(parents=True)
    contract.resourceconfig_file.write_text(config, encoding="utf-8")
    with caplog.at_level("WARNING", logger="byoc.train"):
        _warn_of_an_idle_gpu(contract, torch.device("cpu"))
    messages = [record.getMessage() for record in caplog.records]
    if warned:
        assert len(messages) == 1 and "training on the CPU of a GPU instance" in messages[0]
        assert "CPU build" in messages[0]
    else:
        assert messages == []
