"""The ONNX export and both inference back ends, on the session's trained model and real queries."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from byoc.environment import BACKEND_ENV
from byoc.errors import ModelLoadError
from byoc.onnx_inference import OnnxPredictor
from byoc.predictor import load_predictor, resolve_backend
from byoc.torch_inference import TorchPredictor, greedy_generate, greedy_generate_batch, torch_device

from harness.datasets import LabelledQuery
from tests.container.conftest import REPO_ROOT, TrainedModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def onnx_predictor(trained_model: TrainedModel) -> OnnxPredictor:
    return OnnxPredictor.load(trained_model.model_dir)


@pytest.fixture(scope="module")
def torch_predictor(trained_model: TrainedModel) -> TorchPredictor:
    return TorchPredictor.load(trained_model.model_dir)


@pytest.fixture(scope="module")
def held_out_queries(clinc10: tuple[list[LabelledQuery], ...]) -> list[str]:
    """Held-out queries: every 20th of the clinc10 test split (15 queries over the 10 intents)."""
    return [example.query for example in clinc10[2][::20]]


def test_greedy_tokens_match_torch_generate_exactly(
    onnx_predictor: OnnxPredictor, torch_predictor: TorchPredictor, held_out_queries: list[str]
) -> None:
    eos = onnx_predictor.codec.spec.eos_token_id
    budget = onnx_predictor.max_new_tokens_limit
    for query in held_out_queries:
        prompt = onnx_predictor.codec.prompt_ids(query)
        expected = greedy_generate(torch_predictor.model, prompt, budget, eos)
        assert onnx_predictor.generator.generate(prompt, budget) == expected, query
        assert expected[-1] == eos  # a trained model ends its answer


def test_tokens_match_past_the_local_attention_window(
    onnx_predictor: OnnxPredictor, torch_predictor: TorchPredictor, held_out_queries: list[str]
) -> None:
    window = int(torch_predictor.model.config.window_size)
    eos = onnx_predictor.codec.spec.eos_token_id
    new_tokens = 60
    for query in held_out_queries[:6]:
        prompt = onnx_predictor.codec.prompt_ids(query)
        assert len(prompt) + new_tokens > window + 16
        expected = greedy_generate(torch_predictor.model, prompt, new_tokens, eos, stop_at_eos=False)
        assert len(expected) == new_tokens
        assert onnx_predictor.generator.generate(prompt, new_tokens, stop_at_eos=False) == expected, query


def test_batched_decoding_gives_each_querys_own_greedy_tokens(
    onnx_predictor: OnnxPredictor, clinc10: tuple[list[LabelledQuery], ...]
) -> None:
    """One padded batch (left padding, masked, per-row positions, the KV cache) equals each query alone."""
    generator = onnx_predictor.generator
    # Prompts of many lengths, among them one cut to the longest prompt the model takes.
    queries = [*[example.query for example in clinc10[2][::7]][:40], "hi", "x " * 400]
    prompts = [onnx_predictor.codec.prompt_ids(query) for query in queries]
    assert len({len(prompt) for prompt in prompts}) > 10
    budget = onnx_predictor.max_new_tokens_limit
    together = generator.generate_batch(prompts, budget)
    assert together == [generator.generate(prompt, budget) for prompt in prompts]
    # Past the local attention window, rows leaving the batch at different steps (no eos stop here).
    window = 60
    together = generator.generate_batch(prompts[:6], window, stop_at_eos=False)
    assert together == [generator.generate(prompt, window, stop_at_eos=False) for prompt in prompts[:6]]
    assert generator.generate_batch([], budget) == []


def test_batched_and_unbatched_predictors_agree(
    trained_model: TrainedModel, held_out_queries: list[str]
) -> None:
    batched = OnnxPredictor.load(trained_model.model_dir, threads=1, batched=True)
    alone = OnnxPredictor.load(trained_model.model_dir, threads=1, batched=False)
    for budget in (1, 3, None):
        assert batched.predict(held_out_queries, budget) == alone.predict(held_out_queries, budget)


def test_torch_batched_decoding_gives_each_querys_own_greedy_tokens(
    torch_predictor: TorchPredictor, clinc10: tuple[list[LabelledQuery], ...]
) -> None:
    """The torch back end's batch (left padding, masked; what a GPU worker decodes) equals each query
    alone, prompts of many lengths among them the longest the model takes."""
    codec = torch_predictor.codec
    queries = [*[example.query for example in clinc10[2][::9]][:30], "hi", "x " * 400]
    prompts = [codec.prompt_ids(query) for query in queries]
    assert len({len(prompt) for prompt in prompts}) > 8
    eos, budget = codec.spec.eos_token_id, torch_predictor.max_new_tokens_limit
    alone = [greedy_generate(torch_predictor.model, prompt, budget, eos) for prompt in prompts]
    assert greedy_generate_batch(torch_predictor.model, prompts, budget, eos) == alone
    assert greedy_generate_batch(torch_predictor.model, [], budget, eos) == []
    unbatched = TorchPredictor(codec, torch_predictor.model, batched=False)
    for tokens in (1, 3, None):
        assert torch_predictor.predict(queries, tokens) == unbatched.predict(queries, tokens)


def test_the_torch_device_is_checked_before_the_weights_load(trained_model: TrainedModel) -> None:
    """This machine has no GPU and a CPU build of torch: `cuda` is refused with the reason, never
    served on the CPU instead."""
    assert torch_device("cpu").type == "cpu"
    with pytest.raises(ModelLoadError, match="CPU build"):
        load_predictor(trained_model.model_dir, device="cuda")
    with pytest.raises(ValueError, match="CPU only"):
        load_predictor(trained_model.model_dir, "onnx", device="cuda")
    with pytest.raises(ModelLoadError, match="unknown inference device"):
        torch_device("tpu")
    assert resolve_backend(trained_model.model_dir, device="cuda") == "torch"
    assert resolve_backend(trained_model.model_dir) == "onnx"


def test_a_cuda_build_without_a_usable_gpu_names_the_driver_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in (no CUDA build of torch can run here): a CUDA 13 torch on a host whose driver is too old
    (SageMaker's default hosting AMIs of ml.g5: driver 470) sees no GPU; the error names the AMI to use."""
    import torch

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="al2023-ami-sagemaker-inference-gpu-4-1"):
        torch_device("cuda")


def test_backends_give_the_same_predictions(
    onnx_predictor: OnnxPredictor, torch_predictor: TorchPredictor, held_out_queries: list[str]
) -> None:
    from_onnx = onnx_predictor.predict(held_out_queries)
    assert from_onnx == torch_predictor.predict(held_out_queries)
    assert [p.query for p in from_onnx] == held_out_queries
    known = [p for p in from_onnx if p.intent is not None]
    assert all(p.intent in onnx_predictor.labels and p.generated_text == p.intent for p in known)


def test_predictions_are_correct_on_held_out_queries(
    onnx_predictor: OnnxPredictor, clinc10: tuple[list[LabelledQuery], ...]
) -> None:
    examples = clinc10[2][::10]
    predictions = onnx_predictor.predict([e.query for e in examples])
    correct = sum(p.intent == e.intent for p, e in zip(predictions, examples, strict=True))
    assert correct / len(examples) >= 0.8


def test_predict_is_safe_from_many_threads(
    onnx_predictor: OnnxPredictor, held_out_queries: list[str]
) -> None:
    expected = [onnx_predictor.predict([query]) for query in held_out_queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda q: onnx_predictor.predict([q]), held_out_queries * 3))
    assert answers == expected * 3


def test_request_bounds_are_checked(onnx_predictor: OnnxPredictor) -> None:
    limit = onnx_predictor.max_new_tokens_limit
    assert onnx_predictor.predict([], max_new_tokens=limit) == []
    assert len(onnx_predictor.predict(["hello"], max_new_tokens=1)[0].generated_text) > 0
    for bad in (0, limit + 1, True, 2.0):
        with pytest.raises(ValueError, match="max_new_tokens"):
            onnx_predictor.predict(["hello"], max_new_tokens=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not one string"):
        onnx_predictor.predict("hello")
    with pytest.raises(ValueError, match="query 1 must be a string"):
        onnx_predictor.predict(["ok", 3])  # type: ignore[list-item]


def test_onnx_backend_imports_no_torch(trained_model: TrainedModel) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        sys.path.insert(0, {str(REPO_ROOT / "container")!r})
        started = time.monotonic()
        from byoc.predictor import load_predictor
        predictor = load_predictor(Path({str(trained_model.model_dir)!r}))
        answer = predictor.predict(["what is my bank balance"])[0]
        heavy = sorted(name for name in ("torch", "transformers") if name in sys.modules)
        seconds = time.monotonic() - started
        print(json.dumps({{"backend": predictor.backend, "heavy": heavy, "text": answer.generated_text,
                          "seconds": seconds}}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(result.stdout)
    assert report["backend"] == "onnx"
    assert report["heavy"] == []
    assert report["text"]
    # Import, load and one answer; torch alone takes over 2 s to import (FACTS.md). Loose for busy CI.
    assert report["seconds"] < 5.0


def test_backend_resolution(
    trained_model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert resolve_backend(trained_model.model_dir) == "onnx"
    assert resolve_backend(tmp_path) == "torch"  # no export there
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert resolve_backend(trained_model.model_dir) == "torch"
    assert resolve_backend(trained_model.model_dir, "onnx") == "onnx"  # the argument wins
    monkeypatch.setenv(BACKEND_ENV, "tensorrt")
    with pytest.raises(ValueError, match="unknown inference backend"):
        resolve_backend(trained_model.model_dir)


def test_torch_backend_via_load_predictor(trained_model: TrainedModel, held_out_queries: list[str]) -> None:
    predictor = load_predictor(trained_model.model_dir, "torch")
    assert predictor.backend == "torch"
    assert predictor.labels == load_predictor(trained_model.model_dir, "onnx").labels
    assert predictor.predict(held_out_queries[:3]) == load_predictor(trained_model.model_dir).predict(
        held_out_queries[:3]
    )


def _copy_model(trained_model: TrainedModel, target: Path) -> Path:
    shutil.copytree(trained_model.model_dir, target)
    return target


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_missing_or_corrupt_model_dir_is_a_clear_error(
    trained_model: TrainedModel, tmp_path: Path, backend: str
) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_predictor(tmp_path / "absent", backend)
    broken = _copy_model(trained_model, tmp_path / "broken")
    (broken / "labels.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no labels\.json"):
        load_predictor(broken, backend)
    corrupt = _copy_model(trained_model, tmp_path / "corrupt")
    (corrupt / "model.onnx").write_bytes(b"not an onnx graph")
    (corrupt / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        load_predictor(corrupt, backend)
    bad_manifest = _copy_model(trained_model, tmp_path / "manifest")
    manifest = json.loads((bad_manifest / "manifest.json").read_text())
    del manifest["generation"]["eos_token_id"]
    (bad_manifest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="generation"):
        load_predictor(bad_manifest, backend)
