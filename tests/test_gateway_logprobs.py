"""Log-probabilities leave the gateway as JSON numbers, whatever the watermark scheme."""

from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient

from distillscope.gateway import BatchingConfig, GatewayConfig, Limits, LocalBackend, create_app
from distillscope.gateway.generation import LOGPROB_FLOOR, finite_logprob
from distillscope.settings import load_settings
from distillscope.watermark import WatermarkKey, make_scheme


def test_finite_logprob_maps_impossible_tokens_to_the_openai_floor():
    assert finite_logprob(-math.inf) == LOGPROB_FLOOR
    assert finite_logprob(float("nan")) == LOGPROB_FLOOR
    assert finite_logprob(-0.25) == -0.25


@pytest.mark.slow
def test_gumbel_watermarked_logprobs_are_valid_json(tmp_path, tiny_loaded):
    # The Gumbel scheme leaves one possible token per step: every alternative has logprob -inf.
    scheme = make_scheme("gumbel", WatermarkKey.generate())
    backend = LocalBackend.from_loaded(tiny_loaded, scheme, batching=BatchingConfig(max_batch=1, window_ms=1))
    app = create_app(load_settings(home=tmp_path), backend=backend,
                     config=GatewayConfig(max_tokens_cap=16, default_max_tokens=8))
    with TestClient(app) as http:
        state = app.state.gateway
        state.store.create_account("a", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        key, _ = state.store.create_key("a")
        resp = http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": http.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
                               .json()["data"][0]["id"],
                               "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
                               "logprobs": True, "top_logprobs": 3})
        assert resp.status_code == 200, resp.text
        body = json.loads(resp.text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
        entries = body["choices"][0]["logprobs"]["content"]
        assert entries
        alts = [a["logprob"] for e in entries for a in e["top_logprobs"]]
        assert all(math.isfinite(v) and v >= LOGPROB_FLOOR for v in alts)
        assert LOGPROB_FLOOR in alts  # the impossible alternatives are reported at the floor
