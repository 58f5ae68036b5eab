"""Dynamic batching: concurrent requests with the same sampling parameters share one generate call.

Requests are queued; the worker takes the first waiting request, waits up to ``window_ms`` for
more (at most ``max_batch``), groups them by their sampling parameters and runs each group as
one batched call in a dedicated single thread (the model is never used by two threads at
once). Requests that arrive while a batch is generating form the next batch. Seeded requests
run alone, so a seed reproduces the same output whatever else is in flight.

A streamed request passes a ``sink`` with its prompt; when a batch holds any, ``run_batch`` is
called as ``run_batch(prompts, params, sinks)`` (one sink or None per prompt) and hands each
sink its prompt's tokens as they are generated. Streams share batches like any other request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Sequence, TypeVar

logger = logging.getLogger(__name__)

P = TypeVar("P")  # prompt
R = TypeVar("R")  # result of one prompt


@dataclass(frozen=True)
class BatchingConfig:
    """How the batcher groups requests.

    max_batch: most prompts in one generate call (1 = one request at a time).
    window_ms: how long the first request of a batch waits for company.
    """

    max_batch: int = 16
    window_ms: float = 10.0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.window_ms < 0:
            raise ValueError(f"window_ms must be >= 0, got {self.window_ms}")


@dataclass
class _Item(Generic[P]):
    prompt: P
    params: Any
    key: Hashable
    future: asyncio.Future
    sink: Any = None


class DynamicBatcher(Generic[P, R]):
    """Batch concurrent ``submit`` calls into calls of ``run_batch(prompts, params)``.

    ``run_batch`` is a blocking function returning one result per prompt, in order.
    ``on_batch(size)`` (optional) is called with each batch size, e.g. for metrics.
    """

    def __init__(self, run_batch: Callable[[list[P], Any], Sequence[R]], config: BatchingConfig | None = None,
                 *, on_batch: Callable[[int], None] | None = None) -> None:
        self.run_batch = run_batch
        self.config = config or BatchingConfig()
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Item[P]] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._unique = itertools.count()

    async def start(self) -> None:
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="distillscope-generate")
        self._task = asyncio.create_task(self._loop(), name="distillscope-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def submit(self, prompt: P, params: Any, *, alone: bool = False, sink: Any = None) -> R:
        """Queue one prompt; resolves to its result. ``alone`` keeps it out of shared batches;
        ``sink`` (for streams) is handed to ``run_batch`` with the prompt (see the module doc)."""
        if self._queue is None:
            await self.start()
        assert self._queue is not None
        key: Hashable = ("alone", next(self._unique)) if alone else params
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(prompt, params, key, fut, sink))
        return await fut

    async def _collect(self, first: _Item[P]) -> list[_Item[P]]:
        assert self._queue is not None
        items = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.window_ms / 1000.0
        while len(items) < self.config.max_batch:
            try:
                items.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return items

    async def _loop(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            items = await self._collect(first)
            groups: dict[Hashable, list[_Item[P]]] = {}
            for item in items:
                groups.setdefault(item.key, []).append(item)
            for group in groups.values():
                await self._run_group(group[0].params, group)

    async def _run_group(self, params: Any, group: list[_Item[P]]) -> None:
        live = [item for item in group if not item.future.cancelled()]
        if not live:
            return
        if self.on_batch is not None:
            self.on_batch(len(live))
        loop = asyncio.get_running_loop()
        args: list[Any] = [[item.prompt for item in live], params]
        if any(item.sink is not None for item in live):
            args.append([item.sink for item in live])
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, *args)
            if len(results) != len(live):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(live)} prompts")
        except Exception as exc:  # delivered to every waiting request, the loop goes on
            logger.exception("batched generation failed for %d request(s)", len(live))
            for item in live:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        for item, result in zip(live, results):
            if not item.future.done():
                item.future.set_result(result)
