"""The inference interface that `serve` uses: load a trained model directory, predict intents.

Two back ends answer the same `Predictor` protocol:

- `onnx` (default when `model.onnx` exists): onnxruntime, numpy and tokenizers only. Loading it never
  imports torch or transformers, so a server starts in well under a second.
- `torch`: the safetensors weights with transformers' GPT-Neo, for when the export is absent or unwanted,
  and the one back end that runs on a GPU (`device="cuda"`, `BYOC_INFERENCE_DEVICE=cuda`).

The back end is chosen by the `backend` argument, else by `BYOC_INFERENCE_BACKEND`, else torch on a
GPU, else by whether the export exists. Both decode greedily and decode a call's queries as one padded
batch (`batched`, the default) whose tokens are those of each query alone, so an answer never depends on
which other queries share its call. `predict` is safe to call from several threads at once.
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
    device: str
    max_new_tokens_limit: int

    def predict(self, queries: Sequence[str], max_new_tokens: int | None = None) -> list[Prediction]:
        """One prediction per query, in order. Raises ValueError for a bad query or token count."""
        ...


def resolve_backend(model_dir: Path, backend: str | None = None, device: str = "cpu") -> str:
    """The explicit argument, else `BYOC_INFERENCE_BACKEND`, else torch on `cuda`, else onnx when the
    export exists; ValueError for an unknown back end or onnx on `cuda` (the image's onnxruntime is the
    CPU build)."""
    chosen = backend if backend is not None else os.environ.get(BACKEND_ENV, "").strip().lower()
    if not chosen:
        if device == "cuda":
            return "torch"
        return "onnx" if (model_dir / ONNX_FILE).is_file() else "torch"
    if chosen not in BACKENDS:
        raise ValueError(f"unknown inference backend {chosen!r}; expected one of {', '.join(BACKENDS)}")
    if chosen == "onnx" and device == "cuda":
        raise ValueError(
            "the onnx back end runs on the CPU only (this image has onnxruntime's CPU build); "
            "on cuda, serve with the torch back end"
        )
    return chosen


def load_predictor(
    model_dir: Path,
    backend: str | None = None,
    *,
    threads: int | None = None,
    batched: bool = True,
    device: str = "cpu",
) -> Predictor:
    """Loads the model in `model_dir` for `backend` on `device`; raises ModelLoadError when it cannot be
    served (a ValueError from `resolve_backend` for a back end that cannot run there).

    `threads` caps onnxruntime's threads (a serving worker's share of the cores); `batched` is the padded
    batch decoding. The torch back end keeps its own thread limit.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    chosen = resolve_backend(model_dir, backend, device)
    # Imported here so that the onnx back end never loads torch.
    if chosen == "onnx":
        from byoc.onnx_inference import OnnxPredictor

        return OnnxPredictor.load(model_dir, threads, batched)
    from byoc.torch_inference import TorchPredictor

    return TorchPredictor.load(model_dir, device, batched)
