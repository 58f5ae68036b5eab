"""Demo act: the teacher goes behind the gateway.

Starts the gateway in process on a loopback port (uvicorn in a thread, SQLite in the demo's
working directory), creates a few accounts, sends requests through the official ``openai`` SDK
(concurrently, so the dynamic batcher has work; one streamed), shows a per-key limit answering
429, revokes one account and shows its very next request refused, and prints the per-account
usage summary from the request log. The gateway keeps running for later acts:
``ctx.artifacts["gateway_url"]`` (API root, ``.../v1``), ``["gateway_model"]``,
``["gateway_admin"]`` (a :class:`DemoGateway`: ``create_account``, ``create_key``, ``store``,
``request_log``, ``stop``), ``["gateway_engine"]``; its shutdown is registered in
``ctx.artifacts["cleanup"]``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from distillscope.demo import ActResult, DemoContext

logger = logging.getLogger(__name__)

UNLIMITED = dict(rpm=None, tpm=None, max_concurrent=64)
# The demo gateway's dynamic batcher: the distillation act's harvest keeps BATCH requests in flight so the
# teacher answers them together (on 2 CPU cores a batch of 32 runs several times the tokens/s of a batch of
# 4). The window is wide enough for the requests of clients released by the previous batch to catch up
# (15 ms split the harvest into batches of 26 and 6); ~0.1 s is nothing next to a generate call.
BATCH, WINDOW_MS = 32, 100.0
QUESTIONS = ["What is a prime number?", "Name three rivers in Europe.", "How do plants make food?",
             "Explain recursion in one sentence.", "What is 12 times 7?", "Why is the sky blue?",
             "Give a synonym for quick.", "What does a CPU do?"]


class DemoGateway:
    """Handle on the demo's running gateway: accounts and keys, the log, and shutdown."""

    def __init__(self, server: Any, state: Any) -> None:
        self.server = server
        self.backend = state.backend
        self.store = state.store
        self.request_log = state.request_log
        self.engine = state.engine
        self.url = server.url + "/v1"

    def create_account(self, name: str, limits: Any = None) -> Any:
        """Create an account (demo accounts are unlimited unless ``limits`` is given)."""
        from distillscope.gateway import Limits

        return self.store.create_account(name, limits=limits or Limits(**UNLIMITED), actor="demo")

    def create_key(self, account: str) -> tuple[str, Any]:
        return self.store.create_key(account, actor="demo")

    def stop(self) -> None:
        self.server.stop()


def _teacher(ctx: DemoContext) -> tuple[Any, Any, str]:
    """(loaded model, watermark scheme, spec): act 1's when it ran, else loaded here."""
    spec = "tiny" if ctx.quick else ctx.settings.teacher
    loaded, scheme = ctx.artifacts.get("teacher_loaded"), ctx.artifacts.get("watermark_scheme")
    if loaded is None:
        from distillscope.teacher import load_model

        loaded = load_model(spec, settings=ctx.settings, dtype="bfloat16", device=ctx.settings.device,
                            progress=ctx.reporter)
    if scheme is None:
        from distillscope.errors import WatermarkError
        from distillscope.watermark import WatermarkKey, make_scheme, scheme_from_settings

        try:
            scheme = scheme_from_settings(ctx.settings)
        except WatermarkError:  # no key configured: the demo uses a fresh one
            scheme = make_scheme(ctx.settings.watermark_scheme, WatermarkKey.generate())
    return loaded, scheme, spec


def start_gateway(ctx: DemoContext) -> DemoGateway:
    from distillscope.gateway import BatchingConfig, GatewayConfig, LocalBackend, ServerThread, create_app

    loaded, scheme, spec = _teacher(ctx)
    backend = LocalBackend.from_loaded(loaded, scheme, batching=BatchingConfig(max_batch=BATCH, window_ms=WINDOW_MS),
                                       aliases=(spec,))
    settings = ctx.settings.model_copy(update={"database_url": f"sqlite:///{ctx.workdir / 'gateway.sqlite'}"})
    app = create_app(settings, backend=backend, config=GatewayConfig(max_tokens_cap=256, default_max_tokens=48))
    handle = DemoGateway(ServerThread(app).start(), app.state.gateway)
    ctx.artifacts.setdefault("cleanup", []).append(handle.stop)
    ctx.artifacts.update(gateway_url=handle.url, gateway_admin=handle, gateway_engine=handle.engine,
                         gateway_model=backend.info.model_ids[0])
    return handle


def _ask(client: Any, model: str, question: str, max_tokens: int) -> str:
    resp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                          max_tokens=max_tokens, temperature=0.7)
    return resp.choices[0].message.content or ""


def _traffic(gw: DemoGateway, model: str, keys: dict[str, str], max_tokens: int) -> list[str]:
    import openai

    clients = {name: openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0, timeout=300)
               for name, key in keys.items()}
    jobs = [(name, q) for i, q in enumerate(QUESTIONS) for name in (list(keys)[i % 3],)]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:  # concurrent: the batcher groups them
        list(pool.map(lambda job: _ask(clients[job[0]], model, job[1], max_tokens), jobs))
    notes = []
    stream = clients["acme-research"].chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=max_tokens, stream=True)
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    notes.append(f"streamed answer ({len(streamed)} chars) arrived over SSE through the openai SDK")
    trial = openai.OpenAI(base_url=gw.url, api_key=keys["trial-user"], max_retries=0)
    try:
        for _ in range(3):
            _ask(trial, model, "Hi!", 4)
    except openai.RateLimitError as exc:
        notes.append(f"trial-user hit its limit: HTTP 429, retry-after {exc.response.headers.get('retry-after')}s")
    gw.store.set_account_state("rival-distill", "revoked", reason="demo: distillation campaign", actor="demo")
    try:
        _ask(clients["rival-distill"], model, "One more question?", 4)
        notes.append("UNEXPECTED: the revoked account was served")
    except openai.PermissionDeniedError as exc:
        notes.append(f"rival-distill revoked; its next request was refused: HTTP 403 {exc.code}")
    return notes


def act(ctx: DemoContext) -> ActResult:
    from distillscope.gateway import Limits

    gw = start_gateway(ctx)
    model = ctx.artifacts["gateway_model"]
    keys = {}
    for name in ("acme-research", "lab-42", "rival-distill", "trial-user"):
        limits = Limits(rpm=2, tpm=None, max_concurrent=None) if name == "trial-user" else None
        gw.create_account(name, limits=limits)
        keys[name] = gw.create_key(name)[0]
    notes = [f"gateway on {gw.url} (model {model}, SQLite in {ctx.workdir / 'gateway.sqlite'})"]
    notes += _traffic(gw, model, keys, 16 if ctx.quick else 32)
    names = {a.account_id: (a.name, a.state.value) for a in gw.store.list_accounts()}
    rows = []
    for u in gw.request_log.usage():
        name, st = names.get(u.account_id, ("(failed auth)", "-"))
        rows.append((name, st, u.requests, u.accepted, u.rejected, u.prompt_tokens, u.completion_tokens))
    marked = sum(1 for r in gw.request_log.query(limit=None) if r.watermark_key_id == gw.backend.key_id)
    notes.append(f"{marked} logged answers carry watermark key id {gw.backend.key_id}; batch sizes of the "
                 f"generate calls: {dict(sorted(gw.backend.batch_counts.items()))}")
    return ActResult(title="2. Gateway: accounts, limits, revocation and the request log (per-account usage)",
                     columns=("account", "state", "requests", "accepted", "rejected", "prompt tok", "completion tok"),
                     rows=tuple(rows), notes=tuple(notes))
