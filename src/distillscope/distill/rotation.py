"""Which API key sends each request, and when: rotation policies and per-key pacing.

Multi-account campaigns spread requests over many keys; reproducing them faithfully needs
the same policies: ``round-robin`` (key i, i+1, ...), ``random`` (seeded) and ``sticky-topic``
(every prompt of one topic goes through the same key). Keys are known by their alias
(``key-0``, ``key-1`` ...); the secret never leaves this module except in the request header.
A key the endpoint rejects (401/403) is retired and the policy moves on to the live ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass
from typing import Sequence

from distillscope.errors import DistillError

ROTATIONS = ("round-robin", "random", "sticky-topic")


@dataclass(frozen=True)
class ApiKey:
    """A secret and its printable alias; ``repr`` never shows the secret."""

    alias: str
    secret: str

    def __repr__(self) -> str:
        return f"ApiKey({self.alias})"


def key_aliases(secrets: Sequence[str]) -> list[ApiKey]:
    return [ApiKey(f"key-{i}", s) for i, s in enumerate(secrets)]


class KeyRing:
    """Picks a key per request by the rotation policy; paces each key to ``rpm`` requests/minute.

    ``defer(key, seconds)`` holds a key back (a 429 with ``retry-after``); ``retire(key)``
    drops a rejected one. :meth:`acquire` waits until the chosen key may send.
    """

    def __init__(self, secrets: Sequence[str], rotation: str = "round-robin", rpm: float | None = None,
                 seed: int = 0, clock=time.monotonic) -> None:
        if not secrets:
            raise DistillError("no API key given", hint="pass --api-key, --api-keys-file or "
                                                        "DISTILLSCOPE_HARVEST_API_KEYS")
        if rotation not in ROTATIONS:
            raise DistillError(f"unknown key rotation {rotation!r}", hint=f"choose from {', '.join(ROTATIONS)}")
        if rpm is not None and rpm <= 0:
            raise DistillError(f"rpm={rpm} must be positive", hint="omit --rpm for no pacing")
        self.keys = key_aliases(secrets)
        self.rotation = rotation
        self.interval = 60.0 / rpm if rpm else 0.0
        self._rng = random.Random(seed)
        self._clock = clock
        self._next_free = {k.alias: 0.0 for k in self.keys}
        self._retired: set[str] = set()
        self._counter = 0
        self._lock = asyncio.Lock()

    @property
    def live(self) -> list[ApiKey]:
        return [k for k in self.keys if k.alias not in self._retired]

    @property
    def retired(self) -> tuple[str, ...]:
        return tuple(sorted(self._retired, key=lambda a: int(a.split("-")[1])))

    def choose(self, topic: str | None = None) -> ApiKey:
        """The key the policy assigns to the next request (``topic`` for ``sticky-topic``)."""
        live = self.live
        if not live:
            raise DistillError(f"all {len(self.keys)} API key(s) were rejected by the endpoint",
                               hint="check the keys; re-run with valid ones to resume", code="invalid_api_key")
        if self.rotation == "random":
            return self._rng.choice(live)
        if self.rotation == "sticky-topic":
            h = int.from_bytes(hashlib.sha256((topic or "").encode("utf-8")).digest()[:8], "big")
            return self.keys[h % len(self.keys)] if self.keys[h % len(self.keys)] in live else live[h % len(live)]
        key = live[self._counter % len(live)]
        self._counter += 1
        return key

    async def acquire(self, topic: str | None = None) -> ApiKey:
        """Choose a key and wait until its pacing (or a ``retry-after``) lets it send."""
        async with self._lock:
            key = self.choose(topic)
            now = self._clock()
            start = max(now, self._next_free[key.alias])
            self._next_free[key.alias] = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)
        return key

    def defer(self, key: ApiKey, seconds: float) -> None:
        """Hold ``key`` back for ``seconds`` (the endpoint said so with 429 / retry-after)."""
        self._next_free[key.alias] = max(self._next_free[key.alias], self._clock() + max(0.0, seconds))

    def retire(self, key: ApiKey) -> None:
        self._retired.add(key.alias)
