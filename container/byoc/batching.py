"""Server-side batching: the queries of a worker's concurrent requests go to the model in one call.

`Batcher.predict` is awaited by each request on the worker's event loop. With batching on (the
default; `BYOC_BATCHING=off` turns it off) the requests wait in a queue; one runner takes the oldest
request and every request that arrived within `BYOC_BATCH_WAIT_MS` (default 2 ms) of it, up to
`MAX_BATCH_QUERIES` queries with the same `max_new_tokens`, and calls the predictor once on a thread of
its own while the next requests queue up (those become the next batch). The wait is skipped for a lone
request after a lone request, so that one client alone never pays it. The onnx predictor decodes such
a call as one padded batch with the KV cache (see `byoc.onnx_inference`), and its greedy tokens are
those of each query alone.

A merged call that fails is retried one request at a time, so that a bad query or a model error is
answered to the request that caused it and never to its neighbours. With batching off each request
calls the predictor on its own thread, as many at once as there are requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from byoc.invocations import MAX_BATCH
from byoc.predictor import Prediction, Predictor

LOG: Final = logging.getLogger("byoc.serve")
MAX_BATCH_QUERIES: Final = MAX_BATCH
Result = list[Prediction] | Exception


class ModelFailure(Exception):
    """The model raised or answered wrongly: the request gets a 500 with this message."""


@dataclass
class _Pending:
    queries: tuple[str, ...]
    max_new_tokens: int | None
    future: asyncio.Future[list[Prediction]]
    arrived: float


class Batcher:
    """Merges concurrent requests' queries into one predictor call; used from one event loop only."""

    def __init__(
        self, predictor: Predictor, enabled: bool, wait_s: float, max_queries: int = MAX_BATCH_QUERIES
    ) -> None:
        self.predictor = predictor
        self.enabled = enabled
        self.wait_s = wait_s
        self.max_queries = max_queries
        self.max_new_tokens_limit = predictor.max_new_tokens_limit
        self._pending: list[_Pending] = []
        self._wakeup: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._last_batch_size = 0
        # One model call at a time when batching: onnxruntime already spreads a call over the cores.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="batch") if enabled else None

    async def predict(self, queries: Sequence[str], max_new_tokens: int | None) -> list[Prediction]:
        """The predictions for `queries`; raises ValueError (a 400) or ModelFailure (a 500)."""
        loop = asyncio.get_running_loop()
        if not self.enabled:
            result = await loop.run_in_executor(None, self._one, tuple(queries), max_new_tokens)
            return _unwrap(result)
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
            self._runner = loop.create_task(self._run(), name="batcher")
        future: asyncio.Future[list[Prediction]] = loop.create_future()
        self._pending.append(_Pending(tuple(queries), max_new_tokens, future, loop.time()))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                continue
            waited = loop.time() - self._pending[0].arrived
            # A lone client is not made to wait: the wait is for load, when the last batch was shared.
            shared = self._last_batch_size > 1 or len(self._pending) > 1
            if shared and waited < self.wait_s and self._queued_queries() < self.max_queries:
                await asyncio.sleep(self.wait_s - waited)
            batch = self._take()
            self._last_batch_size = len(batch)
            if self._pending:
                self._wakeup.set()
            try:
                results = await loop.run_in_executor(self._executor, self._call, batch)
            except Exception as error:  # a bug of ours: every request of the batch hears of it
                LOG.exception("batch failed")
                results = [ModelFailure(f"internal error: {type(error).__name__}") for _ in batch]
            for item, result in zip(batch, results, strict=True):
                if item.future.done():  # the client went away
                    continue
                if isinstance(result, Exception):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

    def _queued_queries(self) -> int:
        return sum(len(item.queries) for item in self._pending)

    def _take(self) -> list[_Pending]:
        """The oldest request and those after it with its `max_new_tokens`, up to `max_queries` queries."""
        first = self._pending[0]
        batch: list[_Pending] = []
        rest: list[_Pending] = []
        count = 0
        for item in self._pending:
            same_budget = item.max_new_tokens == first.max_new_tokens
            fits = same_budget and count + len(item.queries) <= self.max_queries
            if item is first or fits:
                batch.append(item)
                count += len(item.queries)
            else:
                rest.append(item)
        self._pending = rest
        return batch

    def _call(self, batch: list[_Pending]) -> list[Result]:
        if len(batch) > 1:
            queries = [query for item in batch for query in item.queries]
            try:
                predictions = self.predictor.predict(queries, batch[0].max_new_tokens)
            except Exception:
                predictions = []  # answered one request at a time below, each with its own error
            if len(predictions) == len(queries):
                results: list[Result] = []
                start = 0
                for item in batch:
                    results.append(predictions[start : start + len(item.queries)])
                    start += len(item.queries)
                return results
        return [self._one(item.queries, item.max_new_tokens) for item in batch]

    def _one(self, queries: tuple[str, ...], max_new_tokens: int | None) -> Result:
        try:
            predictions = self.predictor.predict(queries, max_new_tokens)
        except ValueError as error:
            return error
        except Exception as error:
            LOG.exception("prediction failed")
            return ModelFailure(f"the model failed: {type(error).__name__}: {error}")
        if len(predictions) != len(queries):
            return ModelFailure(
                f"the model answered {len(predictions)} predictions for {len(queries)} queries"
            )
        return predictions


def _unwrap(result: Result) -> list[Prediction]:
    if isinstance(result, Exception):
        raise result
    return result
