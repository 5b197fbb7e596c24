"""The inference interface that `serve` uses: load a trained model directory, predict intents.

Two back ends answer the same `Predictor` protocol:

- `onnx` (default when `model.onnx` exists): onnxruntime, numpy and tokenizers only. Loading it never
  imports torch or transformers, so a server starts in well under a second.
- `torch`: the safetensors weights with transformers' GPT-Neo, for when the export is absent or unwanted.

The back end is chosen by the `backend` argument, else by `BYOC_INFERENCE_BACKEND`, else by whether the
export exists. Both decode greedily; the onnx back end decodes a call's queries as one padded batch
(`batched`, the default) whose tokens are those of each query alone, so an answer never depends on which
other queries share its call. `predict` is safe to call from several threads at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from byoc.artifacts import ONNX_FILE
from byoc.environment import BACKEND_ENV
from byoc.errors import ModelLoadError
from byoc.prediction import Prediction

__all__ = ["BACKENDS", "Prediction", "Predictor", "load_predictor", "resolve_backend"]

BACKENDS = ("onnx", "torch")


class Predictor(Protocol):
    labels: tuple[str, ...]
    backend: str
    max_new_tokens_limit: int

    def predict(self, queries: Sequence[str], max_new_tokens: int | None = None) -> list[Prediction]:
        """One prediction per query, in order. Raises ValueError for a bad query or token count."""
        ...


def resolve_backend(model_dir: Path, backend: str | None = None) -> str:
    """The explicit argument, else `BYOC_INFERENCE_BACKEND`, else onnx when the export exists."""
    chosen = backend if backend is not None else os.environ.get(BACKEND_ENV, "").strip().lower()
    if not chosen:
        return "onnx" if (model_dir / ONNX_FILE).is_file() else "torch"
    if chosen not in BACKENDS:
        raise ValueError(f"unknown inference backend {chosen!r}; expected one of {', '.join(BACKENDS)}")
    return chosen


def load_predictor(
    model_dir: Path, backend: str | None = None, *, threads: int | None = None, batched: bool = True
) -> Predictor:
    """Loads the model in `model_dir` for `backend`; raises ModelLoadError when it cannot be served.

    `threads` caps onnxruntime's threads (a serving worker's share of the cores); `batched` is the onnx
    back end's padded batch decoding. The torch back end keeps its own thread limit and decodes alone.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    chosen = resolve_backend(model_dir, backend)
    # Imported here so that the onnx back end never loads torch.
    if chosen == "onnx":
        from byoc.onnx_inference import OnnxPredictor

        return OnnxPredictor.load(model_dir, threads, batched)
    from byoc.torch_inference import TorchPredictor

    return TorchPredictor.load(model_dir)
