"""Where the real-time guard keeps its running totals: in process, or in Redis across workers.

The state is additive (counters, float sums, sets) so workers can update it concurrently without
read-modify-write races: Redis ``HINCRBY``/``HINCRBYFLOAT``/``SADD`` are atomic. Keys live under
``prefix`` (``distillscope:traffic:`` by default) so several gateways can share one Redis.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Protocol


class GuardState(Protocol):
    """Additive per-entity totals, per-entity sets, key→accounts sets, pair counters and levels."""

    def add(self, entity: str, totals: Mapping[str, float], sets: Mapping[str, str]) -> None: ...

    def totals(self, entity: str) -> dict[str, float]: ...

    def set_size(self, entity: str, name: str) -> int: ...

    def union_size(self, entities: list[str], name: str) -> int: ...

    def join_key(self, key: str, account: str, cap: int) -> list[str] | None: ...

    def bump_pair(self, a: str, b: str, kind: str) -> int: ...

    def pair(self, a: str, b: str, kind: str) -> int: ...

    def union(self, a: str, b: str) -> str: ...

    def find(self, a: str) -> str: ...

    def members(self, root: str) -> list[str]: ...

    def raise_level(self, entity: str, level: int) -> bool: ...


class MemoryGuardState:
    """Single-process state (one gateway worker)."""

    def __init__(self) -> None:
        self._totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._sets: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._keys: dict[str, list[str]] = {}
        self._dead: set[str] = set()
        self._pairs: dict[tuple[str, str, str], int] = defaultdict(int)
        self._parent: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}
        self._levels: dict[str, int] = {}

    def add(self, entity: str, totals: Mapping[str, float], sets: Mapping[str, str]) -> None:
        t = self._totals[entity]
        for k, v in totals.items():
            t[k] += v
        for name, value in sets.items():
            self._sets[(entity, name)].add(value)

    def totals(self, entity: str) -> dict[str, float]:
        return dict(self._totals.get(entity, {}))

    def set_size(self, entity: str, name: str) -> int:
        return len(self._sets.get((entity, name), ()))

    def union_size(self, entities: list[str], name: str) -> int:
        return len(set().union(*(self._sets.get((e, name), set()) for e in entities)))

    def join_key(self, key: str, account: str, cap: int) -> list[str] | None:
        """Add ``account`` to the key; return the accounts already there when it is new, else None."""
        if key in self._dead:
            return None
        holders = self._keys.setdefault(key, [])
        if account in holders:
            return None
        if len(holders) >= cap:
            self._dead.add(key)
            del self._keys[key]
            return None
        others = list(holders)
        holders.append(account)
        return others

    def bump_pair(self, a: str, b: str, kind: str) -> int:
        key = (min(a, b), max(a, b), kind)
        self._pairs[key] += 1
        return self._pairs[key]

    def pair(self, a: str, b: str, kind: str) -> int:
        return self._pairs.get((min(a, b), max(a, b), kind), 0)

    def find(self, a: str) -> str:
        root = a
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        return root

    def union(self, a: str, b: str) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        root, child = min(ra, rb), max(ra, rb)
        self._parent[child] = root
        self._members.setdefault(root, {root}).update(self._members.pop(child, {child}))
        return root

    def members(self, root: str) -> list[str]:
        return sorted(self._members.get(root, {root}))

    def raise_level(self, entity: str, level: int) -> bool:
        if self._levels.get(entity, 0) >= level:
            return False
        self._levels[entity] = level
        return True


class RedisGuardState:
    """State shared by every gateway worker through Redis (``settings.redis_url``)."""

    def __init__(self, url: str, prefix: str = "distillscope:traffic:") -> None:
        import redis

        self._r = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def add(self, entity: str, totals: Mapping[str, float], sets: Mapping[str, str]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for k, v in totals.items():
            pipe.hincrbyfloat(self._k("t", entity), k, float(v))
        for name, value in sets.items():
            pipe.sadd(self._k("s", entity, name), value)
        pipe.execute()

    def totals(self, entity: str) -> dict[str, float]:
        return {k: float(v) for k, v in self._r.hgetall(self._k("t", entity)).items()}

    def set_size(self, entity: str, name: str) -> int:
        return int(self._r.scard(self._k("s", entity, name)))

    def union_size(self, entities: list[str], name: str) -> int:
        return len(self._r.sunion([self._k("s", e, name) for e in entities])) if entities else 0

    def join_key(self, key: str, account: str, cap: int) -> list[str] | None:
        if self._r.sismember(self._k("dead"), key):
            return None
        rk = self._k("key", key)
        if not self._r.sadd(rk, account):
            return None
        holders = self._r.smembers(rk)
        if len(holders) > cap:
            self._r.sadd(self._k("dead"), key)
            self._r.delete(rk)
            return None
        return sorted(h for h in holders if h != account)

    def bump_pair(self, a: str, b: str, kind: str) -> int:
        return int(self._r.hincrby(self._k("pairs"), f"{min(a, b)}|{max(a, b)}|{kind}", 1))

    def pair(self, a: str, b: str, kind: str) -> int:
        return int(self._r.hget(self._k("pairs"), f"{min(a, b)}|{max(a, b)}|{kind}") or 0)

    def find(self, a: str) -> str:
        root = a
        while True:
            parent = self._r.hget(self._k("parent"), root)
            if parent is None or parent == root:
                return root
            root = parent

    def union(self, a: str, b: str) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        root, child = min(ra, rb), max(ra, rb)
        pipe = self._r.pipeline(transaction=True)
        pipe.hset(self._k("parent"), child, root)
        pipe.sadd(self._k("members", root), root, child)
        pipe.sunionstore(self._k("members", root), [self._k("members", root), self._k("members", child)])
        pipe.delete(self._k("members", child))
        pipe.execute()
        return root

    def members(self, root: str) -> list[str]:
        return sorted(self._r.smembers(self._k("members", root)) or {root})

    def raise_level(self, entity: str, level: int) -> bool:
        script = ("local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') "
                  "if cur >= tonumber(ARGV[2]) then return 0 end "
                  "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1")
        return bool(self._r.eval(script, 1, self._k("levels"), entity, level))

    def clear(self) -> None:
        """Delete every key under the prefix (tests, resets)."""
        for key in self._r.scan_iter(match=self.prefix + "*", count=1000):
            self._r.delete(key)
