"""Greedy generation with torch and transformers' `generate`: the `torch` back end.

It reads the safetensors weights that training wrote and decodes exactly as the onnx back end does
(same prompt ids, greedy, stop at eos), which the parity test checks token for token.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from byoc.environment import go_offline

go_offline()  # before transformers is imported: the container never reaches a model hub

import torch  # noqa: E402
from transformers import GenerationConfig, GPTNeoForCausalLM  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from byoc.artifacts import CONFIG_FILE, WEIGHTS_FILE, PromptCodec, load_codec  # noqa: E402
from byoc.errors import ModelLoadError  # noqa: E402
from byoc.modeling import limit_cpu_threads  # noqa: E402
from byoc.prediction import Prediction  # noqa: E402


def greedy_generate(
    model: GPTNeoForCausalLM,
    prompt_ids: Sequence[int],
    max_new_tokens: int,
    eos_token_id: int,
    stop_at_eos: bool = True,
) -> list[int]:
    """transformers' `generate`, greedy, for one prompt; returns the new ids (with eos if produced).

    `stop_at_eos=False` always generates `max_new_tokens` (the parity test uses it to decode past the
    local-attention window).
    """
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=model.device)
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        # With None, generate() falls back to the model's own eos; an id past the vocabulary never stops it.
        eos_token_id=eos_token_id if stop_at_eos else int(model.config.vocab_size),
        pad_token_id=eos_token_id,
    )
    with torch.inference_mode():
        output = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), generation_config=config
        )
    new_ids: list[int] = output[0, input_ids.shape[1] :].tolist()
    return new_ids


def load_model(model_dir: Path) -> GPTNeoForCausalLM:
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"model directory {model_dir} has no {name}")
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = GPTNeoForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    except Exception as error:  # transformers raises many types for unreadable weights or configs
        raise ModelLoadError(f"the GPT-Neo weights in {model_dir} cannot be loaded: {error}") from None
    model.eval()  # type: ignore[no-untyped-call]
    limit_cpu_threads(model)
    return model


class TorchPredictor:
    """The `torch` back end of `byoc.predictor.Predictor`."""

    backend = "torch"

    def __init__(self, codec: PromptCodec, model: GPTNeoForCausalLM) -> None:
        self.codec = codec
        self.model = model
        self.labels = codec.labels
        self.max_new_tokens_limit = codec.spec.max_new_tokens_limit
        # generate() keeps per-call state on the model's generation config: one call at a time.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path) -> TorchPredictor:
        codec = load_codec(model_dir)
        return cls(codec, load_model(model_dir))

    def predict(self, queries: Sequence[str], max_new_tokens: int | None = None) -> list[Prediction]:
        budget = self.codec.check_request(queries, max_new_tokens)
        predictions = []
        for query in queries:
            with self._lock:
                generated = greedy_generate(
                    self.model, self.codec.prompt_ids(query), budget, self.codec.spec.eos_token_id
                )
            intent, text = self.codec.decode(generated)
            predictions.append(Prediction(query=query, intent=intent, generated_text=text))
        return predictions
