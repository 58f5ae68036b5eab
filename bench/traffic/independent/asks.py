"""What a person asks: one request of a given task type, in the account's own phrasing.

Used by benign people (hobbyists, office workers, students, a reseller's end users) and by the
distillers that pretend to be people (slow-and-low, hydra), so both draw from the same text.
"""

from __future__ import annotations

import random
from typing import Any

from grammar import Style
from world import CHAT, Account, Request, World, chat, personal_params, topic_values

TASKS = ("general", "code", "debug", "write", "math", "logic")
#: rule, completion shape, median completion tokens
_TASK_RULE = {"general": ("ask_general", "prose", 230), "code": ("ask_code", "code", 380),
              "debug": ("ask_debug", "code", 300), "write": ("ask_write", "prose", 260),
              "math": ("ask_math", "prose", 200), "logic": ("ask_logic", "prose", 240)}

PERSONAL_SYSTEMS = ("You are a helpful assistant.", "You are a helpful assistant.", "You are ChatGPT, a helpful assistant.",
                    "You are a concise assistant. Answer briefly.", "Be helpful and accurate.",
                    "You are an expert tutor.", "You are a senior software engineer.", "Respond in Markdown.",
                    "You are a friendly assistant who explains things simply.", "Answer like a pirate.")


def task_mix(rng: random.Random, base: dict[str, float] | None = None) -> dict[str, float]:
    """A person's own task preferences: the base mix, perturbed (gamma draws)."""
    base = base or {"general": 0.42, "code": 0.14, "debug": 0.07, "write": 0.2, "math": 0.11, "logic": 0.06}
    w = {k: rng.gammavariate(max(v * 4, 0.05), 1.0) for k, v in base.items()}
    s = sum(w.values()) or 1.0
    return {k: v / s for k, v in w.items()}


def interests(rng: random.Random, domains: tuple[str, ...], k_lo: int = 1, k_hi: int = 4) -> list[str]:
    return rng.sample(domains, rng.randint(k_lo, min(k_hi, len(domains))))


def person_request(world: World, rng: random.Random, acct: Account | None, t: float, *, task: str,
                   values: dict[str, str], habits: dict[str, Any], system: str | None = None,
                   reason: str | None = None, history: list[dict[str, str]] | None = None,
                   styles: tuple[Style, ...] = (), median_tokens: float | None = None) -> Request:
    rule, shape, median = _TASK_RULE[task]
    text = world.say(rule, rng, acct, values, styles)
    if reason:
        if text[-1:] not in ".?!:\"')":
            text += "."
        text = text + ("\n\n" if rng.random() < 0.5 else " ") + reason
        shape = "cot"
        median = max(median * 2.6, 500)
    params = personal_params(rng, habits)
    out = int(rng.lognormvariate(_log(median_tokens or median), 0.6))
    return Request(t=t, account=acct, endpoint=CHAT, model=habits.get("model", "atlas-mini"),
                   messages=chat(system, text, history), prompt_text=None, params=params, out=shape,
                   out_tokens=out, concept=values["concept"])


def _log(x: float) -> float:
    import math

    return math.log(max(x, 1.0))


def pick_task(rng: random.Random, mix: dict[str, float]) -> str:
    return rng.choices(list(mix), list(mix.values()))[0]


def personal_values(rng: random.Random, likes: list[str], p_like: float = 0.75) -> dict[str, str]:
    if likes and rng.random() < p_like:
        return topic_values(rng, domain=rng.choice(likes))
    return topic_values(rng)
