"""Harvest a teacher through any OpenAI-compatible endpoint into a resumable store.

>>> summary = harvest(HarvestConfig(base_url="http://127.0.0.1:8000/v1", model="smollm2",
...                                 api_keys=["sk-..."]), ["What is entropy?"], "runs/harvest")  # doctest: +SKIP

Before any work: the store is checked (foreign or corrupt → :class:`DistillError`), the prompts
are validated, and the endpoint is probed (``GET /models`` with the first key, the model must be
listed; with ``logprobs > 0`` one tiny request decides whether token ids can be asked for).
Then requests run with bounded concurrency; keys rotate by :class:`KeyRing`; 429 (honouring
``retry-after``), 5xx, timeouts and dropped connections are retried with exponential backoff
and jitter (tenacity); every prompt ends as an ``ok`` record or an explicit failure record.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from distillscope import __version__
from distillscope.distill.harvest_client import TOKEN_IDS_FIELD, AttemptError, Completion, post_chat, preflight
from distillscope.distill.harvest_prompts import HarvestPrompt, normalize_prompts
from distillscope.distill.rotation import ROTATIONS, ApiKey, KeyRing
from distillscope.distill.store import HarvestError, HarvestRecord, HarvestStore, StoreWriter
from distillscope.errors import DistillError, InputDataError
from distillscope.progress import Progress, ensure_progress

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HarvestConfig:
    """How to harvest. Every field is recorded in the store manifest except the keys.

    base_url: OpenAI-compatible API root (``http://host:8000/v1``; ``/v1`` is added to a bare host).
    model: model id as listed by ``GET /models``.
    api_keys: one or more keys (never stored or logged; records name them ``key-0``, ``key-1`` ...).
    rotation: ``round-robin`` | ``random`` (seeded) | ``sticky-topic`` (one key per prompt topic).
    concurrency: requests in flight at once (default 8).
    rpm: pacing, requests per minute per key (None: no pacing).
    max_tokens, temperature, top_p: sampling parameters sent with each request.
    logprobs: top-k log-probabilities per completion token (0 = off; OpenAI allows up to 20).
    token_ids: send vLLM's ``return_tokens_as_token_ids``: None = auto (probe, fall back on 400).
    request_timeout: overall seconds per attempt. max_retries: retries after the first attempt.
    backoff_base, backoff_max: exponential backoff (seconds) with jitter between retries.
    seed: seeds the random rotation and the jitter.
    system_prompt: optional system message put before every prompt that is a plain string.
    cost_per_1k_prompt, cost_per_1k_completion: prices for the cost estimate.
    user_agent: User-Agent header. batch_size: records per fsynced append.
    tokenizer_hint: recorded in the manifest (default: the ``root`` the endpoint reports, or the model).
    """

    base_url: str
    model: str
    api_keys: Sequence[str] = field(repr=False, default=())
    rotation: str = "round-robin"
    concurrency: int = 8
    rpm: float | None = None
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    logprobs: int = 0
    token_ids: bool | None = None
    request_timeout: float = 60.0
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    seed: int = 0
    system_prompt: str | None = None
    cost_per_1k_prompt: float = 0.0
    cost_per_1k_completion: float = 0.0
    user_agent: str = f"distillscope-harvest/{__version__}"
    batch_size: int = 16
    tokenizer_hint: str | None = None

    def __post_init__(self) -> None:
        url = self.base_url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise DistillError(f"endpoint {self.base_url!r} is not an http(s) URL",
                               hint="pass e.g. --endpoint http://127.0.0.1:8000/v1")
        if httpx.URL(url).path in ("", "/"):
            url += "/v1"
        object.__setattr__(self, "base_url", url)
        keys = (self.api_keys,) if isinstance(self.api_keys, str) else tuple(self.api_keys)
        keys = tuple(k.strip() for k in keys if k and k.strip())
        object.__setattr__(self, "api_keys", keys)
        checks = [(bool(self.model.strip()), "model must not be empty", "pass --model"),
                  (self.rotation in ROTATIONS, f"unknown rotation {self.rotation!r}", f"choose {', '.join(ROTATIONS)}"),
                  (self.concurrency >= 1, f"concurrency={self.concurrency} must be >= 1", "use 1 or more"),
                  (self.max_tokens >= 1, f"max_tokens={self.max_tokens} must be >= 1", "use 1 or more"),
                  (0 <= self.logprobs <= 20, f"logprobs={self.logprobs} is outside 0..20", "use 0 (off) to 20"),
                  (self.temperature >= 0, f"temperature={self.temperature} is negative", "use 0 or more"),
                  (0 < self.top_p <= 1, f"top_p={self.top_p} is outside (0, 1]", "use e.g. 1.0"),
                  (self.request_timeout > 0, f"request_timeout={self.request_timeout} must be > 0", "e.g. 60"),
                  (self.max_retries >= 0, f"max_retries={self.max_retries} is negative", "use 0 or more"),
                  (self.rpm is None or self.rpm > 0, f"rpm={self.rpm} must be positive", "omit it for no pacing"),
                  (self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1", "use 1 or more")]
        for ok, msg, hint in checks:
            if not ok:
                raise DistillError(f"invalid harvest config: {msg}", hint=hint)
        if not keys:
            raise DistillError("no API key given", hint="pass --api-key, --api-keys-file or set "
                                                        "DISTILLSCOPE_HARVEST_API_KEYS")

    def params(self) -> dict[str, Any]:
        """The sampling parameters that, with the messages and model, identify a record."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "logprobs": self.logprobs}

    def describe(self) -> dict[str, Any]:
        """Everything but the keys, for the manifest."""
        d = {k: v for k, v in asdict(self).items() if k != "api_keys"}
        d["n_api_keys"] = len(self.api_keys)
        return d


@dataclass(frozen=True)
class HarvestSummary:
    """What one harvest run did. ``stopped`` says why it ended early (None: it did not)."""

    store_path: str
    total: int
    skipped: int
    attempted: int
    ok: int
    failed: int
    failed_by_reason: dict[str, int]
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    seconds: float
    token_ids: bool
    retired_keys: tuple[str, ...] = ()
    stopped: str | None = None

    @property
    def not_attempted(self) -> int:
        return self.total - self.skipped - self.attempted


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _redact(text: str, keys: Sequence[ApiKey]) -> str:
    for key in keys:
        if key.secret and key.secret in text:
            text = text.replace(key.secret, f"<{key.alias}>")
    return text


class _Run:
    """State of one harvest run: the key ring, counters, the write buffer."""

    def __init__(self, config: HarvestConfig, writer: StoreWriter, token_ids: bool, task: Any) -> None:
        self.cfg, self.writer, self.token_ids, self.task = config, writer, token_ids, task
        self.keys = KeyRing(config.api_keys, config.rotation, config.rpm, config.seed)
        self.rng = random.Random(config.seed)
        self.buffer: list[HarvestRecord] = []
        self.last_flush = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.tokens = Counter()
        self.stopped: str | None = None

    def backoff(self, n: int) -> float:
        """Exponential backoff with jitter before retry ``n`` (1-based)."""
        return min(self.cfg.backoff_max, self.cfg.backoff_base * 2 ** (n - 1)) * (0.5 + 0.5 * self.rng.random())

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, AttemptError) and exc.type in ("rate_limited", "key_rejected"):
            return 0.0  # the key itself was deferred or retired; the ring paces the next attempt
        backoff = self.backoff(state.attempt_number)
        if isinstance(exc, AttemptError) and exc.retry_after is not None:
            backoff = max(backoff, exc.retry_after)
        return backoff

    def body(self, job: HarvestPrompt) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": job.messages, "max_tokens": self.cfg.max_tokens,
                                "temperature": self.cfg.temperature, "top_p": self.cfg.top_p}
        if self.cfg.logprobs:
            body.update(logprobs=True, top_logprobs=self.cfg.logprobs)
            if self.token_ids:
                body[TOKEN_IDS_FIELD] = True
        return body

    def note_error(self, key: ApiKey, exc: AttemptError, attempt: int) -> None:
        exc.message = _redact(exc.message, self.keys.keys)
        if exc.type == "rate_limited":
            wait = exc.retry_after if exc.retry_after is not None else self.backoff(attempt)
            logger.info("%s rate-limited; holding it back %.2f s", key.alias, wait)
            self.keys.defer(key, wait)
        elif exc.type == "key_rejected":
            logger.warning("%s rejected by the endpoint (HTTP %s): %s", key.alias, exc.status, exc.message)
            self.keys.retire(key)
            if not self.keys.live:
                self.stopped = f"all {len(self.keys.keys)} API key(s) were rejected by the endpoint"
                exc.retryable = False

    async def attempt(self, client: httpx.AsyncClient, job: HarvestPrompt) -> HarvestRecord:
        """One prompt to its final record. Attempts on a key the endpoint rejects do not use up
        ``max_retries`` (the request just moves to a live key); every other failure does."""
        attempts, failures, key = 0, 0, None
        hard_cap = self.cfg.max_retries + 1 + len(self.keys.keys)

        def stop(state: RetryCallState) -> bool:
            return failures > self.cfg.max_retries or state.attempt_number >= hard_cap

        retrying = AsyncRetrying(stop=stop, wait=self.wait, reraise=True, sleep=asyncio.sleep,
                                 retry=retry_if_exception(lambda e: isinstance(e, AttemptError) and e.retryable))
        try:
            async for attempt in retrying:
                with attempt:
                    if not self.keys.live:
                        raise AttemptError("key_rejected", "every API key was rejected by the endpoint")
                    key = await self.keys.acquire(job.topic or job.id)
                    attempts += 1
                    try:
                        result = await post_chat(client, key, self.body(job), self.cfg.request_timeout)
                    except AttemptError as exc:
                        failures += exc.type != "key_rejected"
                        self.note_error(key, exc, attempts)
                        raise
        except AttemptError as exc:
            return self.record(job, "failed", None, HarvestError(exc.type, exc.message, exc.status), attempts, key)
        return self.record(job, "ok", result, None, attempts, key)

    def record(self, job: HarvestPrompt, status: str, result: Completion | None, error: HarvestError | None,
               attempts: int, key: ApiKey | None) -> HarvestRecord:
        parts = {f.name: getattr(result, f.name) for f in fields(result)} if result is not None else {}
        return HarvestRecord(id=job.id, status=status, prompt=job.prompt, messages=tuple(job.messages), error=error,
                             attempts=attempts, key_alias=key.alias if key else None, category=job.category,
                             topic=job.topic, template_id=job.template_id, ts=_now(), **parts)

    def collect(self, rec: HarvestRecord) -> None:
        self.counts["attempted"] += 1
        self.counts["requests"] += rec.attempts
        if rec.ok:
            self.counts["ok"] += 1
            self.tokens.update(rec.usage)
        else:
            self.counts["failed"] += 1
            self.reasons[rec.error.type if rec.error else "unknown"] += 1
        self.buffer.append(rec)
        if len(self.buffer) >= self.cfg.batch_size or time.monotonic() - self.last_flush > 1.0:
            self.flush()
        self.task.advance(1)

    def flush(self) -> None:
        if self.buffer:
            self.writer.append(self.buffer)
            self.buffer = []
            self.task.update(description=f"harvest ok {self.counts['ok']} failed {self.counts['failed']}")
        self.last_flush = time.monotonic()

    async def worker(self, client: httpx.AsyncClient, queue: asyncio.Queue[HarvestPrompt]) -> None:
        while not queue.empty() and self.stopped is None:
            job = queue.get_nowait()
            self.collect(await self.attempt(client, job))


def _check_store(store: HarvestStore, config: HarvestConfig) -> dict[str, str]:
    """Statuses already stored; DistillError for a foreign store or one made with other settings."""
    if not store.exists():
        if store.path.exists() and (not store.path.is_dir() or any(store.path.iterdir())):
            raise DistillError(f"{store.path} exists and is not a harvest store (no manifest.json)",
                               hint="point --out at a new directory or at an existing harvest store")
        return {}
    manifest = store.manifest()
    for name, mine in (("model", config.model), ("params", config.params())):
        if manifest.get(name) != mine:
            raise DistillError(f"store {store.path} was harvested with {name}={manifest.get(name)!r}, "
                               f"this run uses {mine!r}", hint="use the same settings to resume, or a new --out")
    if manifest.get("endpoint") != config.base_url:
        logger.warning("store %s was harvested from %s; continuing from %s", store.path, manifest.get("endpoint"),
                       config.base_url)
    return store.status_by_id()


@dataclass(frozen=True)
class HarvestPlan:
    """What a harvest would do, worked out offline: ``new`` prompts never tried, ``retry`` ones
    whose latest record failed, ``done`` ones already stored ok (skipped), ``duplicates`` merged."""

    store_path: str
    total: int
    done: int
    retry: int
    new: int
    duplicates: int
    jobs: tuple[HarvestPrompt, ...] = field(repr=False, default=())
    todo: tuple[HarvestPrompt, ...] = field(repr=False, default=())


def plan_harvest(config: HarvestConfig, prompts: Sequence[Any], store_path: str | Path) -> HarvestPlan:
    """Validate the prompts and the store (no network): DistillError / InputDataError on bad input."""
    jobs = normalize_prompts(prompts, config.model, config.params(), config.system_prompt)
    if not jobs:
        raise InputDataError("there are no prompts to harvest", hint="pass --prompts FILE or --generate N")
    store = HarvestStore(store_path)
    status = _check_store(store, config)
    todo = tuple(j for j in jobs if status.get(j.id) != "ok")
    retry = sum(1 for j in todo if j.id in status)
    return HarvestPlan(str(store.path), len(jobs), len(jobs) - len(todo), retry, len(todo) - retry,
                       len(prompts) - len(jobs), tuple(jobs), todo)


async def aharvest(config: HarvestConfig, prompts: Sequence[Any], store_path: str | Path,
                   progress: Progress | None = None) -> HarvestSummary:
    """The async harvest (see :func:`harvest`)."""
    t0 = time.monotonic()
    plan = plan_harvest(config, prompts, store_path)
    store, jobs, todo = HarvestStore(store_path), list(plan.jobs), list(plan.todo)
    logger.info("%s", plan)
    token_ids = False
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    timeout = httpx.Timeout(config.request_timeout + 5.0, connect=min(10.0, config.request_timeout))
    async with httpx.AsyncClient(base_url=config.base_url + "/", limits=limits, timeout=timeout,
                                 headers={"User-Agent": config.user_agent}) as client:
        run_state: _Run | None = None
        if todo:
            first = ApiKey("key-0", config.api_keys[0])
            pre = await preflight(client, first, config.base_url, config.model, config.logprobs, config.token_ids,
                                  config.request_timeout, config.max_retries)
            token_ids = pre.token_ids
            if not store.exists():
                hint = config.tokenizer_hint or str(pre.model_info.get("root") or config.model)
                store.create({"endpoint": config.base_url, "model": config.model, "params": config.params(),
                              "created": _now(), "tokenizer_hint": hint, "model_info": pre.model_info,
                              "config": config.describe(), "token_ids": token_ids,
                              "distillscope_version": __version__})
            with store.open_writer() as writer, ensure_progress(progress).task("harvest", total=len(todo)) as task:
                run_state = _Run(config, writer, token_ids, task)
                queue: asyncio.Queue[HarvestPrompt] = asyncio.Queue()
                for job in todo:
                    queue.put_nowait(job)
                try:
                    await asyncio.gather(*(run_state.worker(client, queue)
                                           for _ in range(min(config.concurrency, len(todo)))))
                finally:
                    run_state.flush()
    return _summary(config, store, jobs, todo, run_state, token_ids, time.monotonic() - t0)


def _summary(config: HarvestConfig, store: HarvestStore, jobs: list[HarvestPrompt], todo: list[HarvestPrompt],
             run: _Run | None, token_ids: bool, seconds: float) -> HarvestSummary:
    counts = run.counts if run else Counter()
    tokens = run.tokens if run else Counter()
    pt, ct = tokens["prompt_tokens"], tokens["completion_tokens"]
    cost = pt / 1000 * config.cost_per_1k_prompt + ct / 1000 * config.cost_per_1k_completion
    return HarvestSummary(
        store_path=str(store.path), total=len(jobs), skipped=len(jobs) - len(todo), attempted=counts["attempted"],
        ok=counts["ok"], failed=counts["failed"], failed_by_reason=dict(run.reasons) if run else {},
        requests=counts["requests"], prompt_tokens=pt, completion_tokens=ct, cost=round(cost, 6),
        seconds=round(seconds, 3), token_ids=token_ids, retired_keys=run.keys.retired if run else (),
        stopped=run.stopped if run else None)


def harvest(config: HarvestConfig, prompts: Sequence[Any], store_path: str | Path,
            progress: Progress | None = None) -> HarvestSummary:
    """Harvest ``prompts`` (strings, chat message lists, :class:`PromptItem` or dicts with a
    ``prompt``/``messages`` field) into the store at ``store_path``; resumable. Synchronous wrapper
    around :func:`aharvest` (call that one from inside a running event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(aharvest(config, prompts, store_path, progress))
    raise DistillError("harvest() was called inside a running event loop", hint="await aharvest(...) instead")
