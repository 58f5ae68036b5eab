"""Distillation campaigns, written as an adversary who knows roughly what a provider looks for.

Strategies (``strategy`` label):

* ``slow_low``          one account, 10-35 requests/day, human timing, natural prompts walking the whole
                        taxonomy, full reasoning asked in 15-35% of requests (many phrasings);
* ``router``            a reseller key whose traffic is ~70-90% real end users and 10-30% a distiller;
                        the distiller's ``user`` is one stable id, a rotating pool of ids, or absent;
* ``diverse_hydra``     60-150 low-volume accounts, each its own residential address, client, time zone and
                        phrasing habits, random timing; coordinated only by disjoint slices of the taxonomy;
* ``logprob_harvest``   top_logprobs 10-20 on max_tokens 1-16 over broad prompts (chat, or raw text prefixes
                        on /v1/completions); a stealthier variant uses top-5..8 and 16-48 tokens;
* ``cot_extraction``    math / code / logic problems with paraphrased "show your full scratchpad" requests,
                        long max_tokens, often n > 1; one account, a VPS /24, or residential accounts;
* ``synthetic_dataset`` 20-60 accounts with "you are a data generator"-style system prompts asking for JSON
                        arrays of examples; synchronised from a /24, or unsynchronised behind a VPN;
* ``benign_mimic``      (own) dressed as a help-desk / RAG application: app-like system prompt, cloud
                        addresses, business-hours stream and fake end-user ids, while the user turns sweep the
                        capability taxonomy and ask for thorough, reasoned answers;
* ``mixture``           (own) one operator, one sign-up cohort, accounts of different sub-strategies
                        (slow-and-low, logprob, chain of thought, dataset) on disjoint taxonomy slices.
"""

from __future__ import annotations

import math
import random
from typing import Any

import vocab
from asks import person_request
from benign import reseller
from network import APP_UA, PERSONAL_UA, fixed_network, personal_network, pick_family, user_agent
from timing import DAY, active_window, bursts, pick_tz, sample_times, sessions
from world import CHAT, COMPLETIONS, Account, Request, World, chat, person_habits, topic_values

_DOMAIN_TASK = {"mathematics": "math", "physics": "math", "finance": "math", "programming": "code",
                "computer science": "code", "engineering": "math", "philosophy": "logic"}


def _task_for(rng: random.Random, domain: str) -> str:
    if domain in _DOMAIN_TASK and rng.random() < 0.7:
        return _DOMAIN_TASK[domain]
    return rng.choices(("general", "write", "logic", "math"), (0.7, 0.1, 0.1, 0.1))[0]


def _walk(rng: random.Random, concepts: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """``n`` concepts walking ``concepts`` in shuffled passes (systematic coverage)."""
    out: list[tuple[str, str]] = []
    while len(out) < n:
        block = list(concepts)
        rng.shuffle(block)
        out.extend(block)
    return out[:n]


def _vol(n: float, scale: float, lo: int = 5) -> int:
    """A per-account request count at campaign scale ``scale`` (1: the documented sizes)."""
    return max(lo, int(n * min(scale, 1.0)))


def _label(campaign: str, strategy: str, **extra: Any) -> dict[str, Any]:
    return {"label": "distiller", "campaign": campaign, "strategy": strategy, **extra}


def _person(world: World, rng: random.Random, campaign: str, strategy: str, weights: dict[str, float] | None = None,
            keep: float = 0.4, **extra: Any) -> Account:
    net = personal_network(rng, world.space, weights)
    return world.add_account(rng, net, user_agent(rng, pick_family(rng, PERSONAL_UA)), pick_tz(rng), keep=keep,
                             label=_label(campaign, strategy, **extra))


def _reasoned_request(world: World, rng: random.Random, acct: Account, t: float, domain: str, concept: str,
                      habits: dict[str, Any], p_reason: float, p_light: float = 0.0) -> Request:
    values = topic_values(rng, domain=domain, concept=concept)
    roll = rng.random()
    reason = world.say("reason_full", rng, acct, values) if roll < p_reason else \
        world.say("reason_light", rng, acct, values) if roll < p_reason + p_light else None
    return person_request(world, rng, acct, t, task=_task_for(rng, domain), values=values, habits=habits, reason=reason)


# ------------------------------------------------------------------------------------------ strategies
def slow_low(world: World, rng: random.Random, cid: str, scale: float) -> None:
    acct = _person(world, rng, cid, "slow_low", {"residential": 0.6, "ipv6": 0.3, "mobile": 0.1})
    per_day = rng.uniform(10, 35)
    n = int(per_day * world.days)
    times = sessions(rng, n, 0, world.horizon, acct.tz, rng.choice(("evening", "work")), mean_len=4, think_median_s=150)
    habits = person_habits(rng) | {"model": "atlas-pro", "max_tokens": rng.choice((None, 2048, 4096))}
    p_reason = rng.uniform(0.15, 0.35)
    for t, (d, c) in zip(times, _walk(rng, list(vocab.CONCEPTS), n)):
        world.emit(_reasoned_request(world, rng, acct, t, d, c, habits, p_reason, 0.05), rng)


def _router_distiller(world: World, rng: random.Random, acct: Account, n: int, user_mode: str, campaign: str) -> None:
    ids = [f"usr_{rng.getrandbits(40):010x}" for _ in range(1 if user_mode == "stable" else rng.randint(25, 60))]
    for uid in ids:
        world.end_users[acct.account_id][uid] = {"label": "distiller", "campaign": campaign}
    style = world.style(rng, 0.5)
    habits = {"model": "atlas-pro", "max_tokens": rng.choice((2048, 4096)), "temperature": rng.choice((0.7, 1.0))}
    concepts = _walk(rng, list(vocab.CONCEPTS), n)
    for t, (d, c) in zip(sample_times(rng, n, 0, world.horizon, acct.tz, "flat"), concepts):
        values = topic_values(rng, domain=d, concept=c)
        reason = world.grammar.say("reason_full", rng, values, (world.dialect, style)) if rng.random() < 0.75 else None
        req = person_request(world, rng, acct, t, task=_task_for(rng, d), values=values, habits=habits, reason=reason,
                             styles=(style,))
        req.user = None if user_mode == "none" else rng.choice(ids)
        req.row_label, req.row_campaign, req.row_kind = "distiller", campaign, "router_distiller"
        world.emit(req, rng)


def router(world: World, rng: random.Random, cid: str, scale: float, user_mode: str = "stable") -> None:
    share = rng.uniform(0.10, 0.30)
    reseller(world, rng, distiller_share=share, campaign=cid, distill_fn=_router_distiller, user_mode=user_mode,
             n_requests=_vol(rng.uniform(1200, 2200), scale, lo=100))
    world.campaigns[cid]["distiller_share"] = round(share, 3)
    world.campaigns[cid]["user_mode"] = user_mode


def diverse_hydra(world: World, rng: random.Random, cid: str, scale: float, size: tuple[int, int] = (60, 150)) -> None:
    n_acc = max(6, int(rng.randint(*size) * scale))
    concepts = list(vocab.CONCEPTS)
    rng.shuffle(concepts)
    slices = [concepts[i::n_acc] for i in range(n_acc)]
    for i in range(n_acc):
        acct = _person(world, rng, cid, "diverse_hydra", {"residential": 0.65, "ipv6": 0.2, "mobile": 0.15}, keep=0.35)
        t0, t1 = active_window(rng, world.days, p_new=0.5, p_churn=0.3)
        n = int(rng.uniform(10, 60))
        times = sorted(rng.uniform(t0, t1) for _ in range(n)) if rng.random() < 0.5 else \
            sessions(rng, n, t0, t1, acct.tz, rng.choice(("evening", "work")), 3, 100)
        habits = person_habits(rng) | {"model": rng.choice(("atlas-pro", "atlas-reason")),
                                       "max_tokens": rng.choice((None, 1500, 2048, 3000, 4096))}
        p_reason = rng.uniform(0.7, 1.0)
        for t, (d, c) in zip(times, _walk(rng, slices[i], n)):
            world.emit(_reasoned_request(world, rng, acct, t, d, c, habits, p_reason), rng)


def logprob_harvest(world: World, rng: random.Random, cid: str, scale: float, n_acc: int = 1, stealth: bool = False) -> None:
    n_acc = max(1, int(n_acc * scale))
    infra = rng.choice(("vps", "vpn", "cloud"))
    prefix = world.space.block24()
    for i in range(n_acc):
        if infra == "vpn":
            net = personal_network(rng, world.space, {"vpn": 1.0})
        elif infra == "vps":
            net = fixed_network("vps_block", [f"{prefix}.{rng.randrange(2, 250)}"], world.space)
        else:
            net = fixed_network("cloud", [world.space.cloud()], world.space)
        acct = world.add_account(rng, net, user_agent(rng, pick_family(rng, APP_UA)), pick_tz(rng), keep=0.3,
                                 label=_label(cid, "logprob_harvest", stealth=stealth))
        n = _vol(rng.uniform(120, 500), scale)
        runs = rng.randint(3, 12)
        starts = sorted(rng.uniform(0, world.horizon - 3600) for _ in range(runs))
        times = bursts(rng, starts, [n // runs + 1] * runs, gap_median_s=rng.choice((1.0, 3.0, 8.0)), jitter=0.8)[:n]
        raw_text = rng.random() < 0.4
        for t, (d, c) in zip(times, _walk(rng, list(vocab.CONCEPTS), n)):
            values = topic_values(rng, domain=d, concept=c)
            top = rng.randint(5, 8) if stealth else rng.choice((10, 15, 20, 20, 20))
            mt = rng.randint(16, 48) if stealth else rng.randint(1, 16)
            temp = rng.choice((0.0, 1.0))
            if raw_text and rng.random() < 0.7:
                text = world.say(rng.choice(("prose", "passage", "doc_text")), rng, acct, values)
                cut = text[: rng.randint(20, max(21, len(text)))]
                world.emit(Request(t=t, account=acct, endpoint=COMPLETIONS, model="atlas-pro", messages=None, prompt_text=cut,
                                   params={"max_tokens": mt, "logprobs": top, "temperature": temp}, out="prose",
                                   out_tokens=int(rng.lognormvariate(5, 0.6)), concept=c), rng)
                continue
            req = person_request(world, rng, acct, t, task=_task_for(rng, d), values=values,
                                 habits={"model": "atlas-pro", "temperature": temp, "max_tokens": mt})
            req.params.update(logprobs=True, top_logprobs=top)
            req.params["max_tokens"] = mt
            world.emit(req, rng)


def cot_extraction(world: World, rng: random.Random, cid: str, scale: float, infra: str = "single") -> None:
    n_acc = 1 if infra == "single" else max(2, int((rng.randint(6, 10) if infra == "vps" else rng.randint(10, 20)) * scale))
    prefix = world.space.block24()
    pool = [(d, c) for d, c in vocab.CONCEPTS if d in vocab.REASONING_DOMAINS or d == "philosophy"]
    for i in range(n_acc):
        if infra == "residential":
            acct = _person(world, rng, cid, "cot_extraction", {"residential": 0.7, "ipv6": 0.2, "mobile": 0.1}, keep=0.45)
        else:
            net = fixed_network("vps_block", [f"{prefix}.{rng.randrange(2, 250)}"], world.space)
            acct = world.add_account(rng, net, user_agent(rng, pick_family(rng, APP_UA)), pick_tz(rng), keep=0.45,
                                     label=_label(cid, "cot_extraction"))
        acct.label["infra"] = infra
        n = _vol(rng.uniform(300, 700) if infra == "single" else rng.uniform(60, 220), scale)
        if infra == "residential":
            times = sessions(rng, n, 0, world.horizon, acct.tz, "evening", 5, 120)
        else:
            times = sample_times(rng, n, 0, world.horizon, acct.tz, "flat")
        n_choices = rng.choice((1, 1, 2, 4))
        for t, (d, c) in zip(times, _walk(rng, pool, n)):
            values = topic_values(rng, domain=d, concept=c)
            task = rng.choices(("math", "code", "logic", "debug"), (0.45, 0.25, 0.2, 0.1))[0]
            reason = world.say("reason_full", rng, acct, values)
            habits = {"model": rng.choice(("atlas-pro", "atlas-reason")), "max_tokens": rng.choice((2048, 4096, 8192)),
                      "temperature": rng.choice((0.6, 0.8, 1.0))}
            req = person_request(world, rng, acct, t, task=task, values=values, habits=habits, reason=reason,
                                 median_tokens=900)
            if n_choices > 1:
                req.params["n"] = n_choices
            world.emit(req, rng)


def _dataset_request(world: World, rng: random.Random, acct: Account, t: float, d: str, c: str, system: str) -> Request:
    values = topic_values(rng, domain=d, concept=c)
    k = rng.choice((5, 8, 10, 10, 15, 20))
    values.update(k=str(k), fields=rng.choice(('"instruction", "response"', "question, answer, explanation",
                                               "prompt / completion / difficulty", "input, reasoning, output",
                                               '"q", "a", "rationale"', "title, body, label")))
    params = {"max_tokens": rng.choice((2048, 4096)), "temperature": rng.choice((0.8, 1.0, 1.1))}
    if rng.random() < 0.6:
        params["response_format"] = {"type": "json_object"}
    return Request(t=t, account=acct, endpoint=CHAT, model="atlas-pro",
                   messages=chat(system, world.say("dataset_user", rng, acct, values)), prompt_text=None, params=params,
                   out="json", out_tokens=int(k * rng.uniform(110, 220)), concept=c)


def synthetic_dataset(world: World, rng: random.Random, cid: str, scale: float, synced: bool = True,
                      size: tuple[int, int] = (20, 60)) -> None:
    n_acc = max(3, int(rng.randint(*size) * scale))
    prefix = world.space.block24()
    camp_style = world.style(rng, 0.3)
    cron = [d * DAY + rng.uniform(0, 23) * 3600 for d in range(world.days) for _ in range(rng.randint(1, 2))]
    concepts = list(vocab.CONCEPTS)
    rng.shuffle(concepts)
    for i in range(n_acc):
        if synced:
            net = fixed_network("vps_block", [f"{prefix}.{rng.randrange(2, 250)}"], world.space)
            acct = world.add_account(rng, net, user_agent(rng, "aiohttp"), 0.0, keep=0.5, label=_label(cid, "synthetic_dataset", synced=True))
        else:
            acct = _person(world, rng, cid, "synthetic_dataset", {"vpn": 0.6, "residential": 0.4}, keep=0.4, synced=False)
        system = world.say("dataset_system", rng, acct, topic_values(rng), (camp_style,) if synced else ())
        n = _vol(rng.uniform(25, 110), scale)
        if synced:
            picks = sorted(rng.sample(cron, min(len(cron), max(1, n // 6))))
            times = bursts(rng, [s + rng.uniform(0, 30) for s in picks], [n // len(picks) + 1] * len(picks), 4.0)[:n]
        else:
            t0, t1 = active_window(rng, world.days, 0.3, 0.2)
            times = sample_times(rng, n, t0, t1, acct.tz, rng.choice(("evening", "work", "flat")))
        for t, (d, c) in zip(times, _walk(rng, concepts[i::n_acc] + concepts[(i + 1) % n_acc::n_acc * 3], n)):
            world.emit(_dataset_request(world, rng, acct, t, d, c, system), rng)


def benign_mimic(world: World, rng: random.Random, cid: str, scale: float, n_acc: int = 1) -> None:
    n_acc = max(1, int(n_acc * max(scale, 0.34)))
    for i in range(n_acc):
        ips = [world.space.cloud() for _ in range(rng.randint(1, 3))]
        acct = world.add_account(rng, fixed_network("cloud", ips, world.space), user_agent(rng, pick_family(rng, APP_UA)),
                                 pick_tz(rng), keep=0.3, label=_label(cid, "benign_mimic"))
        values0 = {**topic_values(rng), "company": rng.choice(vocab.COMPANIES)}
        system = world.say(rng.choice(("rag_system", "support_system")), rng, acct, values0)
        fake_users = [f"u_{rng.getrandbits(32):08x}" for _ in range(rng.randint(50, 200))]
        n = _vol(rng.uniform(300, 1100), scale)
        params0 = {"temperature": rng.choice((0.3, 0.5, 0.7)), "max_tokens": rng.choice((1500, 2048, 4096))}
        for t, (d, c) in zip(sample_times(rng, n, 0, world.horizon, acct.tz, "work"), _walk(rng, list(vocab.CONCEPTS), n)):
            values = {**topic_values(rng, domain=d, concept=c), "company": values0["company"]}
            text = world.say("mimic_user", rng, acct, values)
            world.emit(Request(t=t, account=acct, endpoint=CHAT, model="atlas-pro", messages=chat(system, text), prompt_text=None,
                               params=dict(params0), out="cot" if rng.random() < 0.5 else "prose",
                               out_tokens=int(rng.lognormvariate(math.log(800), 0.5)), concept=c,
                               user=rng.choice(fake_users)), rng)


def mixture(world: World, rng: random.Random, cid: str, scale: float) -> None:
    """One operator, one sign-up cohort, several sub-strategies on disjoint taxonomy slices."""
    n_acc = max(4, int(rng.randint(8, 16) * scale))
    concepts = list(vocab.CONCEPTS)
    rng.shuffle(concepts)
    signup = rng.uniform(0, world.horizon * 0.4)
    subs = ["slow_low", "logprob", "cot", "dataset"]
    for i in range(n_acc):
        sub = subs[i % len(subs)] if i < len(subs) else rng.choice(subs)
        acct = _person(world, rng, cid, "mixture", {"vpn": 0.4, "residential": 0.4, "ipv6": 0.2}, keep=0.4, sub_strategy=sub)
        start = signup + rng.uniform(0, 2 * DAY)
        part = concepts[i::n_acc]
        if sub == "slow_low":
            n = _vol(rng.uniform(8, 20) * (world.horizon - start) / DAY, scale)
            habits = person_habits(rng) | {"model": "atlas-pro"}
            times = sessions(rng, n, start, world.horizon, acct.tz, "evening", 4, 120)
            for t, (d, c) in zip(times, _walk(rng, part, n)):
                world.emit(_reasoned_request(world, rng, acct, t, d, c, habits, 0.25, 0.1), rng)
        elif sub == "logprob":
            n = _vol(rng.uniform(100, 300), scale)
            for t, (d, c) in zip(sample_times(rng, n, start, world.horizon, acct.tz, "evening"), _walk(rng, part, n)):
                values = topic_values(rng, domain=d, concept=c)
                req = person_request(world, rng, acct, t, task=_task_for(rng, d), values=values,
                                     habits={"model": "atlas-pro", "temperature": 0.0, "max_tokens": rng.randint(1, 24)})
                req.params.update(logprobs=True, top_logprobs=rng.choice((10, 20)))
                world.emit(req, rng)
        elif sub == "cot":
            n = _vol(rng.uniform(60, 200), scale)
            habits = {"model": "atlas-reason", "max_tokens": 4096, "temperature": 0.8}
            for t, (d, c) in zip(sessions(rng, n, start, world.horizon, acct.tz, "work", 5, 90), _walk(rng, part, n)):
                world.emit(_reasoned_request(world, rng, acct, t, d, c, habits, 0.9), rng)
        else:
            n = _vol(rng.uniform(40, 120), scale)
            system = world.say("dataset_system", rng, acct, topic_values(rng))
            for t, (d, c) in zip(sample_times(rng, n, start, world.horizon, acct.tz, "flat"), _walk(rng, part, n)):
                world.emit(_dataset_request(world, rng, acct, t, d, c, system), rng)


#: (strategy, function, keyword arguments) of every campaign at scale 1; several per strategy,
#: of varied size and stealth.
PLAN: tuple[tuple[str, Any, dict[str, Any]], ...] = (
    ("slow_low", slow_low, {}), ("slow_low", slow_low, {}), ("slow_low", slow_low, {}), ("slow_low", slow_low, {}),
    ("router", router, {"user_mode": "stable"}), ("router", router, {"user_mode": "rotating"}),
    ("router", router, {"user_mode": "none"}),
    ("diverse_hydra", diverse_hydra, {}), ("diverse_hydra", diverse_hydra, {}),
    ("diverse_hydra", diverse_hydra, {"size": (60, 70)}),
    ("logprob_harvest", logprob_harvest, {"n_acc": 1}), ("logprob_harvest", logprob_harvest, {"n_acc": 5}),
    ("logprob_harvest", logprob_harvest, {"n_acc": 12, "stealth": True}),
    ("cot_extraction", cot_extraction, {"infra": "single"}), ("cot_extraction", cot_extraction, {"infra": "vps"}),
    ("cot_extraction", cot_extraction, {"infra": "residential"}),
    ("synthetic_dataset", synthetic_dataset, {"synced": True}), ("synthetic_dataset", synthetic_dataset, {"synced": False}),
    ("synthetic_dataset", synthetic_dataset, {"synced": False, "size": (20, 25)}),
    ("benign_mimic", benign_mimic, {"n_acc": 1}), ("benign_mimic", benign_mimic, {"n_acc": 3}),
    ("mixture", mixture, {}), ("mixture", mixture, {}),
)


def build_campaigns(world: World, scale: float) -> None:
    for i, (strategy, fn, kwargs) in enumerate(PLAN, start=1):
        cid = f"C{i:02d}-{strategy}"
        before = len(world.accounts)
        world.campaigns[cid] = {"strategy": strategy, **{k: v for k, v in kwargs.items() if k != "n_acc"}}
        fn(world, world.rng("campaign", cid), cid, scale, **kwargs)
        world.campaigns[cid]["accounts"] = sorted(a.account_id for a in world.accounts[before:])
