"""Greedy generation over the ONNX export with onnxruntime: numpy and tokenizers only, never torch.

The graph (see onnx_export.py) takes `input_ids`, `attention_mask`, `position_ids` and the past keys and
values of every layer, and returns `logits` and the present keys and values. The first call feeds the
whole prompt with an empty past (prefill); each later call feeds one token and the cache (decode).

`generate_batch` decodes several prompts in the same calls: the prompts are padded on the left to one
length, the attention mask hides the padding and the position ids count each prompt's own tokens, so
each row's greedy tokens are those it gets alone (the tests check it); a row that is done (its eos or its
budget) leaves the batch, and its cache rows with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from byoc.artifacts import ONNX_FILE, PromptCodec, load_codec
from byoc.errors import ModelLoadError
from byoc.prediction import Prediction

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
POSITION_IDS = "position_ids"
LOGITS = "logits"


def past_name(layer: int, kind: str) -> str:
    return f"past.{layer}.{kind}"


def present_name(layer: int, kind: str) -> str:
    return f"present.{layer}.{kind}"


@dataclass(frozen=True)
class CacheShape:
    layers: int
    heads: int
    head_dim: int


def _cache_shape(session: ort.InferenceSession) -> CacheShape:
    inputs = {item.name: item for item in session.get_inputs()}
    if INPUT_IDS not in inputs or past_name(0, "key") not in inputs:
        raise ModelLoadError("model.onnx is not a KV-cache export of this container (inputs differ)")
    layers = sum(1 for name in inputs if name.startswith("past.") and name.endswith(".key"))
    shape = inputs[past_name(0, "key")].shape
    heads, head_dim = shape[1], shape[3]
    if not isinstance(heads, int) or not isinstance(head_dim, int):
        raise ModelLoadError(f"model.onnx: past key shape {shape} lacks static heads and head size")
    return CacheShape(layers=layers, heads=heads, head_dim=head_dim)


class OnnxGreedyGenerator:
    """Greedy decoding with the KV cache; `generate` is safe from several threads (ORT's run is)."""

    def __init__(self, session: ort.InferenceSession, eos_token_id: int) -> None:
        self.session = session
        self.eos_token_id = eos_token_id
        self.cache = _cache_shape(session)
        self._output_names = [LOGITS] + [
            present_name(layer, kind) for layer in range(self.cache.layers) for kind in ("key", "value")
        ]

    @classmethod
    def from_file(cls, path: Path, eos_token_id: int, threads: int | None = None) -> OnnxGreedyGenerator:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # Idle pool threads that spin take the cores from the server's event loop and other workers.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise ModelLoadError(f"{path} cannot be loaded by onnxruntime: {error}") from None
        return cls(session, eos_token_id)

    def generate(self, prompt_ids: Sequence[int], max_new_tokens: int, stop_at_eos: bool = True) -> list[int]:
        """The new token ids (ending with the eos id when the model produced it and `stop_at_eos`)."""
        if not prompt_ids:
            raise ValueError("the prompt must have at least one token")
        empty = np.zeros((1, self.cache.heads, 0, self.cache.head_dim), dtype=np.float32)
        past = [empty] * (2 * self.cache.layers)
        step_ids = np.asarray([list(prompt_ids)], dtype=np.int64)
        length = 0
        generated: list[int] = []
        for _ in range(max_new_tokens):
            new = step_ids.shape[1]
            feeds: dict[str, np.ndarray] = {
                INPUT_IDS: step_ids,
                ATTENTION_MASK: np.ones((1, length + new), dtype=np.int64),
                POSITION_IDS: np.arange(length, length + new, dtype=np.int64)[None, :],
            }
            for layer in range(self.cache.layers):
                feeds[past_name(layer, "key")] = past[2 * layer]
                feeds[past_name(layer, "value")] = past[2 * layer + 1]
            outputs = self.session.run(self._output_names, feeds)
            token = int(np.argmax(outputs[0][0, -1]))
            generated.append(token)
            if stop_at_eos and token == self.eos_token_id:
                break
            past = list(outputs[1:])
            length += new
            step_ids = np.asarray([[token]], dtype=np.int64)
        return generated

    def generate_batch(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop_at_eos: bool = True
    ) -> list[list[int]]:
        """`generate` for every prompt, decoded together in one onnxruntime call a step."""
        if any(not prompt for prompt in prompts):
            raise ValueError("every prompt must have at least one token")
        if len(prompts) <= 1:
            return [self.generate(prompt, max_new_tokens, stop_at_eos) for prompt in prompts]
        lengths = np.asarray([len(prompt) for prompt in prompts], dtype=np.int64)
        width = int(lengths.max())
        rows = len(prompts)
        step_ids = np.full((rows, width), self.eos_token_id, dtype=np.int64)
        mask = np.zeros((rows, width), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            step_ids[row, width - len(prompt) :] = prompt
            mask[row, width - len(prompt) :] = 1
        # Padding positions get 0; each prompt's own tokens count from 0 as they do alone.
        positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
        empty = np.zeros((rows, self.cache.heads, 0, self.cache.head_dim), dtype=np.float32)
        past = [empty] * (2 * self.cache.layers)
        active = np.arange(rows)  # the original row of each row still in the batch
        generated: list[list[int]] = [[] for _ in prompts]
        next_positions = lengths.copy()
        for _ in range(max_new_tokens):
            feeds: dict[str, np.ndarray] = {
                INPUT_IDS: step_ids,
                ATTENTION_MASK: mask,
                POSITION_IDS: positions,
            }
            for layer in range(self.cache.layers):
                feeds[past_name(layer, "key")] = past[2 * layer]
                feeds[past_name(layer, "value")] = past[2 * layer + 1]
            outputs = self.session.run(self._output_names, feeds)
            tokens = np.argmax(outputs[0][:, -1], axis=-1)
            keep: list[int] = []
            for index, row in enumerate(active.tolist()):
                token = int(tokens[index])
                generated[row].append(token)
                if not (stop_at_eos and token == self.eos_token_id):
                    keep.append(index)
            if not keep:
                break
            kept = np.asarray(keep)
            active = active[kept]
            past = [present[kept] for present in outputs[1:]]
            mask = np.concatenate([mask[kept], np.ones((len(kept), 1), dtype=np.int64)], axis=1)
            step_ids = tokens[kept].astype(np.int64)[:, None]
            positions = next_positions[active][:, None]
            next_positions[active] += 1
        return generated


class OnnxPredictor:
    """The `onnx` back end of `byoc.predictor.Predictor`."""

    backend = "onnx"
    device = "cpu"  # onnxruntime's CPU build

    def __init__(self, codec: PromptCodec, generator: OnnxGreedyGenerator, batched: bool = True) -> None:
        self.codec = codec
        self.generator = generator
        self.batched = batched
        self.labels = codec.labels
        self.max_new_tokens_limit = codec.spec.max_new_tokens_limit

    @classmethod
    def load(cls, model_dir: Path, threads: int | None = None, batched: bool = True) -> OnnxPredictor:
        path = model_dir / ONNX_FILE
        if not path.is_file():
            raise ModelLoadError(f"model directory {model_dir} has no {ONNX_FILE} (use the torch backend)")
        codec = load_codec(model_dir)
        return cls(codec, OnnxGreedyGenerator.from_file(path, codec.spec.eos_token_id, threads), batched)

    def predict(self, queries: Sequence[str], max_new_tokens: int | None = None) -> list[Prediction]:
        """With `batched`, all of `queries` in one padded decode; else one query after the other."""
        budget = self.codec.check_request(queries, max_new_tokens)
        prompts = [self.codec.prompt_ids(query) for query in queries]
        if self.batched:
            outputs = self.generator.generate_batch(prompts, budget)
        else:
            outputs = [self.generator.generate(prompt, budget) for prompt in prompts]
        predictions = []
        for query, generated in zip(queries, outputs, strict=True):
            intent, text = self.codec.decode(generated)
            predictions.append(Prediction(query=query, intent=intent, generated_text=text))
        return predictions
