"""Composable client behaviours for the traffic simulator.

Each behaviour turns a :class:`Client` (one or more accounts with their IPs and user agents) into
request rows. What is asked always comes from the shared prompt generator
(:class:`distillscope.distill.prompts.PromptGenerator`), for benign users and distillers alike;
only *how* it is asked differs: volume, timing, framing, sampling parameters, infrastructure.

Benign: :class:`BenignUser` (heavy-tailed sessions, diurnal, multi-turn, narrow interests).
Hard negatives: :class:`BatchJob` (templated classification/summarisation at high volume),
:class:`EvalHarness` (a fixed benchmark across every topic, re-run), :class:`StudentClass`
(many accounts behind one campus IP, same homework, same lab hours).
Distillers: :class:`Extraction` with a :class:`Campaign` of accounts: capability sweeps,
framed/paraphrased templates, chain-of-thought elicitation, maximal outputs, logprobs, pacing
under rate limits, synchronised waves, rotating proxy IPs and optional cover traffic.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

DAY = 86_400.0

# Diurnal activity profile of human users (relative weight per local hour).
_DIURNAL = np.array([1, .6, .4, .3, .3, .4, .8, 1.5, 2.5, 3.2, 3.5, 3.4, 3.0, 3.2, 3.4, 3.3, 3.0, 2.6,
                     2.4, 2.6, 2.8, 2.6, 2.0, 1.4])
_DIURNAL = _DIURNAL / _DIURNAL.sum()

HUMAN_AGENTS = ("OpenAI/Python 1.54.3", "OpenAI/Python 1.51.0", "OpenAI/JS 4.67.1", "Mozilla/5.0 (Macintosh)",
                "Mozilla/5.0 (Windows NT 10.0)", "curl/8.5.0", "PostmanRuntime/7.39.0", "langchain/0.3.1")
FOLLOW_UPS = ("Thanks! Can you give an example?", "Why is that?", "Can you make it shorter?",
              "What about for beginners?", "ok and how does that compare to the alternative?",
              "Can you say more about the second point?", "hmm, I don't get it. simpler please",
              "Great, what should I read next?", "Is that always true?", "Could you put that in a table?")
PHRASINGS = ("{p}", "{p}", "{p}", "hey, {p}", "quick question: {p}", "{p} thanks!", "Please help. {p}",
             "{p} (keep it brief)", "so {p}", "I was wondering: {p}")
# Extraction frames: how distillers wrap generator content. Paraphrase variants share intent.
EXTRACTION_FRAMES = (
    ("You are a world-class expert assistant. Complete the following task thoroughly.\n\nTask: {p}\n\n"
     "Think step by step and explain your reasoning in detail before giving the final answer."),
    ("Act as an expert tutor. Respond to the request below with a complete, detailed answer.\n\nRequest: {p}\n\n"
     "Show your reasoning process step by step, then state the final answer clearly."),
    ("Below is an instruction. Write a response that fully completes it, including your chain of thought.\n\n"
     "### Instruction:\n{p}\n\n### Response (reasoning first, then answer):"),
    ("{p}\n\nBefore answering, think through the problem carefully and write out all intermediate steps. "
     "Justify each step. Then give the final answer on its own line."),
)
PARAPHRASED_FRAMES = (
    "Please answer this in depth: {p} Walk me through your reasoning step by step.",
    "Question: {p}\nGive a detailed answer and explain your reasoning process.",
    "{p} Explain each step of your thinking, then summarise the answer.",
    "I need a complete answer to the following. {p} Show all your work and the rationale.",
    "Task for you: {p}\nReason it out step-by-step before the answer.",
    "Consider carefully: {p} Lay out the chain of thought, then conclude.",
)
BATCH_JOBS = (
    ("Classify the sentiment of the following customer message as positive, negative or neutral. "
     "Reply with one word.\n\nMessage: \"{c}\"", 16, (1, 3)),
    ("Summarize the following document in at most two sentences.\n\nDocument: \"{c}\"", 128, (30, 90)),
    ("Extract every person, organisation and place named in the text below as JSON.\n\nText: \"{c}\"",
     96, (10, 60)),
    ("Assign one category (billing, technical, account, other) to this support ticket: \"{c}\"", 8, (1, 2)),
)


class PromptSource(Protocol):
    """What the simulator needs from the prompt generator."""

    topics: Sequence[str]

    def sample(self, rng: random.Random, category: str | None = None, topic: str | None = None,
               cot: bool | None = None) -> Any: ...


@dataclass
class Client:
    """The identity a behaviour acts through: accounts (with key ids), IPs and user agents."""

    accounts: list[str]
    ips: list[str]
    agents: list[str]
    tz_hours: float = 0.0


@dataclass
class Context:
    """Everything a behaviour draws from: its random sources, the prompts and the time window."""

    np_rng: np.random.Generator
    rng: random.Random
    prompts: PromptSource
    start: float
    days: float
    model: str = "distillscope-teacher"

    @property
    def end(self) -> float:
        return self.start + self.days * DAY


def make_row(ctx: Context, *, ts: float, account: str, ip: str, agent: str, prompt: str | list[dict],
             max_tokens: int | None, temperature: float, completion_tokens: int, completion: str,
             logprobs: int = 0, logit_bias: bool = False, status: int = 200, error: str | None = None) -> dict:
    """One request-log row (canonical columns, without request_id)."""
    text = prompt if isinstance(prompt, str) else json.dumps(prompt)
    params: dict[str, Any] = {"temperature": temperature}
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if logprobs:
        params.update(logprobs=True, top_logprobs=logprobs)
    if logit_bias:
        params["logit_bias"] = {"50256": -100}
    ok = status < 400
    n_words = len(text.split())
    return {
        "ts": ts, "account_id": account, "key_id": f"key-{account}", "client_ip": ip, "user_agent": agent,
        "endpoint": "/v1/chat/completions", "model": ctx.model, "params": json.dumps(params),
        "temperature": temperature, "max_tokens": max_tokens, "logprobs": logprobs, "logit_bias": logit_bias,
        "stream": False, "prompt": text, "completion": completion if ok else None,
        "prompt_tokens": int(n_words * 1.3) + 8, "completion_tokens": completion_tokens if ok else 0,
        "latency_ms": float(40 + 12 * completion_tokens) if ok else 2.0, "status": status, "error": error,
        "watermark_key_id": "wm-demo" if ok else None,
    }


def _completion(item: Any, n_tokens: int) -> str:
    """Stand-in answer text (the log keeps a short prefix; token counts carry the length)."""
    answer = getattr(item, "answer", None)
    text = f"{answer}. " if answer else ""
    text += f"Regarding {getattr(item, 'topic', 'this')}: here is what you asked for. " * 4
    return text[: max(16, min(240, n_tokens * 4))]


def _human_tokens(ctx: Context, max_tokens: int | None) -> int:
    n = int(ctx.np_rng.lognormal(np.log(220), 0.6))
    return max(4, min(n, max_tokens or 1024))


@dataclass
class BenignUser:
    """A person: heavy-tailed number of sessions, diurnal, multi-turn, a few personal interests."""

    mean_sessions: float = 3.0

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        account, ip = client.accounts[0], client.ips[0]
        agent = client.agents[0]
        interests = r.sample(list(ctx.prompts.topics), k=min(len(ctx.prompts.topics), r.choice((1, 1, 2, 3))))
        n_sessions = 1 + int(g.lognormal(np.log(self.mean_sessions), 1.0))
        max_tokens = r.choice((None, None, 256, 512, 1024))
        for _ in range(min(n_sessions, 150)):
            day = float(g.integers(0, max(1, int(ctx.days))))
            hour = float(g.choice(24, p=_DIURNAL)) - client.tz_hours
            t = ctx.start + day * DAY + (hour % 24) * 3600 + float(g.uniform(0, 3600))
            yield from self._session(ctx, client, account, ip, agent, interests, max_tokens, t)

    def _session(self, ctx, client, account, ip, agent, interests, max_tokens, t) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        item = ctx.prompts.sample(r, topic=r.choice(interests), cot=r.random() < 0.04)
        history: list[dict] = []
        prompt = r.choice(PHRASINGS).format(p=item.prompt)
        for turn in range(min(7, int(g.geometric(0.55)))):
            history.append({"role": "user", "content": prompt})
            n = _human_tokens(ctx, max_tokens)
            completion = _completion(item, n)
            if t < ctx.end:
                yield make_row(ctx, ts=t, account=account, ip=r.choice(client.ips), agent=agent,
                               prompt=list(history) if turn else prompt, max_tokens=max_tokens,
                               temperature=r.choice((0.7, 0.7, 1.0, 0.2)), completion_tokens=n,
                               completion=completion, logprobs=5 if r.random() < 0.02 else 0)
            history.append({"role": "assistant", "content": completion})
            prompt = r.choice(FOLLOW_UPS)
            t += float(g.lognormal(np.log(75), 0.9)) + n / 40


@dataclass
class BatchJob:
    """Hard negative: a nightly templated job (classification, summarisation) at high volume."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        template, max_tokens, (lo, hi) = r.choice(BATCH_JOBS)
        hour = r.randrange(24)
        runs = r.randint(2, int(max(2, ctx.days)))
        per_run = int(g.integers(80, 600))
        gap = float(g.uniform(0.4, 3.0))
        for day in sorted(r.sample(range(int(max(ctx.days, runs))), runs)):
            t = ctx.start + day * DAY + hour * 3600 + float(g.uniform(0, 600))
            for _ in range(per_run):
                content = ctx.prompts.sample(r, cot=False).prompt[:300]
                n = int(g.integers(lo, hi + 1))
                if t < ctx.end:
                    yield make_row(ctx, ts=t, account=client.accounts[0], ip=client.ips[0], agent=client.agents[0],
                                   prompt=template.format(c=content), max_tokens=max_tokens, temperature=0.0,
                                   completion_tokens=n, completion=content[: n * 4])
                t += gap * float(g.uniform(0.9, 1.1))


#: Evaluation-harness modes: (chain of thought, max_tokens, top logprobs) -- generative and
#: log-likelihood tasks, with and without "let's think step by step" and logprobs.
EVAL_MODES = ((False, 16, 5), (False, 32, 0), (False, 64, 5), (True, 256, 5), (True, 256, 0), (False, 1, 5))


@dataclass
class EvalHarness:
    """Hard negative: a benchmark of fixed questions across every topic, run several times.
    ``mode``: index into :data:`EVAL_MODES` (None: drawn at random)."""

    mode: int | None = None

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        n_items = int(g.integers(150, 500))
        items = [ctx.prompts.sample(r, topic=ctx.prompts.topics[i % len(ctx.prompts.topics)], cot=False)
                 for i in range(n_items)]
        mode = self.mode if self.mode is not None else r.randrange(len(EVAL_MODES))
        cot, max_tokens, logprobs = EVAL_MODES[mode % len(EVAL_MODES)]
        shots = r.choice(("", "Answer the question concisely.\n\n"))
        suffix = "\nLet's think step by step." if cot else "\nAnswer:"
        for _ in range(r.randint(1, 4)):
            t = ctx.start + float(g.uniform(0, ctx.days * DAY * 0.9))
            for item in items:
                n = int(g.integers(40, max_tokens + 1)) if cot else int(g.integers(1, max_tokens + 1))
                n = min(n, max_tokens)
                if t < ctx.end:
                    yield make_row(ctx, ts=t, account=client.accounts[0], ip=client.ips[0], agent=client.agents[0],
                                   prompt=f"{shots}Question: {item.prompt}{suffix}", max_tokens=max_tokens,
                                   temperature=0.0, completion_tokens=n, completion=_completion(item, n),
                                   logprobs=logprobs)
                t += float(g.uniform(0.3, 1.2))


@dataclass
class StudentClass:
    """Hard negative: students behind one campus NAT, same homework, same lab hours."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        homework = [ctx.prompts.sample(r, cot=r.random() < 0.3) for _ in range(4)]
        labs = [ctx.start + d * DAY + 14 * 3600 - client.tz_hours * 3600 for d in range(0, int(ctx.days), 2)]
        for account in client.accounts:
            agent = r.choice(client.agents)
            for lab in labs:
                if r.random() < 0.3:
                    continue
                t = lab + float(g.uniform(0, 5400))
                for _ in range(int(g.integers(1, 6))):
                    item = r.choice(homework) if r.random() < 0.6 else ctx.prompts.sample(r, cot=r.random() < 0.05)
                    n = _human_tokens(ctx, None)
                    if t < ctx.end:
                        yield make_row(ctx, ts=t, account=account, ip=r.choice(client.ips), agent=agent,
                                       prompt=r.choice(PHRASINGS).format(p=item.prompt), max_tokens=None,
                                       temperature=0.7, completion_tokens=n, completion=_completion(item, n))
                    t += float(g.lognormal(np.log(120), 0.8))


@dataclass
class Extraction:
    """A distillation campaign across ``client.accounts``.

    ``frames``: extraction templates (one per request, drawn from the list; several = paraphrased);
    ``cot_rate``: share of requests with a reasoning-eliciting frame (the rest ask plainly, max output);
    ``requests_per_account``: (low, high); ``waves``: synchronised schedule (all accounts fire in the
    same short windows) instead of continuous pacing; ``cover_rate``: share of benign-looking cover
    requests mixed in; ``rotate_ips``: a fresh proxy IP per request.
    """

    frames: tuple[str, ...] = EXTRACTION_FRAMES[:1]
    cot_rate: float = 0.8
    requests_per_account: tuple[int, int] = (1500, 4000)
    max_tokens: int = 4096
    logprob_rate: float = 0.5
    waves: bool = False
    wave_every_s: float = 3600.0
    cover_rate: float = 0.0
    rotate_ips: bool = False
    pace_s: float = 1.2
    jitter: float = 0.1
    _cover: BenignUser = field(default_factory=BenignUser, repr=False)

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        topics = list(ctx.prompts.topics)
        for account in client.accounts:
            n = int(g.integers(self.requests_per_account[0], self.requests_per_account[1] + 1))
            times = self._schedule(ctx, n)
            agent = r.choice(client.agents)
            home_ip = r.choice(client.ips)
            for i, t in enumerate(times):
                ip = r.choice(client.ips) if self.rotate_ips else home_ip
                if self.cover_rate and r.random() < self.cover_rate:
                    yield from self._cover_request(ctx, account, ip, agent, float(t))
                    continue
                cot = r.random() < self.cot_rate
                framed = cot and r.random() < 0.7
                item = ctx.prompts.sample(r, topic=topics[(i + r.randrange(len(topics))) % len(topics)],
                                          cot=cot and not framed)
                prompt = r.choice(self.frames).format(p=item.prompt) if framed else item.prompt
                k = int(min(self.max_tokens, g.lognormal(np.log(self.max_tokens * 0.3), 0.8)))
                limited = r.random() < 0.03
                yield make_row(ctx, ts=float(t), account=account, ip=ip, agent=agent, prompt=prompt,
                               max_tokens=self.max_tokens, temperature=r.choice((0.0, 0.7, 1.0)),
                               completion_tokens=max(k, 32), completion=_completion(item, k),
                               logprobs=5 if r.random() < self.logprob_rate else 0,
                               status=429 if limited else 200, error="rate_limited" if limited else None)

    def _schedule(self, ctx: Context, n: int) -> np.ndarray:
        g = ctx.np_rng
        if self.waves:
            n_waves = max(1, int(ctx.days * DAY / self.wave_every_s) - 1)
            per_wave = max(1, int(np.ceil(n / n_waves)))
            wave_ids = np.sort(g.choice(n_waves, size=int(np.ceil(n / per_wave)), replace=False)) + 1
            starts = ctx.start + wave_ids * self.wave_every_s
            t = (starts[:, None] + np.arange(per_wave)[None, :] * self.pace_s).ravel()[:n]
        else:
            t0 = ctx.start + float(g.uniform(0, ctx.days * DAY * 0.3))
            t = t0 + np.arange(n) * self.pace_s
        t = t + g.uniform(-self.jitter, self.jitter, size=n) * self.pace_s
        return np.sort(t[t < ctx.end])

    def _cover_request(self, ctx: Context, account: str, ip: str, agent: str, t: float) -> Iterator[dict]:
        r = ctx.rng
        item = ctx.prompts.sample(r, cot=r.random() < 0.04)
        n = _human_tokens(ctx, 512)
        yield make_row(ctx, ts=t + float(ctx.np_rng.uniform(0, 600)), account=account, ip=ip, agent=agent,
                       prompt=r.choice(PHRASINGS).format(p=item.prompt), max_tokens=512, temperature=0.7,
                       completion_tokens=n, completion=_completion(item, n))


#: Named campaign strategies used by the simulator and the benchmark.
STRATEGIES: dict[str, dict[str, Any]] = {
    "single": dict(n_accounts=(1, 1), behaviour=lambda: Extraction()),
    "paraphrase": dict(n_accounts=(3, 6), behaviour=lambda: Extraction(
        frames=PARAPHRASED_FRAMES, cot_rate=0.6, requests_per_account=(200, 600), rotate_ips=True,
        pace_s=4.0, jitter=0.5)),
    "hydra": dict(n_accounts=(40, 120), behaviour=lambda: Extraction(
        frames=EXTRACTION_FRAMES, cot_rate=0.7, requests_per_account=(15, 50), waves=True,
        rotate_ips=True, pace_s=8.0, jitter=0.3, logprob_rate=0.2)),
    "hydra-cover": dict(n_accounts=(40, 120), behaviour=lambda: Extraction(
        frames=PARAPHRASED_FRAMES, cot_rate=0.6, requests_per_account=(20, 60), waves=True,
        wave_every_s=7200.0, rotate_ips=True, pace_s=15.0, jitter=0.6, logprob_rate=0.1, cover_rate=0.5)),
}
