"""Schema fuzzing (schemathesis, every check it has): every operation in the gateway's OpenAPI schema,
valid and invalid inputs — never a 5xx, valid requests accepted, invalid ones refused, every status,
content type and body as the schema declares, always an OpenAI-style error body."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS, load_all_checks

from distillscope.gateway import GatewayConfig, Limits, ServerThread, StubBackend, create_app
from distillscope.settings import load_settings

ADMIN_TOKEN = "fuzz-admin-token-0123456789"
# More examples per operation for a deeper run: DISTILLSCOPE_FUZZ_SCALE=10 pytest tests/test_gateway_fuzz.py
SCALE = int(os.environ.get("DISTILLSCOPE_FUZZ_SCALE", "1"))


def _all_checks():
    load_all_checks()
    return list(CHECKS.get_all())


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz-home")
    app = create_app(load_settings(home=home, admin_token=ADMIN_TOKEN),
                     backend=StubBackend(model_ids=()),  # any model name is served
                     config=GatewayConfig(max_tokens_cap=256, max_prompt_chars=4000, max_choices=8,
                                          admin_max_failures=0))  # the fuzzer sends wrong tokens on purpose
    with ServerThread(app) as server:
        state = app.state.gateway
        state.store.create_account("fuzzer", limits=Limits(rpm=None, tpm=None, max_concurrent=None))
        key, _ = state.store.create_key("fuzzer")
        yield server, state, key


def _operations(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    ops = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in ops} >= {"/v1/chat/completions", "/v1/completions", "/v1/models", "/healthz"}
    return ops


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzing_the_schema_finds_no_server_error(fuzz_server, mode):
    server, state, key = fuzz_server
    before = state.request_log.count()
    checked = []
    checks = _all_checks()
    assert len(checks) >= 10
    for op in _operations(server):
        is_admin = op.path.startswith("/admin")
        token = ADMIN_TOKEN if is_admin else key
        examples = SCALE * (15 if op.path.startswith("/v1/") and op.method.upper() == "POST" else 8)
        strategy = op.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):
            response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            case.validate_response(response, checks=checks)
            if response.status_code >= 400 and op.path.startswith("/v1/"):
                body = response.json()
                assert set(body["error"]) == {"message", "type", "param", "code"}, body
                assert "Traceback" not in response.text
            checked.append((op.path, response.status_code))

        try:
            run()
        except Unsatisfiable:  # nothing to break in this operation (e.g. no parameters in negative mode)
            assert mode == "negative"
    assert len(checked) > 40
    if mode == "positive":  # the fuzzer got through validation, auth and limits on the API
        assert ("/v1/chat/completions", 200) in checked and ("/v1/completions", 200) in checked
    else:
        assert any(p.startswith("/v1/") and 400 <= s < 500 for p, s in checked)
    assert state.request_log.count() > before
