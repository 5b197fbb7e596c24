"""The torch half of `train`: tokenizer and GPT-Neo, the training loop, the model directory.

Imported by `byoc.training` only once hyperparameters and data are valid. The loss counts only the
completion (prompt and padding masked with -100); AdamW with linear warmup and decay; bf16 autocast on
a GPU that supports it. Outputs are staged under `output/.model-staging` and moved into the model
directory only when complete (weights, tokenizer, labels, manifest, ONNX export, metrics).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from byoc import environment

environment.go_offline()  # before transformers is imported: the container never reaches a model hub

import torch  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from byoc.artifacts import (  # noqa: E402
    LABELS_FILE,
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    METRICS_FILE,
    ONNX_FILE,
    PROMPT_TEMPLATE,
    GenerationSpec,
    PromptCodec,
    format_completion,
    format_prompt,
)
from byoc.data import Dataset, Example  # noqa: E402
from byoc.errors import UserError  # noqa: E402
from byoc.hyperparameters import Hyperparameters  # noqa: E402
from byoc.metrics import emit_metrics, score  # noqa: E402
from byoc.modeling import (  # noqa: E402
    ModelAndTokenizer,
    from_preset,
    from_pretrained,
    limit_cpu_threads,
    save_tokenizer,
)
from byoc.onnx_export import export_onnx  # noqa: E402
from byoc.onnx_inference import OnnxPredictor  # noqa: E402
from byoc.predictor import Predictor  # noqa: E402
from byoc.stopping import StopFlag  # noqa: E402
from byoc.torch_inference import TorchPredictor  # noqa: E402

log = logging.getLogger("byoc.train")  # the train program's logger (byoc.training)

IGNORE_INDEX = -100
WARMUP_FRACTION = 0.1
VERSIONED_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "onnx", "onnxruntime", "numpy")


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]


def encode_examples(codec: PromptCodec, examples: Sequence[Example]) -> list[Encoded]:
    encoded = []
    for example in examples:
        prompt = codec.prompt_ids(example.query)
        completion = codec.completion_ids(example.intent)
        encoded.append(Encoded(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion))
    return encoded


def make_batch(items: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; padding is masked out of attention and loss."""
    width = max(len(item.input_ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def generation_spec(
    codec_tokenizer: Any, labels: Sequence[str], eos: int, hp: Hyperparameters, max_positions: int
) -> GenerationSpec:
    longest = (
        max(
            len(codec_tokenizer.encode(format_completion(label), add_special_tokens=False).ids)
            for label in labels
        )
        + 1
    )
    if hp.max_length > max_positions:
        raise UserError(f"max_length {hp.max_length} exceeds the model's {max_positions} positions")
    if hp.max_length - longest < 8:
        raise UserError(
            f"max_length {hp.max_length} leaves too little room for a prompt: "
            f"the longest intent takes {longest} tokens"
        )
    return GenerationSpec(
        eos_token_id=eos,
        max_positions=max_positions,
        max_prompt_tokens=hp.max_length - longest,
        default_max_new_tokens=longest,
    )


def fit(
    model: torch.nn.Module,
    train: Sequence[Encoded],
    hp: Hyperparameters,
    pad_id: int,
    device: torch.device,
    stop: StopFlag,
) -> dict[str, float | int]:
    """AdamW with linear warmup and decay; returns the figures of the run."""
    steps_per_epoch = math.ceil(len(train) / hp.batch_size)
    total_steps = steps_per_epoch * hp.epochs
    if hp.max_steps:
        total_steps = min(total_steps, hp.max_steps)
    warmup = max(1, int(total_steps * WARMUP_FRACTION))
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp.learning_rate, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))),
    )
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    order_rng = random.Random(hp.seed)
    log_every = max(1, total_steps // 10)
    log.info(
        "training steps=%d epochs=%d examples=%d device=%s bf16=%s",
        total_steps,
        hp.epochs,
        len(train),
        device,
        use_bf16,
    )
    model.train()
    step = 0
    started = time.monotonic()
    last_loss = float("nan")
    for epoch in range(1, hp.epochs + 1):
        order = list(range(len(train)))
        order_rng.shuffle(order)
        epoch_loss, epoch_batches = 0.0, 0
        for start in range(0, len(order), hp.batch_size):
            if step >= total_steps:
                break
            stop.check(f"at step {step} of {total_steps}")
            batch = {
                k: v.to(device)
                for k, v in make_batch(
                    [train[i] for i in order[start : start + hp.batch_size]], pad_id
                ).items()
            }
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            last_loss = float(loss.detach())
            epoch_loss += last_loss
            epoch_batches += 1
            if step % log_every == 0 or step == total_steps:
                log.info(
                    "step=%d/%d epoch=%d loss=%.4f lr=%.2e elapsed_s=%.1f",
                    step,
                    total_steps,
                    epoch,
                    last_loss,
                    scheduler.get_last_lr()[0],
                    time.monotonic() - started,
                )
        if epoch_batches:
            emit_metrics(epoch=epoch, train_loss=epoch_loss / epoch_batches)
        if step >= total_steps:
            break
    model.eval()
    return {
        "train_steps": step,
        "train_seconds": round(time.monotonic() - started, 3),
        "final_train_loss": last_loss,
    }


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _publish(staging: Path, model_dir: Path) -> None:
    """Moves the finished files into the model directory (only a complete model ever appears there)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    for item in sorted(staging.iterdir()):
        target = model_dir / item.name
        if target.exists():
            target.unlink()
        shutil.move(str(item), str(target))
        target.chmod(0o644)  # safetensors writes 0600; the serving user may differ


def _warn_of_an_idle_gpu(contract: environment.Paths, device: torch.device) -> None:
    """A GPU instance (SageMaker's resourceconfig.json names it) training on its CPU: said loudly, since
    the job still succeeds, slower and at a GPU's price (a CPU build of torch, or a driver that cannot
    run this torch's CUDA build)."""
    try:
        instance_type = str(environment.read_resourceconfig(contract).get("current_instance_type", ""))
    except UserError:  # not this check's to report: SageMaker writes the file
        return
    family = instance_type.removeprefix("ml.")[:1]
    if device.type == "cpu" and instance_type.startswith("ml.") and family in ("g", "p"):
        cuda = torch.version.cuda
        if cuda is None:
            reason = f"torch {torch.__version__} is a CPU build"
        else:
            reason = f"torch {torch.__version__} sees no usable GPU (the driver must run CUDA {cuda})"
        log.warning("training on the CPU of a GPU instance (%s): %s", instance_type, reason)


def train_model(
    contract: environment.Paths, hp: Hyperparameters, dataset: Dataset, stop: StopFlag
) -> dict[str, Any]:
    """Builds, fits, exports and evaluates the model; publishes the model directory when complete."""
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    random.seed(hp.seed)
    torch.manual_seed(hp.seed)
    pretrained_dir = contract.channel(environment.PRETRAINED_CHANNEL)
    if pretrained_dir.is_dir():
        bundle: ModelAndTokenizer = from_pretrained(pretrained_dir)
        log.info("base model from the pretrained channel (model_preset ignored)")
    else:
        texts = [format_prompt(e.query) + format_completion(e.intent) for e in dataset.train]
        bundle = from_preset(hp.model_preset, texts, hp.seed)
    model = bundle.model
    max_positions = int(model.config.max_position_embeddings)
    spec = generation_spec(bundle.tokenizer, dataset.labels, bundle.eos_token_id, hp, max_positions)
    codec = PromptCodec(bundle.tokenizer, spec, dataset.labels)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    _warn_of_an_idle_gpu(contract, device)
    parameters = sum(p.numel() for p in model.parameters())
    if device.type == "cpu":
        limit_cpu_threads(model)
    threads = torch.get_num_threads()
    log.info("model %s parameters=%d device=%s threads=%d", bundle.source, parameters, device, threads)
    model.to(device)  # type: ignore[arg-type]  # transformers' stub of `to` names no device
    stop.check("before the first step")
    figures = fit(model, encode_examples(codec, dataset.train), hp, bundle.eos_token_id, device, stop)

    staging = contract.output_dir / ".model-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        stop.check("after the last step")
        model.config.use_cache = True
        model.float().cpu()  # type: ignore[no-untyped-call]
        model.save_pretrained(str(staging), safe_serialization=True)
        save_tokenizer(bundle.tokenizer, bundle.eos_token_id, max_positions, staging)
        _write_json(staging / LABELS_FILE, list(dataset.labels))
        manifest = {
            "format": MANIFEST_FORMAT,
            "created_unix": int(time.time()),
            "versions": _versions(),
            "hyperparameters": hp.to_json(),
            "base_model": bundle.source,
            "prompt_template": PROMPT_TEMPLATE,
            "generation": spec.to_json(),
            "data": {
                "fingerprint": dataset.fingerprint,
                "eval_source": dataset.eval_source,
                "train_examples": len(dataset.train),
                "eval_examples": len(dataset.eval),
                "files": [
                    {"channel": f.channel, "name": f.name, "sha256": f.sha256, "rows": f.rows}
                    for f in dataset.files
                ],
            },
            "training": figures,
        }
        _write_json(staging / MANIFEST_FILE, manifest)
        stop.check("before the ONNX export")
        export_onnx(model, staging / ONNX_FILE)
        stop.check("before evaluation")
        predictor: Predictor
        if device.type == "cuda":  # the GPU decodes the held-out set faster than onnxruntime on CPU
            model.to(device)  # type: ignore[arg-type]
            predictor = TorchPredictor(codec, model)
        else:  # evaluate exactly what is served by default
            predictor = OnnxPredictor.load(staging, threads=torch.get_num_threads())
        metrics = evaluate(predictor, dataset)
        metrics.update({key: figures[key] for key in ("train_seconds", "train_steps")})
        _write_json(staging / METRICS_FILE, metrics)
        _publish(staging, contract.model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metrics


def evaluate(predictor: Predictor, dataset: Dataset) -> dict[str, Any]:
    """Greedy generation on the held-out data; prints and returns the metrics."""
    started = time.monotonic()
    predictions = predictor.predict([e.query for e in dataset.eval])
    metrics: dict[str, Any] = dict(score([e.intent for e in dataset.eval], [p.intent for p in predictions]))
    metrics["eval_seconds"] = round(time.monotonic() - started, 3)
    metrics["eval_backend"] = predictor.backend
    emit_metrics(**{k: metrics[k] for k in ("accuracy", "macro_f1", "unknown_rate", "eval_examples")})
    return metrics
