"""The dynamic batcher: concurrent requests share generate calls, grouped by sampling parameters."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from distillscope.gateway import BatchingConfig, DynamicBatcher


class FakeModel:
    """Records every batched call; answers each prompt with (prompt, params, batch size)."""

    def __init__(self, seconds: float = 0.05, fail_on: str | None = None) -> None:
        self.calls: list[tuple[list[str], object]] = []
        self.seconds = seconds
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __call__(self, prompts: list[str], params: object) -> list[tuple[str, object, int]]:
        self.calls.append((list(prompts), params))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        if self.fail_on in prompts:
            raise RuntimeError("model failure")
        return [(p, params, len(prompts)) for p in prompts]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_one_call_per_parameter_set():
    model = FakeModel()

    async def main():
        b = DynamicBatcher(model, BatchingConfig(max_batch=16, window_ms=30))
        await b.start()
        try:
            jobs = [b.submit(f"p{i}", "A" if i % 2 else "B") for i in range(10)]
            return await asyncio.gather(*jobs)
        finally:
            await b.close()

    results = run(main())
    assert [r[0] for r in results] == [f"p{i}" for i in range(10)]  # each caller gets its own answer
    assert all(r[1] == ("A" if i % 2 else "B") for i, r in enumerate(results))
    assert sorted(len(prompts) for prompts, _ in model.calls) == [5, 5]
    assert {params for _, params in model.calls} == {"A", "B"}
    assert len(model.threads) == 1  # one dedicated generation thread


def test_max_batch_and_alone_requests():
    model = FakeModel(seconds=0.01)

    async def main():
        b = DynamicBatcher(model, BatchingConfig(max_batch=3, window_ms=30))
        try:
            jobs = [b.submit(f"p{i}", "A") for i in range(7)] + [b.submit("seeded", "A", alone=True)]
            return await asyncio.gather(*jobs)
        finally:
            await b.close()

    results = run(main())
    sizes = [len(prompts) for prompts, _ in model.calls]
    assert max(sizes) <= 3 and sum(sizes) == 8
    assert (["seeded"], "A") in model.calls  # never batched with others
    assert results[-1] == ("seeded", "A", 1)


def test_one_at_a_time_config_never_batches():
    model = FakeModel(seconds=0.0)

    async def main():
        b = DynamicBatcher(model, BatchingConfig(max_batch=1, window_ms=0))
        try:
            return await asyncio.gather(*(b.submit(f"p{i}", "A") for i in range(5)))
        finally:
            await b.close()

    run(main())
    assert [len(p) for p, _ in model.calls] == [1] * 5


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    model = FakeModel(fail_on="bad")

    async def main():
        b = DynamicBatcher(model, BatchingConfig(max_batch=8, window_ms=20))
        try:
            first = await asyncio.gather(b.submit("bad", "A"), b.submit("ok", "A"), return_exceptions=True)
            second = await b.submit("later", "A")
            return first, second
        finally:
            await b.close()

    first, second = run(main())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert second == ("later", "A", 1)


def test_batching_config_is_validated():
    with pytest.raises(ValueError, match="max_batch"):
        BatchingConfig(max_batch=0)
    with pytest.raises(ValueError, match="window_ms"):
        BatchingConfig(window_ms=-1)
