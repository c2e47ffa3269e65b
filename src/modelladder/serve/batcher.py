"""Dynamic micro-batching: concurrent requests share one forward pass.

Each request puts its (already preprocessed) items on an asyncio queue and awaits a future. One
worker task takes the first waiting request, gathers more until the batch holds `max_batch` items
or `max_wait_ms` has passed, runs the model once on all of them in a thread (so the event loop
keeps accepting requests meanwhile), and hands each request its own slice of the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class BatchStats:
    requests: int = 0
    items: int = 0
    batches: int = 0
    largest_batch: int = 0  # requests in the largest batch so far
    sizes: dict[int, int] = field(default_factory=dict)  # requests per batch -> how many batches

    def add(self, n_requests: int, n_items: int) -> None:
        self.requests += n_requests
        self.items += n_items
        self.batches += 1
        self.largest_batch = max(self.largest_batch, n_requests)
        self.sizes[n_requests] = self.sizes.get(n_requests, 0) + 1

    def as_dict(self) -> dict:
        return {"requests": self.requests, "items": self.items, "batches": self.batches,
                "largest_batch": self.largest_batch,
                "mean_requests_per_batch": round(self.requests / self.batches, 3) if self.batches else 0.0,
                "requests_per_batch": {str(k): v for k, v in sorted(self.sizes.items())}}


@dataclass
class _Pending:
    items: np.ndarray
    future: asyncio.Future


class MicroBatcher:
    """Runs `run_batch(items) -> scores` (row i of scores belongs to item i) on batches gathered from
    concurrent `submit` calls. Start it with `start()` inside the running event loop, end with `stop()`."""

    def __init__(self, run_batch: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 32,
                 max_wait_ms: float = 5.0):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._held: _Pending | None = None  # a request that did not fit the last batch: it opens the next

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def submit(self, items: np.ndarray) -> np.ndarray:
        """The scores for `items`, computed together with whatever other requests are waiting."""
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        pending = _Pending(items, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.future

    async def _work(self) -> None:
        while True:
            batch = await self._gather()
            await self._run(batch)

    async def _gather(self) -> list[_Pending]:
        loop = asyncio.get_running_loop()
        first = self._held or await self._queue.get()
        self._held = None
        batch, n_items = [first], len(first.items)
        deadline = loop.time() + self.max_wait
        while n_items < self.max_batch:
            try:
                if self._queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                else:
                    nxt = self._queue.get_nowait()
            except asyncio.TimeoutError:
                break
            if n_items + len(nxt.items) > self.max_batch:
                self._held = nxt
                break
            batch.append(nxt)
            n_items += len(nxt.items)
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if not p.future.done()]  # a client that hung up cancels its future
        if not live:
            return
        try:
            scores = await asyncio.to_thread(self.run_batch, np.concatenate([p.items for p in live]))
        except Exception as err:  # noqa: BLE001 (each waiting request gets the error, the worker lives on)
            for p in live:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        self.stats.add(len(live), sum(len(p.items) for p in live))
        start = 0
        for p in live:
            if not p.future.done():
                p.future.set_result(scores[start : start + len(p.items)])
            start += len(p.items)
