"""``distillscope serve --workers 2``: /metrics sums every worker (prometheus multiprocess collector)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from pathlib import Path

import httpx
import pytest

import distillscope
from distillscope.gateway import AccountStore, Limits, ServerThread, make_engine, stub_upstream_app
from distillscope.gateway.server import free_port


def _count(text: str) -> float:
    m = re.search(r'^distillscope_requests_total\{endpoint="/v1/chat/completions",status="200"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.slow
def test_metrics_count_the_requests_of_every_worker(tmp_path):
    with ServerThread(stub_upstream_app()) as upstream:
        port = free_port()
        env = {"DISTILLSCOPE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": str(Path(distillscope.__file__).parents[1])}  # this checkout's code
        proc = subprocess.Popen([sys.executable, "-m", "distillscope", "serve", "--upstream", upstream.url,
                                 "--port", str(port), "--workers", "2", "--log-level", "warning"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if httpx.get(url + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            assert proc.poll() is None, proc.communicate()[0]
            store = AccountStore(make_engine(f"sqlite:///{tmp_path / 'gateway.sqlite'}"))
            store.create_account("acme", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
            headers = {"Authorization": f"Bearer {store.create_key('acme')[0]}"}
            body = {"model": "stub-echo", "messages": [{"role": "user", "content": "x"}]}
            n = 40
            for _ in range(n):  # new connections: the kernel spreads them over both workers
                with httpx.Client(base_url=url) as client:
                    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
            counts = set()
            for _ in range(10):
                with httpx.Client(base_url=url) as client:
                    counts.add(_count(client.get("/metrics").text))
            assert counts == {float(n)}, counts  # whichever worker answers, it reports all requests
            rows = store.engine.connect().exec_driver_sql("select count(*) from request_log").scalar()
            assert rows == n + 0  # /metrics and /readyz are not API requests
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    assert list((tmp_path / "metrics").iterdir())  # the workers' values lived under the home
