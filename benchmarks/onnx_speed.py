"""Greedy decoding speed: torch `generate` against onnxruntime (KV-cache export), on the same model.

Not a test: it prints, per preset, tokens/s and p50/p99 latency per query for both back ends and the
ratio. Each query decodes a fixed number of new tokens (no early stop at eos), so both back ends do the
same work. Goals: onnxruntime >= 5x torch for the tiny preset, >= 2.5x for 125m, 2 threads.

    .venv/bin/python benchmarks/onnx_speed.py                       # tiny (random) and 125m (random)
    .venv/bin/python benchmarks/onnx_speed.py --tiny-model-dir DIR  # tiny: a trained model directory

The 125m preset has random weights (its speed does not depend on them); exporting it takes ~20 s and
~3 GB of memory, and it runs only a few queries to stay bounded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from byoc.artifacts import format_completion, format_prompt
from byoc.modeling import from_preset
from byoc.onnx_export import export_onnx
from byoc.onnx_inference import OnnxGreedyGenerator
from byoc.torch_inference import greedy_generate, load_model

from harness.datasets import clinc150_split


@dataclass(frozen=True)
class Timing:
    backend: str
    tokens: int
    seconds: list[float]
    outputs: list[list[int]]

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / sum(self.seconds)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_backend(
    name: str, prompts: Sequence[list[int]], new_tokens: int, run: Callable[[list[int]], list[int]]
) -> Timing:
    run(prompts[0])  # warm up (first-call allocations, lazy initialisation)
    seconds = []
    outputs = []
    for prompt in prompts:
        started = time.perf_counter()
        generated = run(prompt)
        seconds.append(time.perf_counter() - started)
        if len(generated) != new_tokens:
            raise RuntimeError(f"{name} generated {len(generated)} tokens, expected {new_tokens}")
        outputs.append(generated)
    return Timing(name, new_tokens * len(prompts), seconds, outputs)


def report(
    preset: str, source: str, torch_timing: Timing, ort_timing: Timing, queries: int, new_tokens: int
) -> None:
    print(
        f"\n{preset} ({source}): {queries} queries x {new_tokens} new tokens, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  {'backend':<12} {'tokens/s':>10} {'p50 ms':>10} {'p99 ms':>10}")
    for timing in (torch_timing, ort_timing):
        p50, p99 = timing.percentile(0.5) * 1000, timing.percentile(0.99) * 1000
        print(f"  {timing.backend:<12} {timing.tokens_per_second:>10.1f} {p50:>10.1f} {p99:>10.1f}")
    ratio = ort_timing.tokens_per_second / torch_timing.tokens_per_second
    print(f"  onnxruntime / torch generate = {ratio:.2f}x")
    same = sum(a == b for a, b in zip(torch_timing.outputs, ort_timing.outputs, strict=True))
    print(f"  greedy tokens identical for {same} of {queries} queries")


def bench(
    preset: str, model_dir: Path | None, queries: Sequence[str], new_tokens: int, threads: int, work: Path
) -> None:
    if model_dir is None:
        texts = [format_prompt(q) + format_completion("intent") for q in queries]
        bundle = from_preset(preset, texts, seed=0)
        bundle.model.eval()  # type: ignore[no-untyped-call]
        model, tokenizer, eos = bundle.model, bundle.tokenizer, bundle.eos_token_id
        onnx_path = export_onnx(model, work / f"{preset}.onnx")
        source = "random weights"
    else:
        from byoc.artifacts import load_codec

        codec = load_codec(model_dir)
        model, tokenizer, eos = load_model(model_dir), codec.tokenizer, codec.spec.eos_token_id
        onnx_path = model_dir / "model.onnx"
        source = f"trained, {model_dir}"
    torch.set_num_threads(threads)  # load_model limits a small model to one thread; compare like for like
    prompts = [tokenizer.encode(format_prompt(q), add_special_tokens=False).ids for q in queries]
    generator = OnnxGreedyGenerator.from_file(onnx_path, eos, threads=threads)
    torch_timing = time_backend(
        "torch", prompts, new_tokens, lambda p: greedy_generate(model, p, new_tokens, eos, stop_at_eos=False)
    )
    ort_timing = time_backend(
        "onnxruntime", prompts, new_tokens, lambda p: generator.generate(p, new_tokens, stop_at_eos=False)
    )
    report(preset, source, torch_timing, ort_timing, len(prompts), new_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", default="tiny,125m", help="comma-separated: tiny, 125m")
    parser.add_argument(
        "--tiny-model-dir", type=Path, help="a trained tiny model directory (default: random)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny-queries", type=int, default=50)
    parser.add_argument("--125m-queries", dest="big_queries", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    queries = [example.query for example in clinc150_split("test")[::37]]
    with tempfile.TemporaryDirectory() as work:
        for preset in args.presets.split(","):
            count = args.tiny_queries if preset == "tiny" else args.big_queries
            model_dir = args.tiny_model_dir if preset == "tiny" else None
            bench(preset, model_dir, queries[:count], args.new_tokens, args.threads, Path(work))


if __name__ == "__main__":
    main()
