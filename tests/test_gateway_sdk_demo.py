"""The gateway's demo act (quick mode, the session's tiny teacher) and the `serve` command."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from distillscope.demo import DemoContext
from distillscope.gateway import ServerThread, stub_upstream_app
from distillscope.gateway.server import free_port
from distillscope.settings import load_settings


@pytest.mark.slow
def test_gateway_act_shows_accounts_limits_revocation_and_usage(tmp_path, tiny_loaded):
    from distillscope.demo import gateway_act
    from distillscope.watermark import WatermarkKey, make_scheme

    scheme = make_scheme("kgw", WatermarkKey.generate())
    ctx = DemoContext(settings=load_settings(home=tmp_path / "home"), workdir=tmp_path, quick=True,
                      artifacts={"teacher_loaded": tiny_loaded, "watermark_scheme": scheme})
    try:
        res = gateway_act.act(ctx)
        usage = {row[0]: row for row in res.rows}
        assert usage["rival-distill"][1] == "revoked" and usage["rival-distill"][4] == 1  # refused after revoke
        assert usage["trial-user"][4] == 1  # the 429
        assert sum(row[2] for row in res.rows) == ctx.artifacts["gateway_admin"].request_log.count()
        assert any("HTTP 403 key_revoked" in n for n in res.notes)
        assert any(scheme.config()["key_id"] in n for n in res.notes)
        # the gateway stays up for later acts
        admin = ctx.artifacts["gateway_admin"]
        admin.create_account("later-act")
        key, _ = admin.create_key("later-act")
        models = httpx.get(ctx.artifacts["gateway_url"] + "/models", headers={"Authorization": f"Bearer {key}"})
        assert models.json()["data"][0]["id"] == ctx.artifacts["gateway_model"]
    finally:
        for fn in ctx.artifacts.get("cleanup", []):
            fn()
    with pytest.raises(httpx.ConnectError):
        httpx.get(ctx.artifacts["gateway_url"].removesuffix("/v1") + "/healthz")


@pytest.mark.slow
def test_serve_command_with_two_workers_in_proxy_mode(tmp_path):
    with ServerThread(stub_upstream_app()) as upstream:
        port = free_port()
        env = {"DISTILLSCOPE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "distillscope", "serve", "--upstream", upstream.url,
                                 "--port", str(port), "--workers", "2", "--max-tokens-cap", "99",
                                 "--log-level", "warning"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.3)
            assert proc.poll() is None, proc.communicate()[0]
            health = httpx.get(url + "/healthz").json()
            assert health["backend"] == "proxy" and health["watermarked"] is False
            resp = httpx.post(url + "/v1/chat/completions", json={"model": "stub-echo", "max_tokens": 100,
                                                                  "messages": [{"role": "user", "content": "x"}]})
            assert resp.status_code == 401  # no key: refused, by a worker built from the environment
        finally:
            proc.terminate()
            out = proc.communicate(timeout=30)[0]
    assert "NOT watermarked" in out and "Traceback" not in out
