"""Shared state of one generated log: the grammar and its seed dialect, addresses, accounts, requests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import vocab
from grammar import Grammar, Style, mix64
from network import AddressSpace, Network
from phrasing import build_grammar

MODELS = ("atlas-pro", "atlas-mini", "atlas-reason")
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


@dataclass
class Account:
    """One API account: its keys, where it connects from, its client, its habits and its label."""

    account_id: str
    keys: list[str]
    network: Network
    ua: str
    tz: float
    style: Style                       # the account's phrasing habits
    label: dict[str, Any]              # kind / campaign / strategy / network, written to labels.json


@dataclass(slots=True)
class Request:
    """One request before it is answered; :mod:`completion` turns it into a log row."""

    t: float
    account: Account | None
    endpoint: str
    model: str
    messages: list[dict[str, str]] | None
    prompt_text: str | None
    params: dict[str, Any]
    out: str                           # what the answer looks like: prose, code, cot, json, label, ...
    out_tokens: int                    # length the model would write if not capped
    user: str | None = None
    ip: str | None = None
    key_id: str | None = None
    row_label: str = "benign"          # benign | distiller
    row_campaign: str | None = None
    row_kind: str | None = None
    concept: str = ""
    status: int = 200
    error: str | None = None


@dataclass
class World:
    seed: int
    days: int
    grammar: Grammar = field(default_factory=build_grammar)
    dialect: Style = field(init=False)
    space: AddressSpace = field(init=False)
    accounts: list[Account] = field(default_factory=list)
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    end_users: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        # Which phrasings exist in this log at all: ~75% of the alternatives at each choice point.
        self.dialect = Style(mix64(self.seed, 0xD1A1EC7), 0.75)
        self.space = AddressSpace(self.rng("address-space"))

    @property
    def horizon(self) -> float:
        return self.days * 86400.0

    def rng(self, *tag: object) -> random.Random:
        return random.Random(f"{self.seed}:" + ":".join(map(str, tag)))

    def new_id(self, prefix: str, rng: random.Random, bits: int = 48) -> str:
        while True:
            value = f"{prefix}{rng.getrandbits(bits):0{bits // 4}x}"
            if value not in self._ids:
                self._ids.add(value)
                return value

    def style(self, rng: random.Random, keep: float) -> Style:
        return Style(rng.getrandbits(62), keep)

    def say(self, rule: str, rng: random.Random, account: Account | None, values: dict[str, str],
            extra: tuple[Style, ...] = ()) -> str:
        styles = (self.dialect,) + ((account.style,) if account is not None else ()) + extra
        return self.grammar.say(rule, rng, values, styles)

    def add_account(self, rng: random.Random, network: Network, ua: str, tz: float, keep: float,
                    label: dict[str, Any], n_keys: int = 1) -> Account:
        acct = Account(account_id=self.new_id("acct_", rng), keys=[self.new_id("key_", rng, 40) for _ in range(n_keys)],
                       network=network, ua=ua, tz=tz, style=self.style(rng, keep),
                       label={**label, "network": network.kind})
        self.accounts.append(acct)
        return acct

    def emit(self, req: Request, rng: random.Random) -> None:
        acct = req.account
        if acct is not None:
            if req.ip is None:
                req.ip = acct.network.address(rng, req.t)
            if req.key_id is None:
                req.key_id = acct.keys[0] if len(acct.keys) == 1 else rng.choice(acct.keys)
            if req.row_kind is None:
                req.row_kind = acct.label.get("kind") or acct.label.get("strategy")
            if acct.label.get("label") == "distiller" and req.row_campaign is None and req.row_label == "benign" \
                    and not acct.label.get("mixed"):
                req.row_label, req.row_campaign = "distiller", acct.label.get("campaign")
        self.requests.append(req)


# ------------------------------------------------------------------------------------ value filling
def topic_values(rng: random.Random, domain: str | None = None, concept: str | None = None) -> dict[str, str]:
    """Values for every grammar variable, around one (domain, concept)."""
    r = rng.random

    def pick(seq):  # noqa: ANN001, ANN202 - rng.choice without its overhead
        return seq[int(r() * len(seq))]

    if concept is None:
        domain, concept = pick(vocab.CONCEPTS) if domain is None else (domain, pick(vocab.TAXONOMY[domain]))
    assert domain is not None
    ident, ident2 = pick(vocab.IDENTIFIERS), pick(vocab.IDENTIFIERS_B)
    snippet = pick(vocab.SNIPPETS).replace("IDENT2", ident2).replace("IDENT", ident)
    return {
        "domain": domain, "concept": concept, "concept2": pick(vocab.TAXONOMY[domain]), "audience": pick(vocab.AUDIENCES),
        "lang": pick(vocab.CODE_LANGS), "task": pick(vocab.CODE_TASKS), "err": pick(vocab.CODE_ERRORS),
        "ident": ident, "ident2": ident2, "snippet": snippet, "writing": pick(vocab.WRITING_TASKS),
        "tone": pick(vocab.TONES), "name": pick(vocab.FIRST_NAMES), "name2": pick(vocab.FIRST_NAMES_B),
        "name3": pick(vocab.FIRST_NAMES_C), "item": pick(vocab.ITEMS),
        "n1": str(2 + int(r() * 59)), "n2": str(2 + int(r() * 39)), "n3": str(2 + int(r() * 11)),
        "city": pick(vocab.CITIES), "city2": pick(vocab.CITIES_B), "product": pick(vocab.PRODUCTS),
        "product2": pick(vocab.PRODUCTS_B), "issue": pick(vocab.ISSUES), "issue2": pick(("refunds", "changes", "claims", "transfers")),
        "doc": pick(vocab.DOC_TYPES), "doc_id": f"#{10000 + int(r() * 990000)}",
        "company": pick(vocab.COMPANIES),
    }


def chat(system: str | None, user: str, history: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + list(history or []) + [{"role": "user", "content": user}]


def personal_params(rng: random.Random, habits: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters as a person's script sends them (habits fixed per account, a little drift)."""
    p: dict[str, Any] = {}
    if habits.get("temperature") is not None:
        p["temperature"] = habits["temperature"]
    if habits.get("max_tokens") is not None:
        p["max_tokens"] = habits["max_tokens"] if rng.random() < 0.9 else rng.choice((256, 512, 1024, 2048))
    if habits.get("top_p") is not None:
        p["top_p"] = habits["top_p"]
    if habits.get("stream"):
        p["stream"] = True
    return p


def person_habits(rng: random.Random) -> dict[str, Any]:
    """What a person's client sends: many send nothing but the messages."""
    return {
        "temperature": rng.choice((None, None, None, 0.7, 0.7, 1.0, 0.2, 0.5, 0.0, 0.8)),
        "max_tokens": rng.choice((None, None, None, 256, 512, 800, 1000, 1024, 2000, 4096)),
        "top_p": rng.choice((None,) * 8 + (0.9, 0.95)),
        "stream": rng.random() < 0.35,
        "model": rng.choices(MODELS, (0.45, 0.45, 0.10))[0],
    }
