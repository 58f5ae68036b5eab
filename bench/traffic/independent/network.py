"""Where requests come from: IP addresses by network type, and user agents.

Network types (an account's ``network`` label):

* ``residential`` - one home address per account, re-leased by the ISP every few days;
* ``mobile``      - carrier-grade NAT: every session draws from a small carrier pool that
                    thousands of unrelated customers share;
* ``ipv6``        - a stable /64 per household with privacy addresses rotating daily;
* ``vpn``         - a commercial VPN: every session exits from a random node of a shared pool;
* ``office``      - one or two NAT addresses per office, shared by every employee;
* ``campus``      - a university NAT (one address for a whole class);
* ``cloud``       - an application's servers: a few stable datacenter addresses;
* ``vps_block``   - consecutive addresses in one rented /24.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# First octets that look like real ISP / cloud space (reserved and private ranges left out).
_ISP_FIRST = (24, 31, 37, 46, 49, 58, 59, 60, 61, 62, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80,
              81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 108, 109, 110, 112, 113,
              114, 115, 116, 117, 118, 119, 121, 122, 123, 124, 125, 171, 173, 174, 175, 176, 177, 178, 179, 180,
              181, 182, 183, 186, 187, 188, 189, 190, 191, 200, 201, 203, 210, 211, 212, 213, 217, 218, 219, 220)
_CLOUD_FIRST = (3, 13, 18, 20, 34, 35, 40, 44, 52, 54, 104, 128, 134, 137, 138, 139, 143, 146, 147, 157, 159, 161,
                164, 165, 167, 168, 170, 185, 192, 193, 194, 195, 198, 206, 207, 209)
_V6_PREFIXES = ("2001:db8", "2a02:8108", "2a01:e0a", "2600:1700", "2601:646", "2403:5800", "2804:14c", "2a00:23c7",
                "2405:201", "2a02:a46", "2607:fb90", "2001:4c4c")


class AddressSpace:
    """Shared pools (carrier NATs, VPN exits) and a source of fresh, never-reused addresses."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self._used: set[str] = set()
        self.carriers = [[self._fresh(_ISP_FIRST) for _ in range(rng.randint(40, 160))] for _ in range(8)]
        self.vpn_exits = [self._fresh(_CLOUD_FIRST) for _ in range(rng.randint(250, 400))]

    def _fresh(self, firsts: tuple[int, ...]) -> str:
        while True:
            ip = f"{self.rng.choice(firsts)}.{self.rng.randrange(256)}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"
            if ip not in self._used:
                self._used.add(ip)
                return ip

    def residential(self) -> str:
        return self._fresh(_ISP_FIRST)

    def cloud(self) -> str:
        return self._fresh(_CLOUD_FIRST)

    def block24(self) -> str:
        """A fresh /24 prefix ``a.b.c`` in datacenter space."""
        while True:
            prefix = f"{self.rng.choice(_CLOUD_FIRST)}.{self.rng.randrange(256)}.{self.rng.randrange(256)}"
            if prefix + ".0" not in self._used:
                self._used.add(prefix + ".0")
                return prefix

    def v6_prefix(self) -> str:
        return f"{self.rng.choice(_V6_PREFIXES)}:{self.rng.randrange(0x10000):x}:{self.rng.randrange(0x10000):x}"


@dataclass
class Network:
    """How one account's requests are addressed; :meth:`address` is called once per session."""

    kind: str
    space: AddressSpace
    fixed: list[str] = field(default_factory=list)   # office / campus / cloud / vps addresses
    carrier: int = 0
    v6: str = ""
    _home: str = ""
    _home_until: float = -1.0

    def address(self, rng: random.Random, t: float) -> str:
        kind = self.kind
        if kind == "residential":
            if t >= self._home_until or not self._home:
                self._home = self.space.residential()
                self._home_until = t + rng.expovariate(1 / (6 * 86400.0))   # DHCP re-lease every ~6 days
            return self._home
        if kind == "mobile":
            return rng.choice(self.space.carriers[self.carrier])
        if kind == "ipv6":
            day = int(t // 86400)
            r = random.Random(f"{self.v6}:{day}")
            return f"{self.v6}:{r.randrange(0x10000):x}:{r.randrange(0x10000):x}:{r.randrange(0x10000):x}:{r.randrange(0x10000):x}"
        if kind == "vpn":
            return rng.choice(self.space.vpn_exits)
        return rng.choice(self.fixed)


def personal_network(rng: random.Random, space: AddressSpace, weights: dict[str, float] | None = None) -> Network:
    """A person's connection: mostly residential, some mobile, IPv6 or VPN."""
    weights = weights or {"residential": 0.58, "mobile": 0.17, "ipv6": 0.15, "vpn": 0.10}
    kind = rng.choices(list(weights), list(weights.values()))[0]
    net = Network(kind, space)
    if kind == "mobile":
        net.carrier = rng.randrange(len(space.carriers))
    elif kind == "ipv6":
        net.v6 = space.v6_prefix()
    return net


def fixed_network(kind: str, addresses: list[str], space: AddressSpace) -> Network:
    return Network(kind, space, fixed=list(addresses))


# ---------------------------------------------------------------------------------------- user agents
_PY = ("3.9", "3.10", "3.11", "3.12", "3.13")


def user_agent(rng: random.Random, family: str) -> str:
    """A plausible User-Agent header of a client family (sdk-python, sdk-node, curl, ide, ...)."""
    if family == "sdk-python":
        return f"OpenAI/Python 1.{rng.randint(3, 58)}.{rng.randint(0, 9)}"
    if family == "sdk-node":
        return f"OpenAI/JS 4.{rng.randint(10, 77)}.{rng.randint(0, 5)}"
    if family == "requests":
        return f"python-requests/2.{rng.randint(25, 32)}.{rng.randint(0, 3)}"
    if family == "httpx":
        return f"python-httpx/0.{rng.randint(23, 28)}.{rng.randint(0, 2)}"
    if family == "aiohttp":
        return f"Python/{rng.choice(_PY)} aiohttp/3.{rng.randint(8, 11)}.{rng.randint(0, 9)}"
    if family == "curl":
        return f"curl/{rng.choice(('7.81.0', '7.88.1', '8.1.2', '8.4.0', '8.5.0', '8.7.1', '8.9.1'))}"
    if family == "go":
        return rng.choice(("Go-http-client/2.0", "Go-http-client/1.1", f"go-openai/1.{rng.randint(14, 36)}.{rng.randint(0, 3)}"))
    if family == "java":
        return rng.choice((f"okhttp/4.{rng.randint(9, 12)}.{rng.randint(0, 3)}", f"Java-http-client/{rng.choice(('17.0.9', '21.0.2', '11.0.20'))}"))
    if family == "ide":
        return rng.choice((f"Continue/0.{rng.randint(8, 9)}.{rng.randint(1, 60)} (vscode)", f"aider/0.{rng.randint(30, 70)}.{rng.randint(0, 2)}",
                           f"CodeCompanion.nvim/{rng.randint(8, 15)}.{rng.randint(0, 9)}", f"JetBrains-AI-Plugin/{rng.randint(231, 243)}.{rng.randint(1, 99)}",
                           f"Cline/3.{rng.randint(0, 9)}.{rng.randint(0, 12)}"))
    if family == "browser":
        v = rng.randint(118, 131)
        return rng.choice((f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
                           f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.{rng.randint(0, 5)} Safari/605.1.15",
                           f"Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"))
    if family == "mobile-app":
        return rng.choice((f"MyChatApp/{rng.randint(1, 4)}.{rng.randint(0, 20)} (iPhone; iOS 17.{rng.randint(0, 5)})",
                           f"okhttp/4.{rng.randint(9, 12)}.0", f"Dalvik/2.1.0 (Linux; U; Android {rng.randint(11, 14)})"))
    if family == "router":
        return rng.choice((f"litellm/1.{rng.randint(30, 55)}.{rng.randint(0, 20)}", f"OpenRouter-Proxy/{rng.randint(1, 3)}.{rng.randint(0, 9)}",
                           f"OpenAI/Python 1.{rng.randint(30, 58)}.0", "Go-http-client/2.0"))
    if family == "langchain":
        return f"OpenAI/Python 1.{rng.randint(10, 58)}.{rng.randint(0, 3)} langchain/0.{rng.randint(1, 3)}.{rng.randint(0, 20)}"
    raise ValueError(f"unknown user-agent family {family!r}")


PERSONAL_UA = {"sdk-python": 0.45, "sdk-node": 0.14, "requests": 0.1, "curl": 0.06, "httpx": 0.05, "browser": 0.08,
               "langchain": 0.06, "go": 0.03, "java": 0.03}
APP_UA = {"sdk-python": 0.35, "sdk-node": 0.25, "langchain": 0.12, "aiohttp": 0.08, "go": 0.1, "java": 0.1}


def pick_family(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]
