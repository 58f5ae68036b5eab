"""Group commit of request-log rows: fewer commits than rows, each row committed before its future
resolves (and so before its response), one bad row fails alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy.exc import IntegrityError

from distillscope.gateway import Limits, RequestLog, RequestRecord, ServerThread, StubBackend, create_app
from distillscope.gateway.db import make_engine, upgrade_database
from distillscope.gateway.logwriter import GroupCommitWriter
from distillscope.settings import load_settings


def _rec(i: int | str) -> RequestRecord:
    return RequestRecord(request_id=f"r{i}", ts=datetime.now(timezone.utc), endpoint="/v1/chat/completions",
                         status=200, account_id="acct_x", prompt_tokens=1, completion_tokens=2)


class _SlowLog:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.committed: set[str] = set()

    def write_many(self, records):
        time.sleep(0.05)  # a slow disk flush
        self.batches.append([r.request_id for r in records])
        self.committed.update(r.request_id for r in records)


def test_concurrent_rows_share_commits_and_resolve_only_after_theirs():
    log = _SlowLog()
    writer = GroupCommitWriter(log)
    futures = [writer.submit(_rec(i)) for i in range(20)]
    for i, f in enumerate(futures):
        f.result(timeout=10)
        assert f"r{i}" in log.committed  # resolved => committed
    assert sum(map(len, log.batches)) == 20 and len(log.batches) < 10
    writer.close()


def test_a_bad_row_fails_alone(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'g.sqlite'}")
    upgrade_database(engine)
    rl = RequestLog(engine)
    rl.write(_rec("dup"))
    writer = GroupCommitWriter(rl)
    gate = threading.Event()
    original = rl.write_many

    def held(records):  # hold the first commit so the next three queue up as one batch
        gate.wait(5)
        return original(records)
    rl.write_many = held
    first = writer.submit(_rec("first"))
    batch = [writer.submit(_rec(x)) for x in ("a", "dup", "b")]
    gate.set()
    first.result(timeout=10)
    assert batch[0].result(timeout=10) is None and batch[2].result(timeout=10) is None
    with pytest.raises(IntegrityError):
        batch[1].result(timeout=10)
    assert sorted(r.request_id for r in rl.query()) == ["ra", "rb", "rdup", "rfirst"]
    writer.close()


def test_the_gateway_group_commits_concurrent_requests(tmp_path):
    app = create_app(load_settings(home=tmp_path), backend=StubBackend())
    with ServerThread(app) as server:
        state = app.state.gateway
        state.store.create_account("acme", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        headers = {"Authorization": f"Bearer {state.store.create_key('acme')[0]}"}
        body = {"model": "stub-echo", "messages": [{"role": "user", "content": "hi"}]}

        def client(_: int) -> list[str]:
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
                return [c.post("/v1/chat/completions", json=body).headers["x-request-id"] for _ in range(10)]
        with ThreadPoolExecutor(8) as pool:
            ids = [i for chunk in pool.map(client, range(8)) for i in chunk]
        assert sorted(r.request_id for r in state.request_log.query(limit=None)) == sorted(ids)
        assert state.log_writer.rows == 80 and state.log_writer.batches < 80
