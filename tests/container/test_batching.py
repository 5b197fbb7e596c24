"""`byoc.batching.Batcher` on an event loop, and the serving settings that drive it.

The predictor here is a stand-in that records its calls: what is tested is how requests are merged
into calls and how answers and errors are split back, which the real model cannot show (its calls are
not observable). The real model's batched decoding is tested in test_onnx.py, and the whole server
with the real model in test_server_process.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from byoc import environment
from byoc.batching import Batcher, ModelFailure
from byoc.errors import UserError
from byoc.predictor import Prediction


@dataclass
class RecordingPredictor:
    """Answers `query -> intent "echo:" + query`; refuses a query "bad"; fails on a query "boom"."""

    labels: tuple[str, ...] = ("echo",)
    backend: str = "stand-in"
    device: str = "cpu"
    max_new_tokens_limit: int = 8
    calls: list[tuple[tuple[str, ...], int | None]] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)

    def predict(self, queries: Sequence[str], max_new_tokens: int | None = None) -> list[Prediction]:
        self.calls.append((tuple(queries), max_new_tokens))
        self.threads.add(threading.current_thread().name)
        if "bad" in queries:
            raise ValueError("a bad query")
        if "boom" in queries:
            raise RuntimeError("the model broke")
        return [Prediction(query, f"echo:{query}", " echo") for query in queries]


def run_concurrently(
    batcher: Batcher, requests: list[tuple[tuple[str, ...], int | None]]
) -> list[list[Prediction] | BaseException]:
    async def main() -> list[list[Prediction] | BaseException]:
        tasks = [batcher.predict(queries, budget) for queries, budget in requests]
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    return asyncio.run(main())


def intents(result: list[Prediction] | BaseException) -> list[str | None]:
    assert isinstance(result, list), result
    return [p.intent for p in result]


def test_concurrent_requests_go_to_the_model_in_one_call_and_get_their_own_answers() -> None:
    predictor = RecordingPredictor()
    batcher = Batcher(predictor, enabled=True, wait_s=0.01)
    results = run_concurrently(batcher, [(("a", "b"), None), (("c",), None), (("d", "e", "f"), None)])
    assert predictor.calls == [(("a", "b", "c", "d", "e", "f"), None)]
    assert [intents(r) for r in results] == [["echo:a", "echo:b"], ["echo:c"], ["echo:d", "echo:e", "echo:f"]]
    assert all(name.startswith("batch") for name in predictor.threads)  # off the event loop


def test_requests_with_other_token_budgets_are_not_merged() -> None:
    predictor = RecordingPredictor()
    batcher = Batcher(predictor, enabled=True, wait_s=0.01)
    results = run_concurrently(batcher, [(("a",), 2), (("b",), 3), (("c",), 2)])
    assert sorted(predictor.calls) == [(("a", "c"), 2), (("b",), 3)]
    assert [intents(r) for r in results] == [["echo:a"], ["echo:b"], ["echo:c"]]


def test_a_batch_holds_at_most_max_queries() -> None:
    predictor = RecordingPredictor()
    batcher = Batcher(predictor, enabled=True, wait_s=0.01, max_queries=4)
    results = run_concurrently(batcher, [((f"q{i}a", f"q{i}b", f"q{i}c"), None) for i in range(4)])
    assert [len(queries) for queries, _ in predictor.calls] == [3, 3, 3, 3]
    assert [intents(r)[0] for r in results] == ["echo:q0a", "echo:q1a", "echo:q2a", "echo:q3a"]


def test_an_error_is_answered_to_the_request_that_caused_it_only() -> None:
    predictor = RecordingPredictor()
    batcher = Batcher(predictor, enabled=True, wait_s=0.01)
    results = run_concurrently(batcher, [(("a",), None), (("bad",), None), (("boom",), None), (("d",), None)])
    assert intents(results[0]) == ["echo:a"] and intents(results[3]) == ["echo:d"]
    assert isinstance(results[1], ValueError) and str(results[1]) == "a bad query"
    assert isinstance(results[2], ModelFailure)
    assert str(results[2]) == "the model failed: RuntimeError: the model broke"
    # The merged call failed, then each request was asked alone.
    assert predictor.calls[0] == (("a", "bad", "boom", "d"), None) and len(predictor.calls) == 5


def test_batching_off_calls_the_model_once_per_request() -> None:
    predictor = RecordingPredictor()
    batcher = Batcher(predictor, enabled=False, wait_s=0.01)
    results = run_concurrently(batcher, [(("a", "b"), None), (("c",), None)])
    assert sorted(predictor.calls) == [(("a", "b"), None), (("c",), None)]
    assert [intents(r) for r in results] == [["echo:a", "echo:b"], ["echo:c"]]


def test_serving_settings_defaults_and_overrides() -> None:
    default = environment.serving_settings({})
    assert default.workers == environment.cpu_count() and default.batching
    assert default.batch_wait_s == pytest.approx(0.002)
    chosen = environment.serving_settings(
        {"SAGEMAKER_MODEL_SERVER_WORKERS": "3", "BYOC_BATCHING": "OFF", "BYOC_BATCH_WAIT_MS": "0"}
    )
    assert (chosen.workers, chosen.batching, chosen.batch_wait_s) == (3, False, 0.0)
    assert chosen.threads_per_worker == max(1, environment.cpu_count() // 3)


@pytest.mark.parametrize(
    "env",
    [
        {"SAGEMAKER_MODEL_SERVER_WORKERS": "two"},
        {"SAGEMAKER_MODEL_SERVER_WORKERS": "0"},
        {"BYOC_BATCHING": "maybe"},
        {"BYOC_BATCH_WAIT_MS": "soon"},
        {"BYOC_BATCH_WAIT_MS": "500"},
    ],
)
def test_bad_serving_settings_are_clear_errors(env: dict[str, str]) -> None:
    with pytest.raises(UserError) as caught:
        environment.serving_settings(env)
    assert next(iter(env)) in str(caught.value)
