"""Export a trained GPT-Neo to ONNX with its KV cache: one graph for prefill and decode.

Inputs: `input_ids` [batch, new], `attention_mask` [batch, past + new], `position_ids` [batch, new],
and `past.<layer>.key` / `past.<layer>.value` [batch, heads, past, head_dim] for every layer (an empty
past, length 0, is the prefill). Outputs: `logits` [batch, new, vocab] and `present.<layer>.key` /
`present.<layer>.value` [batch, heads, past + new, head_dim].

Route (see FACTS.md): `torch.export.export(..., strict=False)` then `torch.onnx.export(program)`. The
direct dynamo export hangs on deep GPT-Neos; this one works for both presets. The graph is float32.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from transformers import DynamicCache, GPTNeoForCausalLM

from byoc.onnx_inference import ATTENTION_MASK, INPUT_IDS, LOGITS, POSITION_IDS, past_name, present_name

log = logging.getLogger(__name__)

OPSET = 18


class CachedStep(torch.nn.Module):
    """One forward step with an explicit, flat KV cache (what the ONNX graph computes)."""

    def __init__(self, model: GPTNeoForCausalLM) -> None:
        super().__init__()
        self.model = model
        self.layers = int(model.config.num_layers)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(self.layers)])
        output = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
            return_dict=True,
        )
        presents: list[torch.Tensor] = []
        for layer in output.cache.layers:
            presents.extend((layer.keys, layer.values))
        return (output.logits, *presents)


def _names(layers: int, prefix: str) -> list[str]:
    make = past_name if prefix == "past" else present_name
    return [make(layer, kind) for layer in range(layers) for kind in ("key", "value")]


def export_onnx(model: GPTNeoForCausalLM, path: Path) -> Path:
    """Writes the KV-cache graph of `model` (moved to CPU float32 for the export) to `path`."""
    model.float().cpu().eval()  # type: ignore[no-untyped-call]
    step = CachedStep(model).eval()
    config = model.config
    heads = int(config.num_heads)
    head_dim = int(config.hidden_size) // heads
    batch, new, past_length = 2, 3, 5
    example_past = [torch.zeros(batch, heads, past_length, head_dim) for _ in range(2 * step.layers)]
    example = (
        torch.ones(batch, new, dtype=torch.long),
        torch.ones(batch, past_length + new, dtype=torch.long),
        torch.arange(past_length, past_length + new, dtype=torch.long).repeat(batch, 1),
        *example_past,
    )
    auto = torch.export.Dim.AUTO
    dynamic_shapes = (
        {0: auto, 1: auto},
        {0: auto, 1: auto},
        {0: auto, 1: auto},
        # *past is one argument to torch.export: its shapes nest.
        tuple({0: auto, 2: auto} for _ in example_past),
    )
    input_names = [INPUT_IDS, ATTENTION_MASK, POSITION_IDS, *_names(step.layers, "past")]
    output_names = [LOGITS, *_names(step.layers, "present")]
    with torch.no_grad(), warnings.catch_warnings():
        # torch 2.13's own pytree code trips this deprecation of its dependency; nothing for us to fix.
        warnings.filterwarnings(
            "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
        )
        program = torch.export.export(step, example, dynamic_shapes=dynamic_shapes, strict=False)
        onnx_program = torch.onnx.export(
            program,
            (),
            input_names=input_names,
            output_names=output_names,
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    if onnx_program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx_program.save(str(path), external_data=False)
    log.info("onnx export written path=%s bytes=%d", path, path.stat().st_size)
    return path
