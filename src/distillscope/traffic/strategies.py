"""Harder distillation strategies and realistic hard negatives for the simulator.

Distillers that avoid the habits of :class:`~distillscope.traffic.behaviours.Extraction` (fixed
frames, maximal pacing, shared proxies): :class:`SlowAndLow`, :class:`RouterWithDistiller`,
:class:`DiverseHydra`, :class:`LogprobHarvest`, :class:`CoTExtraction`,
:class:`SyntheticDataset` and :class:`Mixture`. Hard negatives: :class:`RagApp`,
:class:`TranslationSaaS`, :class:`SupportBot`, :class:`ModerationClassifier`,
:class:`CleanReseller` and :class:`ResearchGroup`.

The reasoning and data-generation wordings here (:data:`ASK_REASONING`, :data:`DATA_SYSTEMS`) are
written separately from the content classifier's training grammar (:mod:`.content_corpus`), so
the simulator never tests the classifier on its own training phrases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from distillscope.traffic.behaviours import (_DIURNAL, DAY, FOLLOW_UPS, HUMAN_AGENTS, PHRASINGS, BenignUser, Client,
                                             Context, _completion, _human_tokens, make_row)

ASK_REASONING = (
    "Could you show all your thinking here?", "Include your complete scratchpad, please.",
    "I need to see how you work it out, every bit of it.", "Talk me through how you'd get there, fully.",
    "Write your reasoning out before you answer.", "Show the whole derivation, don't skip anything.",
    "Explain how you arrive at it, in detail, then answer.", "Please think this through in writing first.",
    "Lay out each step of your reasoning.", "Reason it through step by step for me.",
    "Give the full working, then the answer.", "Be explicit about every step you take.",
)
DATA_SYSTEMS = (
    "You are a data generator.", "You generate high-quality synthetic training data.",
    "You are DataSmith, a dataset authoring engine. Reply with JSON only.",
    "You produce instruction-tuning records.", "You write labelled samples for machine-learning datasets.",
)
DATA_ASKS = (
    "Create {k} question-answer pairs about {t} as a JSON array with keys question and answer.",
    "Write {k} diverse instructions about {t} with ideal responses. Output JSONL.",
    "Produce {k} examples on {t} in JSON: {{\"instruction\": ..., \"output\": ...}}.",
    "Give {k} training samples about {t}, one JSON object per line with fields input and target.",
)
SYSTEM_SUPPORT = "You are the support assistant of Acme Cloud. Be friendly and concise."
RAG_CONTEXT = ("Context:\n{c}\n\nUsing only the context above, answer the question. If the context does not "
               "contain the answer, say so.\nQuestion: {q}")
LANGS = ("French", "German", "Spanish", "Japanese", "Portuguese", "Korean", "Italian")


def _reasoned(ctx: Context, item_prompt: str) -> str:
    return f"{item_prompt} {ctx.rng.choice(ASK_REASONING)}"


def _human_time(ctx: Context, client: Client, day: float) -> float:
    g = ctx.np_rng
    hour = float(g.choice(24, p=_DIURNAL)) - client.tz_hours
    return ctx.start + day * DAY + (hour % 24) * 3600 + float(g.uniform(0, 3600))


@dataclass
class SlowAndLow:
    """One account, 10-35 requests a day, every day, varied natural prompts over every topic,
    reasoning asked in 15-35%, generous max_tokens."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        topics = list(ctx.prompts.topics)
        cot_rate = r.uniform(0.15, 0.35)
        max_tokens = r.choice((1024, 2048, 4096))
        for day in range(int(ctx.days)):
            for _ in range(int(g.integers(10, 36))):
                t = _human_time(ctx, client, day)
                item = ctx.prompts.sample(r, topic=r.choice(topics), cot=False)
                cot = r.random() < cot_rate
                prompt = _reasoned(ctx, item.prompt) if cot else r.choice(PHRASINGS).format(p=item.prompt)
                n = int(min(max_tokens, g.lognormal(np.log(700 if cot else 350), 0.5)))
                if t < ctx.end:
                    yield make_row(ctx, ts=t, account=client.accounts[0], ip=client.ips[0], agent=client.agents[0],
                                   prompt=prompt, max_tokens=max_tokens, temperature=r.choice((0.7, 1.0)),
                                   completion_tokens=n, completion=_completion(item, n))


@dataclass
class DistillerJob:
    """Reasoning extraction over a topic slice (the distiller inside routers, hydras and mixtures)."""

    topics: tuple[str, ...] | None = None
    categories: tuple[str, ...] | None = None
    cot_rate: float = 0.9
    max_tokens: int = 4096

    def request(self, ctx: Context, account: str, ip: str, agent: str, t: float, user: str | None = None) -> dict:
        r, g = ctx.rng, ctx.np_rng
        topics = list(self.topics or ctx.prompts.topics)
        for _ in range(20):
            try:
                item = ctx.prompts.sample(r, category=r.choice(self.categories) if self.categories else None,
                                          topic=r.choice(topics), cot=False)
                break
            except Exception:               # no template covers this (category, topic): draw again
                continue
        else:
            item = ctx.prompts.sample(r, cot=False)
        cot = r.random() < self.cot_rate
        prompt = _reasoned(ctx, item.prompt) if cot else item.prompt
        n = int(min(self.max_tokens, g.lognormal(np.log(self.max_tokens * 0.25), 0.6)))
        row = make_row(ctx, ts=t, account=account, ip=ip, agent=agent, prompt=prompt, max_tokens=self.max_tokens,
                       temperature=0.7, completion_tokens=max(n, 64), completion=_completion(item, n))
        row["user"] = user
        return row


@dataclass
class RouterWithDistiller:
    """A reseller key: ~80% ordinary end users, ~20% one distiller end user who runs in bursts.
    ``with_user``: the reseller passes its end users' ids in ``user`` (else the column is empty)."""

    with_user: bool = True
    distiller_share: float = 0.2

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        account = client.accounts[0]
        n_users = int(g.integers(40, 90))
        benign_rows = []
        for u in range(n_users):
            sub = Client([account], [r.choice(client.ips)], [client.agents[0]], float(r.choice((0, -5, 1, 8))))
            for row in BenignUser(mean_sessions=float(g.lognormal(np.log(2.5), 0.6))).requests(ctx, sub):
                row["user"] = f"u{u:04d}" if self.with_user else None
                benign_rows.append(row)
        yield from benign_rows
        n_distill = int(len(benign_rows) * self.distiller_share / (1 - self.distiller_share))
        job, user = DistillerJob(), ("u9999" if self.with_user else None)
        bursts = max(1, n_distill // 60)
        for _ in range(bursts):
            t = ctx.start + float(g.uniform(0, ctx.days * DAY * 0.95))
            for _ in range(max(1, n_distill // bursts)):
                t += float(g.uniform(2, 20))
                if t < ctx.end:
                    yield job.request(ctx, account, r.choice(client.ips), client.agents[0], t, user)


@dataclass
class DiverseHydra:
    """Many low-volume accounts, each its own residential IP and user agent, no shared templates, random
    timing; coordinated only by covering disjoint slices of the topic taxonomy, all asking for reasoning
    with the same client settings."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        topics = list(ctx.prompts.topics)
        r.shuffle(topics)
        n = len(client.accounts)
        for i, account in enumerate(client.accounts):
            lo, hi = (i * len(topics)) // n, max((i * len(topics)) // n + 1, ((i + 1) * len(topics)) // n)
            job = DistillerJob(topics=tuple(topics[lo % len(topics): hi] or topics[:1]), cot_rate=0.85,
                               max_tokens=2048)
            ip, agent = client.ips[i % len(client.ips)], client.agents[i % len(client.agents)]
            for _ in range(int(g.integers(15, 45))):
                t = ctx.start + float(g.uniform(0, ctx.days * DAY))
                yield job.request(ctx, account, ip, agent, t)


@dataclass
class LogprobHarvest:
    """top_logprobs = 20 on max_tokens 1-16 across a broad prompt set."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        for account in client.accounts:
            t = ctx.start + float(g.uniform(0, ctx.days * DAY * 0.3))
            for _ in range(int(g.integers(300, 900))):
                item = ctx.prompts.sample(r, cot=False)
                mt = int(g.integers(1, 17))
                if t < ctx.end:
                    yield make_row(ctx, ts=t, account=account, ip=r.choice(client.ips), agent=client.agents[0],
                                   prompt=r.choice(PHRASINGS).format(p=item.prompt), max_tokens=mt, temperature=0.0,
                                   completion_tokens=mt, completion=_completion(item, mt), logprobs=20)
                t += float(g.lognormal(np.log(40), 1.0))


@dataclass
class CoTExtraction:
    """"Show all your thinking / your complete scratchpad" over maths, code and logic."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        job = DistillerJob(categories=("math", "coding", "reasoning"), cot_rate=0.95, max_tokens=8192)
        for account in client.accounts:
            t = ctx.start + float(g.uniform(0, ctx.days * DAY * 0.3))
            for _ in range(int(g.integers(200, 700))):
                if t < ctx.end:
                    yield job.request(ctx, account, r.choice(client.ips), client.agents[0], t)
                t += float(g.lognormal(np.log(90), 0.8))


@dataclass
class SyntheticDataset:
    """Accounts with a "you are a data generator" system prompt asking for JSON records."""

    synchronised: bool = False

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        topics = list(ctx.prompts.topics)
        start = ctx.start + float(g.uniform(0, ctx.days * DAY * 0.3))
        for i, account in enumerate(client.accounts):
            t = start if self.synchronised else ctx.start + float(g.uniform(0, ctx.days * DAY * 0.5))
            system = r.choice(DATA_SYSTEMS)
            ip, agent = client.ips[i % len(client.ips)], client.agents[i % len(client.agents)]
            for _ in range(int(g.integers(20, 80))):
                ask = r.choice(DATA_ASKS).format(k=r.choice((10, 20, 25, 50)), t=r.choice(topics))
                prompt = [{"role": "system", "content": system}, {"role": "user", "content": ask}]
                n = int(g.integers(800, 3500))
                if t < ctx.end:
                    yield make_row(ctx, ts=t, account=account, ip=ip, agent=agent,
                                   prompt=prompt, max_tokens=4096, temperature=1.0, completion_tokens=n,
                                   completion=json.dumps([{"question": "...", "answer": "..."}]))
                t += float(g.lognormal(np.log(300), 1.0))


@dataclass
class Mixture:
    """One account mixing slow-and-low questions, logprob harvesting and synthetic-data requests."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        for part in (SlowAndLow(), LogprobHarvest(), SyntheticDataset()):
            rows = list(part.requests(ctx, client))
            keep = ctx.np_rng.random(len(rows)) < 0.4
            yield from (row for row, k in zip(rows, keep) if k)


# --- hard negatives -----------------------------------------------------------------------------------
@dataclass
class RagApp:
    """A retrieval app: long prompts with retrieved context over many topics, short answers, high volume."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        for day in range(int(ctx.days)):
            for _ in range(int(g.integers(60, 250))):
                t = _human_time(ctx, client, day)
                ctx_item, q = ctx.prompts.sample(r, cot=False), ctx.prompts.sample(r, cot=False)
                prompt = RAG_CONTEXT.format(c=" ".join([ctx_item.prompt] * 4), q=q.prompt)
                n = int(g.integers(20, 200))
                if t < ctx.end:
                    yield make_row(ctx, ts=t, account=client.accounts[0], ip=client.ips[0], agent=client.agents[0],
                                   prompt=prompt, max_tokens=300, temperature=0.1, completion_tokens=n,
                                   completion=_completion(q, n))


@dataclass
class TranslationSaaS:
    """A translation service: one template, high volume, output about as long as the input."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        for day in range(int(ctx.days)):
            for _ in range(int(g.integers(100, 400))):
                t = _human_time(ctx, client, day)
                item = ctx.prompts.sample(r, cot=False)
                n = int(len(item.prompt.split()) * 1.5) + 5
                if t < ctx.end:
                    yield make_row(ctx, ts=t, account=client.accounts[0], ip=client.ips[0], agent=client.agents[0],
                                   prompt=f"Translate into {r.choice(LANGS)}:\n{item.prompt}", max_tokens=512,
                                   temperature=0.2, completion_tokens=n, completion=_completion(item, n))


@dataclass
class SupportBot:
    """A customer-support bot: a system prompt, multi-turn conversations, business hours."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        for day in range(int(ctx.days)):
            for _ in range(int(g.integers(10, 60))):
                t = _human_time(ctx, client, day)
                history = [{"role": "system", "content": SYSTEM_SUPPORT}]
                first = ctx.prompts.sample(r, category="advice", cot=False)
                ask = first.prompt
                for _ in range(int(g.integers(1, 5))):
                    history.append({"role": "user", "content": ask})
                    n = _human_tokens(ctx, 400)
                    if t < ctx.end:
                        yield make_row(ctx, ts=t, account=client.accounts[0], ip=client.ips[0],
                                       agent=client.agents[0], prompt=list(history), max_tokens=400, temperature=0.3,
                                       completion_tokens=n, completion=_completion(first, n))
                    history.append({"role": "assistant", "content": "..."})
                    ask = r.choice(FOLLOW_UPS)
                    t += float(g.lognormal(np.log(60), 0.7))


@dataclass
class ModerationClassifier:
    """A moderation classifier: one label token with logprobs and logit_bias, high volume, narrow prompts."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        t = ctx.start + float(g.uniform(0, 3600))
        while t < ctx.end:
            item = ctx.prompts.sample(r, category="classification", cot=False)
            yield make_row(ctx, ts=t, account=client.accounts[0], ip=client.ips[0], agent=client.agents[0],
                           prompt=f"Is the following message safe or unsafe? Reply with one word.\n\n{item.prompt}",
                           max_tokens=1, temperature=0.0, completion_tokens=1, completion="safe", logprobs=5,
                           logit_bias=True)
            t += float(g.lognormal(np.log(240), 1.2))


@dataclass
class CleanReseller:
    """A benign router: many ordinary end users behind one key (with their ids in ``user``)."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        for u in range(int(g.integers(40, 90))):
            sub = Client(client.accounts, [r.choice(client.ips)], [client.agents[0]], float(r.choice((0, -5, 1, 8))))
            for row in BenignUser(mean_sessions=float(g.lognormal(np.log(2.5), 0.6))).requests(ctx, sub):
                row["user"] = f"u{u:04d}"
                yield row


@dataclass
class ResearchGroup:
    """One benchmark run from several synchronised accounts in one /24, with reasoning and logprobs."""

    def requests(self, ctx: Context, client: Client) -> Iterator[dict]:
        r, g = ctx.rng, ctx.np_rng
        items = [ctx.prompts.sample(r, topic=ctx.prompts.topics[i % len(ctx.prompts.topics)], cot=False)
                 for i in range(int(g.integers(200, 400)))]
        start = ctx.start + float(g.uniform(0, ctx.days * DAY * 0.5))
        for k, account in enumerate(client.accounts):
            t = start + float(g.uniform(0, 30))
            for item in items[k::len(client.accounts)] * 2:
                n = int(g.integers(60, 512))
                if t < ctx.end:
                    yield make_row(ctx, ts=t, account=account, ip=client.ips[k % len(client.ips)],
                                   agent=client.agents[0], prompt=f"Question: {item.prompt}\nLet's think step by step.",
                                   max_tokens=512, temperature=0.0, completion_tokens=n, completion=_completion(item, n),
                                   logprobs=5)
                t += float(g.uniform(1.0, 4.0))


#: The harder strategies: name -> (account count range, behaviour factory, infrastructure).
#: infrastructure: "single" (one IP), "residential" (one IP and agent per account), "vps" (one /24).
HARD_STRATEGIES = {
    "slow-and-low": ((1, 1), lambda r: SlowAndLow(), "residential"),
    "router": ((1, 1), lambda r: RouterWithDistiller(with_user=r.random() < 0.5), "single"),
    "diverse-hydra": ((30, 70), lambda r: DiverseHydra(), "residential"),
    "logprob-harvest": ((1, 2), lambda r: LogprobHarvest(), "vps"),
    "cot-extraction": ((1, 3), lambda r: CoTExtraction(), "vps"),
    "synthetic-dataset": ((15, 35), lambda r: SyntheticDataset(synchronised=r.random() < 0.5), "residential"),
    "mixture": ((1, 1), lambda r: Mixture(), "residential"),
}
#: Hard negatives: kind -> (accounts per instance, behaviour factory, infrastructure).
HARD_NEGATIVES = {
    "rag": ((1, 1), RagApp, "single"),
    "translation": ((1, 1), TranslationSaaS, "single"),
    "support": ((1, 1), SupportBot, "single"),
    "moderation": ((1, 1), ModerationClassifier, "single"),
    "reseller": ((1, 1), CleanReseller, "single"),
    "research": ((10, 10), ResearchGroup, "vps"),
}
#: Human-looking user agents for residential infrastructure.
RESIDENTIAL_AGENTS = HUMAN_AGENTS
