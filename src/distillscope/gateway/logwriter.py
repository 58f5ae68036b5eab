"""Group commit of request-log rows: concurrent requests share one transaction and one disk flush.

Each request hands its row to :meth:`GroupCommitWriter.submit` and awaits the returned future; a
single writer thread takes every row waiting at that moment (up to ``max_batch``), writes them
with :meth:`~distillscope.gateway.requestlog.RequestLog.write_many` in one transaction and only
then resolves their futures. So the guarantee is unchanged — a request's row is committed before
its response is sent — but N concurrent requests cost one commit (one ``fsync`` with SQLite's
``synchronous=FULL``, one WAL flush on PostgreSQL) instead of N. A request alone waits for no one:
the thread writes as soon as a row arrives. If a batch fails, its rows are retried one by one, so
one bad row cannot fail the others; a database that is down fails each of them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 256


class GroupCommitWriter:
    """One writer thread in front of a :class:`~distillscope.gateway.requestlog.RequestLog`."""

    def __init__(self, request_log: Any, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.request_log = request_log
        self.max_batch = max_batch
        self.batches = 0          # commits made, for tests and metrics
        self.rows = 0
        self._queue: queue.SimpleQueue[tuple[Any, Future] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="request-log-writer", daemon=True)
                    self._thread.start()

    def submit(self, record: Any) -> Future:
        """Queue ``record``; the future resolves (to None) once its row is committed, or raises."""
        self._ensure_thread()
        future: Future = Future()
        self._queue.put((record, future))
        return future

    async def write(self, record: Any) -> None:
        """Submit ``record`` and wait, without blocking the event loop, until it is committed."""
        await asyncio.wrap_future(self.submit(record))

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Any, Future]]) -> None:
        try:
            self.request_log.write_many([record for record, _ in batch])
        except Exception as exc:  # noqa: BLE001 - reported on each future
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            logger.warning("a group commit of %d request-log rows failed (%s); writing them one by one",
                           len(batch), type(exc).__name__)
            for item in batch:
                self._commit([item])
            return
        self.batches += 1
        self.rows += len(batch)
        for _, future in batch:
            future.set_result(None)
