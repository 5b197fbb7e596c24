"""Greedy generation with torch and transformers' `generate`: the `torch` back end, on CPU or a GPU.

It reads the safetensors weights that training wrote and decodes exactly as the onnx back end does
(same prompt ids, greedy, stop at eos), which the parity test checks token for token. A call's queries
are decoded as one left-padded batch (`batched`, the default), whose tokens are those of each query
alone (tested), so that the server's batching fills the device.

The device is `cpu` or `cuda` (`BYOC_INFERENCE_DEVICE`, see `byoc.environment`). `cuda` never falls back
to the CPU: a GPU instance whose driver cannot run this torch's CUDA build fails to load the model (and
`serve` exits 1, which SageMaker reports as a container that did not start), rather than serving slowly
on its CPU at a GPU's price.
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
from byoc.environment import CUDA_INFERENCE_AMI, DEVICE_ENV  # noqa: E402
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


def greedy_generate_batch(
    model: GPTNeoForCausalLM, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_token_id: int
) -> list[list[int]]:
    """`generate`, greedy, for several prompts at once: left-padded, masked (transformers derives each
    row's positions from the mask); each row's new ids end at its first eos, as `greedy_generate`'s."""
    if not prompts:
        return []
    width = max(len(prompt) for prompt in prompts)
    padded = [[eos_token_id] * (width - len(prompt)) + list(prompt) for prompt in prompts]
    mask = [[0] * (width - len(prompt)) + [1] * len(prompt) for prompt in prompts]
    input_ids = torch.tensor(padded, dtype=torch.long, device=model.device)
    attention_mask = torch.tensor(mask, dtype=torch.long, device=model.device)
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    with torch.inference_mode():
        output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
    rows: list[list[int]] = output[:, width:].tolist()
    return [row[: row.index(eos_token_id) + 1] if eos_token_id in row else row for row in rows]


def torch_device(name: str) -> torch.device:
    """The device for `BYOC_INFERENCE_DEVICE`; ModelLoadError when `cuda` cannot be used here."""
    if name == "cpu":
        return torch.device("cpu")
    if name != "cuda":
        raise ModelLoadError(f"unknown inference device {name!r}; expected cpu or cuda")
    if torch.version.cuda is None:
        raise ModelLoadError(
            f"{DEVICE_ENV}=cuda, but this torch ({torch.__version__}) is a CPU build: build the image where "
            "pip resolves torch from PyPI (its CUDA build), as CodeBuild does"
        )
    if not torch.cuda.is_available():
        raise ModelLoadError(
            f"{DEVICE_ENV}=cuda, but no GPU is usable: torch {torch.__version__} is built for CUDA "
            f"{torch.version.cuda}, which needs a GPU and an NVIDIA driver that runs it (on SageMaker "
            f"hosting: the production variant's InferenceAmiVersion {CUDA_INFERENCE_AMI})"
        )
    return torch.device("cuda")


def load_model(model_dir: Path, device: str = "cpu") -> GPTNeoForCausalLM:
    target = torch_device(device)  # first: a device that cannot be used fails before the weights load
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"model directory {model_dir} has no {name}")
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        model = GPTNeoForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    except Exception as error:  # transformers raises many types for unreadable weights or configs
        raise ModelLoadError(f"the GPT-Neo weights in {model_dir} cannot be loaded: {error}") from None
    model.eval()  # type: ignore[no-untyped-call]
    if target.type == "cpu":
        limit_cpu_threads(model)
    else:
        model.to(target)  # type: ignore[arg-type]
    return model


class TorchPredictor:
    """The `torch` back end of `byoc.predictor.Predictor`."""

    backend = "torch"

    def __init__(self, codec: PromptCodec, model: GPTNeoForCausalLM, batched: bool = True) -> None:
        self.codec = codec
        self.model = model
        self.batched = batched
        self.device = str(model.device.type)
        self.labels = codec.labels
        self.max_new_tokens_limit = codec.spec.max_new_tokens_limit
        # generate() keeps per-call state on the model's generation config: one call at a time.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path, device: str = "cpu", batched: bool = True) -> TorchPredictor:
        codec = load_codec(model_dir)
        return cls(codec, load_model(model_dir, device), batched)

    def predict(self, queries: Sequence[str], max_new_tokens: int | None = None) -> list[Prediction]:
        budget = self.codec.check_request(queries, max_new_tokens)
        eos = self.codec.spec.eos_token_id
        prompts = [self.codec.prompt_ids(query) for query in queries]
        with self._lock:
            if self.batched:
                generated = greedy_generate_batch(self.model, prompts, budget, eos)
            else:
                generated = [greedy_generate(self.model, prompt, budget, eos) for prompt in prompts]
        predictions = []
        for query, ids in zip(queries, generated, strict=True):
            intent, text = self.codec.decode(ids)
            predictions.append(Prediction(query=query, intent=intent, generated_text=text))
        return predictions
