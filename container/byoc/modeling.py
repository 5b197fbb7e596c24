"""The GPT-Neo model and its tokenizer: presets, a byte-level BPE trained on the data, or a
`pretrained` channel (a `save_pretrained` directory with its own tokenizer). Nothing reaches a hub.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from byoc.environment import go_offline

go_offline()  # before transformers is imported: the container never reaches a model hub

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import GPTNeoConfig, GPTNeoForCausalLM  # noqa: E402

from byoc.artifacts import TOKENIZER_FILE  # noqa: E402
from byoc.errors import UserError  # noqa: E402

EOS_TOKEN = "<|endoftext|>"
TOKENIZER_VOCAB_SIZE = 2048
SMALL_MODEL_PARAMETERS = 5_000_000

# EleutherAI/gpt-neo-125M's published configuration (its config.json), minus the weights.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "vocab_size": 0,  # the trained tokenizer's size
        "hidden_size": 128,
        "num_layers": 2,
        "num_heads": 4,
        "attention_types": [[["global", "local"], 1]],
        "window_size": 32,
        "max_position_embeddings": 128,
        "intermediate_size": None,
        "activation_function": "gelu_new",
        "embed_dropout": 0.0,
        "attention_dropout": 0.0,
        "resid_dropout": 0.0,
        "layer_norm_epsilon": 1e-5,
    },
    "125m": {
        "vocab_size": 50257,
        "hidden_size": 768,
        "num_layers": 12,
        "num_heads": 12,
        "attention_types": [[["global", "local"], 6]],
        "window_size": 256,
        "max_position_embeddings": 2048,
        "intermediate_size": None,
        "activation_function": "gelu_new",
        "embed_dropout": 0.0,
        "attention_dropout": 0.0,
        "resid_dropout": 0.0,
        "layer_norm_epsilon": 1e-5,
    },
}


@dataclass(frozen=True)
class ModelAndTokenizer:
    model: GPTNeoForCausalLM
    tokenizer: Tokenizer
    eos_token_id: int
    source: str  # "preset:<name>" or "pretrained"


def train_tokenizer(texts: Iterable[str], vocab_size: int = TOKENIZER_VOCAB_SIZE) -> Tokenizer:
    """A byte-level BPE (GPT-2's scheme) learned from `texts`, with `<|endoftext|>` as its only special."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def build_config(preset: str, tokenizer_vocab_size: int, eos_token_id: int) -> GPTNeoConfig:
    if preset not in PRESETS:
        raise UserError(f"unknown model preset {preset!r}; expected one of {', '.join(PRESETS)}")
    settings = dict(PRESETS[preset])
    settings["vocab_size"] = max(int(settings["vocab_size"]), tokenizer_vocab_size)
    # GPTNeoConfig insists that num_layers matches attention_types.
    settings["num_layers"] = sum(len(kinds) * repeat for kinds, repeat in settings["attention_types"])
    return GPTNeoConfig(
        **settings, bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=eos_token_id
    )


def from_preset(preset: str, texts: Iterable[str], seed: int) -> ModelAndTokenizer:
    tokenizer = train_tokenizer(texts)
    eos = tokenizer.token_to_id(EOS_TOKEN)
    if eos is None:
        raise RuntimeError(f"the trained tokenizer lacks {EOS_TOKEN}")
    config = build_config(preset, tokenizer.get_vocab_size(), eos)
    torch.manual_seed(seed)
    model = GPTNeoForCausalLM(config)
    return ModelAndTokenizer(model, tokenizer, eos, f"preset:{preset}")


def _pretrained_tokenizer(directory: Path) -> Tokenizer:
    if (directory / TOKENIZER_FILE).is_file():
        return Tokenizer.from_file(str(directory / TOKENIZER_FILE))
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    if vocab.is_file() and merges.is_file():
        tokenizer = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        return tokenizer
    raise UserError(f"the pretrained channel {directory} has no tokenizer.json nor vocab.json + merges.txt")


def from_pretrained(directory: Path) -> ModelAndTokenizer:
    """A `save_pretrained` GPT-Neo directory (the `pretrained` channel) with its own tokenizer."""
    if not (directory / "config.json").is_file():
        raise UserError(
            f"the pretrained channel {directory} has no config.json (save it with save_pretrained)"
        )
    try:
        model = GPTNeoForCausalLM.from_pretrained(str(directory), local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise UserError(f"the pretrained channel {directory} cannot be loaded as GPT-Neo: {error}") from None
    tokenizer = _pretrained_tokenizer(directory)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    eos: object = tokenizer.token_to_id(EOS_TOKEN)
    if eos is None:
        eos = model.config.eos_token_id
    if not isinstance(eos, int) or not 0 <= eos < model.config.vocab_size:
        raise UserError(f"the pretrained channel {directory} has no usable end-of-sequence token")
    if tokenizer.get_vocab_size() > model.config.vocab_size:
        raise UserError("the pretrained tokenizer has more tokens than the model's embedding")
    return ModelAndTokenizer(model, tokenizer, eos, "pretrained")


def limit_cpu_threads(model: torch.nn.Module) -> int:
    """One torch thread for a small model on CPU; returns the thread count in use.

    A tiny model's matrices gain nothing from more threads, and OpenMP threads that spin on a shared
    CPU made a 6 s training run take 2 minutes (measured on 2 busy cores); one thread keeps it steady.
    """
    if sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMETERS:
        torch.set_num_threads(1)
    return torch.get_num_threads()


def save_tokenizer(tokenizer: Tokenizer, eos_token_id: int, max_positions: int, directory: Path) -> None:
    """Writes tokenizer.json and a tokenizer_config.json that transformers 4.x and 5.x both load."""
    tokenizer.save(str(directory / TOKENIZER_FILE))
    eos = tokenizer.id_to_token(eos_token_id)
    config = {
        # transformers 5.x would record its TokenizersBackend here, which 4.x cannot load.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": eos,
        "eos_token": eos,
        "unk_token": eos,
        "pad_token": eos,
        "model_max_length": max_positions,
        "clean_up_tokenization_spaces": False,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
