"""Benign accounts: people, applications and the hard negatives a provider really sees.

Each ``kind`` function creates its account(s) and emits their requests into the world. Shares
of the benign population are in :data:`SHARES`; group kinds (offices, classes, research groups,
labelling shops) create several accounts at once.
"""

from __future__ import annotations

import random
from typing import Any, Callable

import vocab
from asks import PERSONAL_SYSTEMS, interests, person_request, personal_values, pick_task, task_mix
from network import APP_UA, PERSONAL_UA, fixed_network, personal_network, pick_family, user_agent
from timing import DAY, active_window, bursts, heavy_count, pick_tz, sample_times, sessions
from world import CHAT, COMPLETIONS, MODELS, Account, Request, World, chat, person_habits, topic_values

B = {"label": "benign"}


def _app_account(world: World, rng: random.Random, kind: str, n_ips: tuple[int, int] = (1, 3),
                 ua_weights: dict[str, float] = APP_UA, extra: dict[str, Any] | None = None) -> Account:
    ips = [world.space.cloud() for _ in range(rng.randint(*n_ips))]
    return world.add_account(rng, fixed_network("cloud", ips, world.space), user_agent(rng, pick_family(rng, ua_weights)),
                             pick_tz(rng), keep=0.04, label={**B, "kind": kind, **(extra or {})},
                             n_keys=rng.choice((1, 1, 2)))


def _person_account(world: World, rng: random.Random, kind: str, network=None, ua: str | None = None,
                    tz: float | None = None, keep: float = 0.45, extra: dict[str, Any] | None = None) -> Account:
    net = network or personal_network(rng, world.space)
    return world.add_account(rng, net, ua or user_agent(rng, pick_family(rng, PERSONAL_UA)),
                             pick_tz(rng) if tz is None else tz, keep=keep, label={**B, "kind": kind, **(extra or {})})


def _people_requests(world: World, rng: random.Random, acct: Account, times: list[float], mix: dict[str, float],
                     likes: list[str], habits: dict[str, Any], system: str | None, reason_rate: float,
                     user: str | None = None) -> None:
    last_t, history = -1e9, []
    for t in times:
        task = pick_task(rng, mix)
        values = personal_values(rng, likes)
        reason = None
        if rng.random() < reason_rate:   # most ask lightly; some want every step (tutoring, checking homework)
            reason = world.say("reason_full" if rng.random() < 0.3 else "reason_light", rng, acct, values)
        # a follow-up inside a conversation carries the previous turn
        hist = history if t - last_t < 600 and rng.random() < 0.35 else None
        req = person_request(world, rng, acct, t, task=task, values=values, habits=habits, system=system,
                             reason=reason, history=hist)
        req.user = user
        world.emit(req, rng)
        history = [{"role": "user", "content": req.messages[-1]["content"][:400]},
                   {"role": "assistant", "content": f"(previous answer about {values['concept']})"}]
        last_t = t


# ------------------------------------------------------------------------------------------ people
def hobbyist(world: World, rng: random.Random) -> None:
    acct = _person_account(world, rng, "hobbyist")
    t0, t1 = active_window(rng, world.days)
    n = heavy_count(rng, 4.2, 1.15, hi=600)
    times = sessions(rng, n, t0, t1, acct.tz, "evening", mean_len=3, think_median_s=70)
    habits = person_habits(rng)
    system = rng.choice(PERSONAL_SYSTEMS) if rng.random() < 0.3 else None
    _people_requests(world, rng, acct, times, task_mix(rng), interests(rng, vocab.DOMAINS), habits, system,
                     reason_rate=rng.choice((0.0, 0.02, 0.05, 0.1)))


def coding_assistant(world: World, rng: random.Random) -> None:
    net = personal_network(rng, world.space, {"residential": 0.5, "ipv6": 0.2, "vpn": 0.15, "mobile": 0.15})
    acct = _person_account(world, rng, "coding_assistant", network=net, ua=user_agent(rng, "ide"))
    t0, t1 = active_window(rng, world.days)
    autocomplete = rng.random() < 0.3
    n = heavy_count(rng, 11 if not autocomplete else 30, 1.0, hi=1500)
    times = sessions(rng, n, t0, t1, acct.tz, "work", mean_len=8 if autocomplete else 4,
                     think_median_s=25 if autocomplete else 60)
    system = rng.choice(("You are an expert programmer. Answer with code first, explanation after.",
                         "You are a coding assistant inside an IDE. Be concise. Use the user's language and style.",
                         "You are a pair programmer. When asked for code, return a single code block."))
    model = rng.choice(MODELS[:2])
    temp = rng.choice((0.0, 0.1, 0.2, 0.2))
    likes = ["programming", "computer science"]
    mix = {"code": 0.55, "debug": 0.3, "general": 0.15}
    for t in times:
        if autocomplete and rng.random() < 0.7:
            values = topic_values(rng, domain="programming")
            prefix = values["snippet"][: rng.randint(20, len(values["snippet"]))]
            world.emit(Request(t=t, account=acct, endpoint=COMPLETIONS, model=model, messages=None,
                               prompt_text=prefix, params={"max_tokens": rng.choice((48, 64, 96, 128)), "temperature": 0.0,
                                                           "stop": ["\n\n"]},
                               out="code_only", out_tokens=int(rng.lognormvariate(3.2, 0.7)), concept=values["concept"]), rng)
            continue
        task = pick_task(rng, mix)
        values = personal_values(rng, likes, 0.9)
        habits = {"temperature": temp, "max_tokens": rng.choice((1024, 2048, 4096)), "stream": True, "model": model}
        world.emit(person_request(world, rng, acct, t, task=task, values=values, habits=habits, system=system), rng)


def office_workers(world: World, rng: random.Random, n_accounts: int) -> None:
    """One office: several accounts behind one or two NAT addresses, business hours."""
    ips = [world.space.residential() for _ in range(rng.choice((1, 1, 2)))]
    tz = pick_tz(rng)
    likes_office = ["business", "marketing", "finance", "law", "programming", "economics"]
    office_id = f"office-{rng.getrandbits(24):06x}"
    for _ in range(n_accounts):
        acct = _person_account(world, rng, "office_worker", network=fixed_network("office", ips, world.space), tz=tz,
                               extra={"group": office_id})
        t0, t1 = active_window(rng, world.days)
        n = heavy_count(rng, 8, 1.0, hi=300)
        times = sessions(rng, n, t0, t1, tz, "work", mean_len=3, think_median_s=90)
        _people_requests(world, rng, acct, times, task_mix(rng, {"general": 0.35, "write": 0.4, "code": 0.1, "debug": 0.05,
                                                                   "math": 0.1, "logic": 0.0}),
                         interests(rng, tuple(likes_office)), person_habits(rng), None, reason_rate=0.03)


def class_behind_nat(world: World, rng: random.Random, n_students: int) -> None:
    """A class: students sign up the same day, share one campus address, work on the same assignments."""
    ips = [world.space.cloud() for _ in range(rng.choice((1, 2)))]
    tz = pick_tz(rng)
    subject = rng.choice(("programming", "mathematics", "computer science", "physics", "economics"))
    assignment_tasks = rng.sample(vocab.CODE_TASKS, 4)
    signup = rng.uniform(0, 2 * DAY)
    meetings = [d * DAY + 10 * 3600 - tz * 3600 for d in range(world.days) if d % 7 in (1, 3)]
    group = f"class-{rng.getrandbits(24):06x}"
    for _ in range(n_students):
        acct = _person_account(world, rng, "class_nat", network=fixed_network("campus", ips, world.space), tz=tz,
                               ua=user_agent(rng, rng.choice(("browser", "sdk-python", "sdk-python", "requests"))),
                               extra={"group": group, "subject": subject})
        n_in, n_home = heavy_count(rng, 8, 0.6, hi=60), heavy_count(rng, 6, 0.9, hi=80)
        times = [m + rng.uniform(0, 5400) for m in meetings if m > signup for _ in range(max(1, n_in // max(len(meetings), 1)))]
        times += sessions(rng, n_home, signup, world.horizon, tz, "evening", 3, 80)
        times.sort()
        habits = person_habits(rng)
        mix = {"code": 0.5, "debug": 0.3, "general": 0.2} if subject == "programming" else {"math": 0.45, "general": 0.45, "logic": 0.1}
        for t in times:
            values = topic_values(rng, domain=subject)
            values["task"] = rng.choice(assignment_tasks)
            reason = world.say(rng.choice(("reason_light", "reason_full")), rng, acct, values) if rng.random() < 0.15 else None
            world.emit(person_request(world, rng, acct, t, task=pick_task(rng, mix), values=values, habits=habits,
                                      reason=reason), rng)


# ------------------------------------------------------------------------------------------ applications
def rag_app(world: World, rng: random.Random) -> None:
    acct = _app_account(world, rng, "rag_app")
    t0, t1 = active_window(rng, world.days, p_new=0.1, p_churn=0.05)
    n = heavy_count(rng, 30, 1.25, hi=5000)
    company = rng.choice(vocab.COMPANIES)
    base = {"company": company}
    system = world.say("rag_system", rng, acct, {**topic_values(rng), **base})
    temp, max_tokens, model = rng.choice((0.0, 0.1, 0.2, 0.3)), rng.choice((300, 400, 512, 800, 1000)), rng.choice(MODELS[:2])
    passes_user = rng.random() < 0.3
    users = [f"u_{rng.getrandbits(32):08x}" for _ in range(rng.randint(5, 300))]
    for t in sample_times(rng, n, t0, t1, acct.tz, "app" if rng.random() < 0.6 else "work"):
        values = {**topic_values(rng), **base}
        values["passages"] = passages(world, rng, acct, values)
        values["q"] = world.say("rag_q", rng, None, values)        # the app's users ask in their own words
        user_text = world.say("rag_user", rng, acct, values)
        world.emit(Request(t=t, account=acct, endpoint=CHAT, model=model, messages=chat(system, user_text),
                           prompt_text=None, params={"temperature": temp, "max_tokens": max_tokens},
                           out="prose", out_tokens=int(rng.lognormvariate(4.9, 0.5)), concept=values["concept"],
                           user=rng.choice(users) if passes_user else None), rng)


def passages(world: World, rng: random.Random, acct: Account, values: dict[str, str]) -> str:
    """Two to five retrieved passages, about the question's topic and its neighbours."""
    out = []
    for i in range(rng.randint(2, 5)):
        v = values if i == 0 else {**topic_values(rng, domain=values["domain"]), "company": values["company"]}
        out.append(f"[{i + 1}] " + world.say("passage", rng, None, v))
    rng.shuffle(out)
    return "\n".join(out)


def translation_saas(world: World, rng: random.Random) -> None:
    acct = _app_account(world, rng, "translation_saas")
    n = heavy_count(rng, 160, 0.9, hi=4000)
    pairs = [tuple(rng.sample(vocab.LANGUAGES, 2)) for _ in range(rng.randint(2, 12))]
    temp, max_tokens = rng.choice((0.0, 0.1, 0.3)), rng.choice((None, 1000, 2000, 4000))
    rule_keep = world.style(rng, 0.3)
    for t in sample_times(rng, n, 0, world.horizon, acct.tz, "work"):
        src, tgt = rng.choice(pairs)
        values = {**topic_values(rng), "src": src, "tgt": tgt}
        system = world.say("translate_system", rng, acct, values, (rule_keep,))
        text = world.say("translate_user", rng, None, values)
        params = {"temperature": temp} | ({"max_tokens": max_tokens} if max_tokens else {})
        world.emit(Request(t=t, account=acct, endpoint=CHAT, model="atlas-mini", messages=chat(system, text),
                           prompt_text=None, params=params, out="prose",
                           out_tokens=int(len(text) / 4 * rng.uniform(0.9, 1.5)) + 2, concept=values["concept"]), rng)


def support_bot(world: World, rng: random.Random) -> None:
    acct = _app_account(world, rng, "support_bot")
    n = heavy_count(rng, 60, 1.1, hi=5000)
    values0 = topic_values(rng)
    values0["company"] = rng.choice(vocab.COMPANIES)
    system = world.say("support_system", rng, acct, values0)
    temp, max_tokens, stream = rng.choice((0.3, 0.5, 0.7)), rng.choice((150, 200, 256, 300)), rng.random() < 0.5
    passes_user = rng.random() < 0.5
    t = 0.0
    times = sessions(rng, n, 0, world.horizon, acct.tz, "app", mean_len=4, think_median_s=35)
    history: list[dict[str, str]] = []
    last = -1e9
    chat_id = None
    for t in times:
        values = {**topic_values(rng), "company": values0["company"]}
        if t - last > 900:
            history, chat_id = [], f"chat_{rng.getrandbits(40):010x}"
        user_text = world.say("support_user", rng, None, values)
        params = {"temperature": temp, "max_tokens": max_tokens} | ({"stream": True} if stream else {})
        world.emit(Request(t=t, account=acct, endpoint=CHAT, model="atlas-mini", messages=chat(system, user_text, history[-8:]),
                           prompt_text=None, params=params, out="prose", out_tokens=int(rng.lognormvariate(4.1, 0.5)),
                           concept=values["product"], user=chat_id if passes_user else None), rng)
        history = history + [{"role": "user", "content": user_text},
                             {"role": "assistant", "content": world.say("support_reply", rng, acct, values)}]
        last = t


def batch_job(world: World, rng: random.Random) -> None:
    acct = _app_account(world, rng, "batch_job", ua_weights={"requests": 0.3, "sdk-python": 0.4, "go": 0.15, "aiohttp": 0.15})
    hour = rng.choice((0, 1, 2, 3, 4, 22, 23)) + rng.random()
    per_night = heavy_count(rng, 14, 0.8, hi=600)
    skip_weekend = rng.random() < 0.4
    values0 = topic_values(rng)
    values0["intents"] = ", ".join(vocab.LABELS_INTENT)
    system = world.say("batch_system", rng, acct, values0)
    as_json = "JSON" in system or "{" in system
    starts, sizes = [], []
    for d in range(world.days):
        if skip_weekend and d % 7 in (5, 6):
            continue
        starts.append(d * DAY + hour * 3600 + rng.uniform(0, 120))
        sizes.append(max(1, int(per_night * rng.uniform(0.75, 1.25))))
    params = {"temperature": 0.0, "max_tokens": rng.choice((256, 300, 400, 512))}
    if as_json and rng.random() < 0.6:
        params["response_format"] = {"type": "json_object"}
    for t in bursts(rng, starts, sizes, gap_median_s=rng.choice((0.4, 1.0, 2.0))):
        values = {**topic_values(rng), "doc": values0["doc"]}
        values["doc_text"] = world.say("doc_text", rng, None, values)
        world.emit(Request(t=t, account=acct, endpoint=CHAT, model="atlas-mini",
                           messages=chat(system, world.say("batch_user", rng, acct, values)), prompt_text=None,
                           params=dict(params), out="extract" if as_json else "prose",
                           out_tokens=int(rng.lognormvariate(4.4, 0.4)), concept=values["concept"]), rng)


def eval_requests(world: World, rng: random.Random, acct: Account, times: list[float], bench: str,
                  concepts: list[tuple[str, str]], model: str) -> None:
    """An evaluation harness's requests over a slice of a benchmark (fixed formats, temperature 0)."""
    for t, (domain, concept) in zip(times, concepts):
        values = topic_values(rng, domain=domain, concept=concept)
        if bench in ("mc", "mc-loglik"):
            opts = rng.sample([c for c in vocab.TAXONOMY[domain] if c != concept], 3)
            opts.insert(rng.randrange(4), concept)
            values.update(question=world.say("mc_question", rng, None, values), a=opts[0], b=opts[1], c=opts[2], d=opts[3])
            text = world.say("eval_mc", rng, acct, values)
            if bench == "mc-loglik":
                world.emit(Request(t=t, account=acct, endpoint=COMPLETIONS, model=model, messages=None, prompt_text=text,
                                   params={"max_tokens": 1, "temperature": 0.0, "logprobs": 5, "echo": False},
                                   out="mc", out_tokens=1, concept=concept), rng)
                continue
            world.emit(Request(t=t, account=acct, endpoint=CHAT, model=model, messages=chat(None, text), prompt_text=None,
                               params={"max_tokens": rng.choice((1, 2, 5)), "temperature": 0.0, "logprobs": True, "top_logprobs": 5},
                               out="mc", out_tokens=1, concept=concept), rng)
        else:   # "cot": math / reasoning benchmark with let's-think-step-by-step
            task = "math" if domain in ("mathematics", "physics", "finance") else "logic" if rng.random() < 0.3 else "general"
            text = world.say("ask_" + task, rng, None, values) + world.say("eval_cot", rng, acct, values)
            n = 5 if acct.label.get("self_consistency") else 1
            params = {"max_tokens": 512, "temperature": 0.7 if n > 1 else 0.0} | ({"n": n} if n > 1 else {})
            world.emit(Request(t=t, account=acct, endpoint=CHAT, model=model, messages=chat(None, text), prompt_text=None,
                               params=params, out="cot", out_tokens=int(rng.lognormvariate(5.4, 0.4)), concept=concept), rng)


def eval_harness(world: World, rng: random.Random) -> None:
    in_cloud = rng.random() < 0.6
    net = fixed_network("cloud", [world.space.cloud()], world.space) if in_cloud else personal_network(rng, world.space)
    acct = world.add_account(rng, net, user_agent(rng, rng.choice(("sdk-python", "aiohttp", "httpx"))), pick_tz(rng), keep=0.02,
                             label={**B, "kind": "eval_harness", "self_consistency": rng.random() < 0.25})
    for _ in range(rng.choice((1, 1, 2, 3))):
        bench = rng.choice(("mc", "mc", "mc-loglik", "cot", "cot"))
        size = heavy_count(rng, 110, 0.7, lo=40, hi=1500)
        concepts = [rng.choice(world_concepts()) for _ in range(size)]
        start = sample_times(rng, 1, 0, world.horizon - DAY * 0.3, acct.tz, "work")[0]
        times = bursts(rng, [start], [size], gap_median_s=rng.choice((0.3, 0.8, 2.0)))
        eval_requests(world, rng, acct, times, bench, concepts, rng.choice(MODELS))


def research_group(world: World, rng: random.Random, n_accounts: int = 10) -> None:
    """Ten accounts in one /24 running one benchmark, each a disjoint slice, started together."""
    prefix = world.space.block24()
    group = f"lab-{rng.getrandbits(24):06x}"
    ua = user_agent(rng, "sdk-python")
    tz = pick_tz(rng)
    accts = [world.add_account(rng, fixed_network("campus", [f"{prefix}.{rng.randrange(2, 250)}"], world.space), ua, tz,
                               keep=0.02, label={**B, "kind": "research_group", "group": group}) for _ in range(n_accounts)]
    bench_items = list(world_concepts())
    rng.shuffle(bench_items)
    bench = rng.choice(("cot", "mc"))
    model = rng.choice(MODELS)
    for _ in range(rng.randint(2, 4)):
        start = sample_times(rng, 1, 0, world.horizon - DAY * 0.3, tz, "work")[0]
        items = bench_items[: rng.randint(200, len(bench_items))]
        for i, acct in enumerate(accts):
            part = items[i::n_accounts]
            times = bursts(rng, [start + rng.uniform(0, 20)], [len(part)], gap_median_s=1.5)
            eval_requests(world, rng, acct, times, bench, part, model)


def moderation(world: World, rng: random.Random) -> None:
    acct = _app_account(world, rng, "moderation")
    n = heavy_count(rng, 450, 0.8, hi=8000)
    labels = ", ".join(vocab.LABELS_MODERATION)
    system = world.say("moderation_system", rng, acct, {"mod_labels": labels})
    top = rng.choice((5, 5, 8, 10, 20))
    for t in sample_times(rng, n, 0, world.horizon, acct.tz, "flat"):
        values = topic_values(rng)
        values["mod_labels"] = labels
        values["ugc"] = world.say("ugc", rng, None, values)
        label = rng.choices(vocab.LABELS_MODERATION, (0.8, 0.04, 0.02, 0.01, 0.03, 0.02, 0.06, 0.02))[0]
        world.emit(Request(t=t, account=acct, endpoint=CHAT, model="atlas-mini",
                           messages=chat(system, world.say("moderation_user", rng, acct, values)), prompt_text=None,
                           params={"max_tokens": rng.choice((1, 2, 3)) if rng.random() < 0.1 else 2, "temperature": 0.0,
                                   "logprobs": True, "top_logprobs": top, "logit_bias": {str(1000 + i): 5 for i in range(8)},
                                   "_label": label},
                           out="label", out_tokens=1, concept=values["concept"]), rng)


def data_labelling(world: World, rng: random.Random, n_accounts: int) -> None:
    """A labelling shop: annotators behind one office address, one shared guideline prompt."""
    ips = [world.space.residential()]
    tz = rng.choice((5.5, 8, 7, 1, 3))
    shop = f"shop-{rng.getrandbits(24):06x}"
    label_set = rng.choice((vocab.LABELS_SENTIMENT, vocab.LABELS_INTENT, vocab.LABELS_MODERATION))
    labels = ", ".join(label_set)
    values0 = {**topic_values(rng), "labels": labels}
    ua = user_agent(rng, "sdk-python")
    shop_style = world.style(rng, 0.02)
    system = world.grammar.say("label_system", rng, values0, (world.dialect, shop_style))
    logprobs = rng.random() < 0.4
    for _ in range(n_accounts):
        acct = world.add_account(rng, fixed_network("office", ips, world.space), ua, tz, keep=0.3,
                                 label={**B, "kind": "data_labelling", "group": shop})
        n = heavy_count(rng, 110, 0.6, hi=1500)
        for t in sessions(rng, n, 0, world.horizon, tz, "work", mean_len=25, think_median_s=20):
            values = {**topic_values(rng), "labels": labels}
            values["item_text"] = world.say(rng.choice(("ugc", "support_user", "prose")), rng, None, values)
            params = {"temperature": 0.0, "max_tokens": rng.choice((32, 64, 100)), "_label": rng.choice(label_set)}
            if logprobs:
                params |= {"logprobs": True, "top_logprobs": 3}
            world.emit(Request(t=t, account=acct, endpoint=CHAT, model="atlas-mini",
                               messages=chat(system, world.say("label_user", rng, acct, values)), prompt_text=None,
                               params=params, out="json" if "JSON" in system else "label", out_tokens=int(rng.uniform(6, 30)), concept=values["concept"]), rng)


def reseller(world: World, rng: random.Random, *, distiller_share: float = 0.0, campaign: str | None = None,
             distill_fn: Callable[..., None] | None = None, user_mode: str = "stable", n_requests: int | None = None) -> Account:
    """A reseller/router key: many end users in one account. With ``distill_fn`` a share of its
    traffic is a distiller (see :mod:`adversaries`); ``user_mode`` says how that end user shows up."""
    ips = [world.space.cloud() for _ in range(rng.randint(2, 6))]
    label = {"label": "distiller", "strategy": "router", "campaign": campaign, "mixed": True} if campaign else \
        {**B, "kind": "reseller"}
    acct = world.add_account(rng, fixed_network("cloud", ips, world.space), user_agent(rng, "router"), pick_tz(rng),
                             keep=1.0, label=label, n_keys=rng.randint(1, 4))
    fills_user = rng.choice((0.0, 0.7, 0.9, 1.0, 1.0)) if not campaign else (0.85 if user_mode != "none" else 0.0)
    n = n_requests or heavy_count(rng, 800, 0.7, lo=200, hi=8000)
    n_users = rng.randint(40, 400)
    users = []
    for _ in range(n_users):
        users.append({"id": f"usr_{rng.getrandbits(40):010x}", "w": rng.paretovariate(1.2), "mix": task_mix(rng),
                      "likes": interests(rng, vocab.DOMAINS), "habits": person_habits(rng),
                      "style": world.style(rng, 0.45), "reason": rng.choice((0.0, 0.03, 0.08))})
    world.end_users[acct.account_id] = {u["id"]: {"label": "benign"} for u in users}
    n_dist = int(round(n * distiller_share)) if distill_fn else 0
    weights = [u["w"] for u in users]
    for t in sample_times(rng, n - n_dist, 0, world.horizon, acct.tz, "app"):
        u = rng.choices(users, weights)[0]
        values = personal_values(rng, u["likes"])
        reason = world.say("reason_light", rng, None, values, (u["style"],)) if rng.random() < u["reason"] else None
        req = person_request(world, rng, acct, t, task=pick_task(rng, u["mix"]), values=values, habits=u["habits"],
                             reason=reason, styles=(u["style"],))
        req.user = u["id"] if rng.random() < fills_user else None
        req.row_kind = "reseller_end_user"
        world.emit(req, rng)
    if distill_fn:
        distill_fn(world, rng, acct, n_dist, user_mode, campaign)
    return acct


def world_concepts() -> tuple[tuple[str, str], ...]:
    return vocab.CONCEPTS


#: share of benign accounts per single-account kind (hobbyists fill the remainder)
SHARES = {"coding_assistant": 0.12, "rag_app": 0.028, "translation_saas": 0.006, "support_bot": 0.018,
          "batch_job": 0.007, "eval_harness": 0.005, "moderation": 0.0025, "reseller": 0.0015}
KINDS: dict[str, Callable[[World, random.Random], None]] = {
    "hobbyist": hobbyist, "coding_assistant": coding_assistant, "rag_app": rag_app, "translation_saas": translation_saas,
    "support_bot": support_bot, "batch_job": batch_job, "eval_harness": eval_harness, "moderation": moderation,
    "reseller": lambda w, r: reseller(w, r) and None,
}


def build_benign(world: World, n_accounts: int) -> None:
    """Create about ``n_accounts`` benign accounts (exactly, up to group rounding) and their requests."""
    rng = world.rng("benign-plan")
    start = len(world.accounts)
    n_classes = max(1, round(n_accounts / 3000))
    n_labs = max(1, round(n_accounts / 3000))
    n_shops = max(1, round(n_accounts / 1000))
    for i in range(n_classes):
        class_behind_nat(world, world.rng("class", i), rng.randint(25, 40))
    for i in range(n_labs):
        research_group(world, world.rng("lab", i), 10)
    for i in range(n_shops):
        data_labelling(world, world.rng("shop", i), rng.randint(4, 12))
    office_budget = int(n_accounts * 0.10)
    i = 0
    while office_budget > 0:
        size = min(office_budget, rng.randint(3, 20))
        office_workers(world, world.rng("office", i), size)
        office_budget -= size
        i += 1
    for kind, share in SHARES.items():
        for j in range(max(1, round(n_accounts * share))):
            KINDS[kind](world, world.rng(kind, j))
    j = 0
    while len(world.accounts) - start < n_accounts:
        hobbyist(world, world.rng("hobbyist", j))
        j += 1
