"""Realistic, labelled request logs from composable behaviours (see :mod:`.behaviours`).

The log has exactly the gateway's request-log columns; the ground truth lives in a separate
labels table (a ``<log>.labels.parquet`` sidecar on disk) so a scan can never peek at it.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillscope.errors import TrafficError
from distillscope.progress import Progress, ensure_progress
from distillscope.traffic import behaviours as B
from distillscope.traffic.schema import LOG_COLUMNS

logger = logging.getLogger(__name__)

LABEL_KINDS = ("benign", "batch", "eval", "student", "distiller")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    n_benign: ordinary users (default 1000). n_batch: heavy templated batch jobs (10).
    n_eval: evaluation harnesses (5). n_student_groups x student_group_size: students behind one
    campus IP each (2 x 25). campaigns: ``(strategy, count)`` pairs; strategies are the keys of
    :data:`behaviours.STRATEGIES` (single, paraphrase, hydra, hydra-cover). days: length of the
    window (7). start: ISO time of the window start. seed: everything is reproducible from it.
    """

    n_benign: int = 1000
    n_batch: int = 10
    n_eval: int = 5
    n_student_groups: int = 2
    student_group_size: int = 25
    campaigns: tuple[tuple[str, int], ...] = (("single", 1), ("paraphrase", 1), ("hydra", 1), ("hydra-cover", 1))
    days: float = 7.0
    start: str = "2026-02-02T00:00:00+00:00"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_benign", "n_batch", "n_eval", "n_student_groups", "student_group_size"):
            if getattr(self, name) < 0:
                raise TrafficError(f"simulation {name}={getattr(self, name)} is negative", hint="use 0 or more")
        if self.days <= 0:
            raise TrafficError(f"simulation days={self.days} must be positive")
        for strategy, count in self.campaigns:
            if strategy not in B.STRATEGIES:
                raise TrafficError(f"unknown campaign strategy {strategy!r}",
                                   hint=f"choose from {', '.join(B.STRATEGIES)}")
            if count < 0:
                raise TrafficError(f"campaign count for {strategy} is negative ({count})")
        try:
            datetime.fromisoformat(self.start)
        except ValueError as exc:
            raise TrafficError(f"simulation start {self.start!r} is not an ISO timestamp",
                               hint="e.g. 2026-02-02T00:00:00+00:00") from exc


@dataclass(frozen=True)
class SimulatedTraffic:
    """A simulated request log (canonical columns) and its ground-truth labels per account."""

    log: pa.Table
    labels: pa.Table
    config: SimulationConfig = field(repr=False)


@dataclass
class _Plan:
    kind: str
    behaviour: Any
    client: B.Client
    campaign_id: str | None = None
    strategy: str | None = None


def default_prompts(seed: int = 0) -> B.PromptSource:
    """The project's prompt generator (shared with harvesting), so content is never the giveaway."""
    try:
        from distillscope.distill.prompts import PromptGenerator
    except ImportError as exc:  # pragma: no cover - only while the distill package is incomplete
        raise TrafficError("the prompt generator distillscope.distill.prompts is not available",
                           hint="install distillscope completely") from exc
    return PromptGenerator(seed)


def _ip(g: np.random.Generator, subnet: tuple[int, int, int] | None = None) -> str:
    a, b, c = subnet or (int(g.integers(11, 224)), int(g.integers(0, 256)), int(g.integers(0, 256)))
    return f"{a}.{b}.{c}.{int(g.integers(1, 255))}"


def _subnet(g: np.random.Generator) -> tuple[int, int, int]:
    return int(g.integers(11, 224)), int(g.integers(0, 256)), int(g.integers(0, 256))


def _plans(config: SimulationConfig, g: np.random.Generator, r: random.Random) -> list[_Plan]:
    plans: list[_Plan] = []
    counter = iter(range(10**9))

    def acct(prefix: str) -> str:
        return f"{prefix}{next(counter):06d}"

    for _ in range(config.n_benign):
        ips = [_ip(g)] + ([_ip(g)] if r.random() < 0.2 else [])
        plans.append(_Plan("benign", B.BenignUser(mean_sessions=float(g.lognormal(np.log(2.5), 0.8))),
                           B.Client([acct("acct-")], ips, [r.choice(B.HUMAN_AGENTS)], float(r.choice((0, -5, 1, 8))))))
    for _ in range(config.n_batch):
        plans.append(_Plan("batch", B.BatchJob(), B.Client([acct("acct-")], [_ip(g)], ["python-requests/2.32.3"])))
    for _ in range(config.n_eval):
        plans.append(_Plan("eval", B.EvalHarness(), B.Client([acct("acct-")], [_ip(g)], ["lm-eval-harness/0.4.5"])))
    for _ in range(config.n_student_groups):
        campus = _subnet(g)
        accounts = [acct("acct-") for _ in range(config.student_group_size)]
        plans.append(_Plan("student", B.StudentClass(),
                           B.Client(accounts, [_ip(g, campus) for _ in range(2)], list(B.HUMAN_AGENTS[:4]))))
    n_campaign = 0
    for strategy, count in config.campaigns:
        spec = B.STRATEGIES[strategy]
        for _ in range(count):
            lo, hi = spec["n_accounts"]
            accounts = [acct("acct-") for _ in range(r.randint(lo, hi))]
            if strategy == "single":
                ips, agents = [_ip(g)], ["python-httpx/0.27.0"]
            else:
                pool = [_subnet(g) for _ in range(max(3, len(accounts) // 4))]
                ips = [_ip(g, pool[i % len(pool)]) for i in range(max(4, 2 * len(accounts)))]
                agents = list(B.HUMAN_AGENTS) if strategy == "hydra-cover" else [f"python-httpx/0.2{r.randint(5, 8)}.0"]
            plans.append(_Plan("distiller", spec["behaviour"](), B.Client(accounts, ips, agents),
                               campaign_id=f"campaign-{n_campaign:03d}", strategy=strategy))
            n_campaign += 1
    # Account ids must not reveal the kind: shuffle the numbering.
    ids = [a for p in plans for a in p.client.accounts]
    shuffled = dict(zip(ids, r.sample(ids, len(ids))))
    for p in plans:
        p.client.accounts = [shuffled[a] for a in p.client.accounts]
    return plans


def _rows(config: SimulationConfig, plans: list[_Plan], prompts: B.PromptSource,
          progress: Progress) -> Iterator[dict]:
    start = datetime.fromisoformat(config.start).astimezone(timezone.utc).timestamp()
    seeds = np.random.SeedSequence(config.seed).spawn(len(plans))
    with progress.task("simulating clients", total=len(plans)) as task:
        for i, plan in enumerate(plans):
            ctx = B.Context(np.random.default_rng(seeds[i]), random.Random(config.seed * 1_000_003 + i),
                            prompts, start, config.days)
            yield from plan.behaviour.requests(ctx, plan.client)
            task.advance()


def simulate(config: SimulationConfig = SimulationConfig(), *, prompts: B.PromptSource | None = None,
             progress: Progress | None = None) -> SimulatedTraffic:
    """Simulate a labelled request log."""
    g = np.random.default_rng(config.seed)
    r = random.Random(config.seed)
    plans = _plans(config, g, r)
    prompts = prompts or default_prompts(config.seed)
    rows = list(_rows(config, plans, prompts, ensure_progress(progress)))
    if not rows:
        raise TrafficError("the simulation produced no requests", hint="raise n_benign or days")
    rows.sort(key=lambda row: row["ts"])
    cols: dict[str, Any] = {}
    for name, typ in LOG_COLUMNS.items():
        if name == "request_id":
            cols[name] = pa.array([f"req-{config.seed:x}-{i:09d}" for i in range(len(rows))], pa.string())
        elif name == "ts":
            us = np.array([row["ts"] for row in rows]) * 1e6
            cols[name] = pa.array(us.astype(np.int64)).cast(typ)
        else:
            cols[name] = pa.array([row[name] for row in rows], type=typ)
    labels = [{"account_id": a, "label_kind": p.kind, "label_campaign": p.campaign_id, "label_strategy": p.strategy}
              for p in plans for a in p.client.accounts]
    logger.info("simulated %d requests from %d accounts", len(rows), len(labels))
    return SimulatedTraffic(pa.table(cols), pa.Table.from_pylist(labels), config)


def labels_path(log_path: str | Path) -> Path:
    """Where the ground truth of a simulated log lives: ``<log>.labels.parquet`` beside it."""
    p = Path(log_path)
    return p.with_name(p.name.split(".")[0] + ".labels.parquet")


def write_simulation(sim: SimulatedTraffic, path: str | Path) -> tuple[Path, Path]:
    """Write the log (.parquet or .jsonl by suffix) and its labels sidecar; returns both paths."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        pq.write_table(sim.log, p)
    elif suffix in (".jsonl", ".json"):
        sim.log.to_pandas().to_json(p, orient="records", lines=True, date_format="iso", date_unit="us")
    else:
        raise TrafficError(f"cannot write a simulated log to {p}", hint="use a .parquet or .jsonl path")
    lp = labels_path(p)
    pq.write_table(sim.labels, lp)
    return p, lp
