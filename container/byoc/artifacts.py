"""The trained model directory: file names, the prompt format, and what inference reads from it.

Torch-free on purpose (json, tokenizers): the onnx serving path and the training code share it, so the
prompt the model was trained on is, byte for byte, the prompt it is asked at serving time.

Layout of `/opt/ml/model` after training:

- `config.json`, `model.safetensors`, `generation_config.json`: the GPT-Neo (save_pretrained).
- `tokenizer.json`, `tokenizer_config.json`: the tokenizer (loadable as PreTrainedTokenizerFast).
- `labels.json`: the sorted list of intents.
- `metrics.json`: held-out metrics (accuracy, macro_f1, unknown_rate, eval_examples, ...).
- `manifest.json`: versions, hyperparameters, data fingerprint, and the generation settings below.
- `model.onnx`: the KV-cache export (one graph for prefill and decode).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from byoc.errors import ModelLoadError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"

PROMPT_TEMPLATE = "Query: {query} Intent:"
MANIFEST_FORMAT = 1


def format_prompt(query: str) -> str:
    return PROMPT_TEMPLATE.format(query=" ".join(query.split()))


def format_completion(intent: str) -> str:
    """The completion before its end-of-sequence token (added as a token id, never as text)."""
    return f" {intent}"


@dataclass(frozen=True)
class GenerationSpec:
    """How to prompt and decode the model, fixed at training time and stored in the manifest."""

    eos_token_id: int
    max_positions: int
    max_prompt_tokens: int
    default_max_new_tokens: int

    @property
    def max_new_tokens_limit(self) -> int:
        """The most new tokens a request may ask for without passing the model's positions."""
        return self.max_positions - self.max_prompt_tokens

    def to_json(self) -> dict[str, int]:
        return {
            "eos_token_id": self.eos_token_id,
            "max_positions": self.max_positions,
            "max_prompt_tokens": self.max_prompt_tokens,
            "default_max_new_tokens": self.default_max_new_tokens,
        }

    @classmethod
    def from_json(cls, raw: Any) -> GenerationSpec:
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{MANIFEST_FILE}: 'generation' must be an object")
        try:
            spec = cls(
                eos_token_id=int(raw["eos_token_id"]),
                max_positions=int(raw["max_positions"]),
                max_prompt_tokens=int(raw["max_prompt_tokens"]),
                default_max_new_tokens=int(raw["default_max_new_tokens"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelLoadError(f"{MANIFEST_FILE}: bad 'generation' settings: {error!r}") from None
        if not 0 < spec.max_prompt_tokens < spec.max_positions or spec.default_max_new_tokens < 1:
            raise ModelLoadError(f"{MANIFEST_FILE}: inconsistent 'generation' settings {raw}")
        return spec


def read_json(model_dir: Path, name: str) -> Any:
    path = model_dir / name
    if not path.is_file():
        raise ModelLoadError(f"model directory {model_dir} has no {name}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path} is not valid JSON: {error}") from None


def read_labels(model_dir: Path) -> tuple[str, ...]:
    raw = read_json(model_dir, LABELS_FILE)
    if not isinstance(raw, list) or not raw or not all(isinstance(label, str) and label for label in raw):
        raise ModelLoadError(f"{model_dir / LABELS_FILE} must be a non-empty JSON list of intent names")
    return tuple(raw)


def read_generation_spec(model_dir: Path) -> GenerationSpec:
    manifest = read_json(model_dir, MANIFEST_FILE)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelLoadError(f"{model_dir / MANIFEST_FILE} is not a manifest of format {MANIFEST_FORMAT}")
    return GenerationSpec.from_json(manifest.get("generation"))


def load_tokenizer(model_dir: Path) -> Tokenizer:
    path = model_dir / TOKENIZER_FILE
    if not path.is_file():
        raise ModelLoadError(f"model directory {model_dir} has no {TOKENIZER_FILE}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception for unreadable files
        raise ModelLoadError(f"{path} cannot be loaded: {error}") from None
    # Tokenization must not depend on settings saved with the file (training pads and cuts itself).
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


class PromptCodec:
    """Turns queries into prompt token ids and generated ids into (intent, text); thread-safe."""

    def __init__(self, tokenizer: Tokenizer, spec: GenerationSpec, labels: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.spec = spec
        self.labels = tuple(labels)
        self._known = frozenset(self.labels)

    def prompt_ids(self, query: str) -> list[int]:
        """The prompt's ids; a long query loses its start so that ` Intent:` always stays."""
        ids: list[int] = self.tokenizer.encode(format_prompt(query), add_special_tokens=False).ids
        return ids[-self.spec.max_prompt_tokens :]

    def completion_ids(self, intent: str) -> list[int]:
        ids: list[int] = self.tokenizer.encode(format_completion(intent), add_special_tokens=False).ids
        return [*ids, self.spec.eos_token_id]

    def decode(self, generated: Sequence[int]) -> tuple[str | None, str]:
        """The intent (or None when not a known label) and the generated text, without the eos."""
        ids = list(generated)
        if self.spec.eos_token_id in ids:
            ids = ids[: ids.index(self.spec.eos_token_id)]
        text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return (text if text in self._known else None), text

    def check_request(self, queries: Sequence[str], max_new_tokens: int | None) -> int:
        """Validates a predict call; returns the number of new tokens to generate."""
        if isinstance(queries, str):
            raise ValueError("queries must be a sequence of strings, not one string")
        for index, query in enumerate(queries):
            if not isinstance(query, str):
                raise ValueError(f"query {index} must be a string, got {type(query).__name__}")
        if max_new_tokens is None:
            return min(self.spec.default_max_new_tokens, self.spec.max_new_tokens_limit)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise ValueError(f"max_new_tokens must be an integer, got {max_new_tokens!r}")
        if not 1 <= max_new_tokens <= self.spec.max_new_tokens_limit:
            raise ValueError(f"max_new_tokens must be between 1 and {self.spec.max_new_tokens_limit}")
        return max_new_tokens


def load_codec(model_dir: Path) -> PromptCodec:
    labels = read_labels(model_dir)
    return PromptCodec(load_tokenizer(model_dir), read_generation_spec(model_dir), labels)
