"""Realistic, labelled request logs from composable behaviours (see :mod:`.behaviours`).

The log has exactly the gateway's request-log columns; the ground truth lives in a separate
labels table (a ``<log>.labels.parquet`` sidecar on disk) so a scan can never peek at it.

:func:`simulate` builds the log in memory; :func:`simulate_to_file` streams the same rows to
Parquet in bounded memory (chunks of clients, optionally in several processes, then one
out-of-core sort by time in DuckDB), for logs of tens of millions of requests.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
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

from distillscope.traffic import strategies as S

LABEL_KINDS = ("benign", "batch", "eval", "student", "distiller", *S.HARD_NEGATIVES)
#: Every campaign strategy the simulator knows: the original ones and the harder ones.
ALL_STRATEGIES = (*B.STRATEGIES, *S.HARD_STRATEGIES)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    n_benign: ordinary users (default 1000). n_batch: heavy templated batch jobs (10).
    n_eval: evaluation harnesses (5). n_student_groups x student_group_size: students behind one
    campus IP each (2 x 25). campaigns: ``(strategy, count)`` pairs; strategies are the keys of
    :data:`behaviours.STRATEGIES` (single, paraphrase, hydra, hydra-cover) and of
    :data:`strategies.HARD_STRATEGIES` (slow-and-low, router, diverse-hydra, logprob-harvest,
    cot-extraction, synthetic-dataset, mixture). hard_negatives: ``(kind, count)`` pairs of
    :data:`strategies.HARD_NEGATIVES` (rag, translation, support, moderation, reseller, research;
    default none). days: length of the
    window (7). start: ISO time of the window start. seed: everything is reproducible from it.
    """

    n_benign: int = 1000
    n_batch: int = 10
    n_eval: int = 5
    n_student_groups: int = 2
    student_group_size: int = 25
    campaigns: tuple[tuple[str, int], ...] = (("single", 1), ("paraphrase", 1), ("hydra", 1), ("hydra-cover", 1))
    hard_negatives: tuple[tuple[str, int], ...] = ()
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
            if strategy not in ALL_STRATEGIES:
                raise TrafficError(f"unknown campaign strategy {strategy!r}",
                                   hint=f"choose from {', '.join(ALL_STRATEGIES)}")
            if count < 0:
                raise TrafficError(f"campaign count for {strategy} is negative ({count})")
        for kind, count in self.hard_negatives:
            if kind not in S.HARD_NEGATIVES or count < 0:
                raise TrafficError(f"hard negative {kind!r} x {count} is invalid",
                                   hint=f"kinds: {', '.join(S.HARD_NEGATIVES)}; counts >= 0")
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


def _infrastructure(infra: str, n_accounts: int, g: np.random.Generator, r: random.Random
                    ) -> tuple[list[str], list[str]]:
    """IPs and user agents: ``residential`` (one IP and agent per account), ``vps`` (one /24), ``single``."""
    if infra == "residential":
        return [_ip(g) for _ in range(n_accounts)], [r.choice(B.HUMAN_AGENTS) for _ in range(n_accounts)]
    if infra == "vps":
        sub = _subnet(g)
        return [_ip(g, sub) for _ in range(max(2, n_accounts))], ["python-requests/2.31.0"]
    return [_ip(g)], [r.choice(B.HUMAN_AGENTS)]


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
    for i in range(config.n_eval):    # harness modes in turn, so any 6 harnesses cover them all
        plans.append(_Plan("eval", B.EvalHarness(mode=i), B.Client([acct("acct-")], [_ip(g)], ["lm-eval-harness/0.4.5"])))
    for _ in range(config.n_student_groups):
        campus = _subnet(g)
        accounts = [acct("acct-") for _ in range(config.student_group_size)]
        plans.append(_Plan("student", B.StudentClass(),
                           B.Client(accounts, [_ip(g, campus) for _ in range(2)], list(B.HUMAN_AGENTS[:4]))))
    for kind, count in config.hard_negatives:
        (lo, hi), factory, infra = S.HARD_NEGATIVES[kind]
        for _ in range(count):
            accounts = [acct("acct-") for _ in range(r.randint(lo, hi))]
            ips, agents = _infrastructure(infra, len(accounts), g, r)
            plans.append(_Plan(kind, factory(), B.Client(accounts, ips, agents)))
    n_campaign = 0
    for strategy, count in config.campaigns:
        if strategy in S.HARD_STRATEGIES:
            (lo, hi), factory, infra = S.HARD_STRATEGIES[strategy]
            for _ in range(count):
                accounts = [acct("acct-") for _ in range(r.randint(lo, hi))]
                ips, agents = _infrastructure(infra, len(accounts), g, r)
                plans.append(_Plan("distiller", factory(r), B.Client(accounts, ips, agents),
                                   campaign_id=f"campaign-{n_campaign:03d}", strategy=strategy))
                n_campaign += 1
            continue
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


def _context(config: SimulationConfig, seeds: list[np.random.SeedSequence], i: int, prompts: B.PromptSource
             ) -> B.Context:
    start = datetime.fromisoformat(config.start).astimezone(timezone.utc).timestamp()
    return B.Context(np.random.default_rng(seeds[i]), random.Random(config.seed * 1_000_003 + i), prompts, start,
                     config.days)


def _rows(config: SimulationConfig, plans: list[_Plan], prompts: B.PromptSource,
          progress: Progress) -> Iterator[dict]:
    seeds = np.random.SeedSequence(config.seed).spawn(len(plans))
    with progress.task("simulating clients", total=len(plans)) as task:
        for i, plan in enumerate(plans):
            yield from plan.behaviour.requests(_context(config, seeds, i, prompts), plan.client)
            task.advance()


def _columns(rows: list[dict]) -> dict[str, pa.Array]:
    """The canonical columns of ``rows`` except ``request_id`` (assigned once the log is sorted)."""
    cols: dict[str, pa.Array] = {}
    for name, typ in LOG_COLUMNS.items():
        if name == "ts":
            us = np.array([row["ts"] for row in rows]) * 1e6
            cols[name] = pa.array(us.astype(np.int64)).cast(typ)
        elif name != "request_id":
            cols[name] = pa.array([row.get(name) for row in rows], type=typ)
    return cols


def _labels(plans: list[_Plan]) -> pa.Table:
    return pa.Table.from_pylist([{"account_id": a, "label_kind": p.kind, "label_campaign": p.campaign_id,
                                  "label_strategy": p.strategy} for p in plans for a in p.client.accounts])


def _setup(config: SimulationConfig) -> list[_Plan]:
    return _plans(config, np.random.default_rng(config.seed), random.Random(config.seed))


def simulate(config: SimulationConfig = SimulationConfig(), *, prompts: B.PromptSource | None = None,
             progress: Progress | None = None) -> SimulatedTraffic:
    """Simulate a labelled request log."""
    plans = _setup(config)
    prompts = prompts or default_prompts(config.seed)
    rows = list(_rows(config, plans, prompts, ensure_progress(progress)))
    if not rows:
        raise TrafficError("the simulation produced no requests", hint="raise n_benign or days")
    rows.sort(key=lambda row: row["ts"])
    cols = {"request_id": pa.array([f"req-{config.seed:x}-{i:09d}" for i in range(len(rows))], pa.string()),
            **_columns(rows)}
    labels = _labels(plans)
    logger.info("simulated %d requests from %d accounts", len(rows), labels.num_rows)
    return SimulatedTraffic(pa.table({name: cols[name] for name in LOG_COLUMNS}), labels, config)


def _write_parts(config: SimulationConfig, first: int, last: int, parts: str, chunk_rows: int,
                 prompts: B.PromptSource | None = None) -> int:
    """Simulate plans ``first..last-1`` into Parquet parts under ``parts``; returns the row count.

    Each row carries its exact time ``_ts`` (float seconds) and ``_order`` = (plan index, row
    within plan), the order :func:`simulate` generates rows in, so the final sort by
    ``(_ts, _order)`` equals its stable sort by time.
    """
    plans = _setup(config)
    prompts = prompts or default_prompts(config.seed)
    seeds = np.random.SeedSequence(config.seed).spawn(len(plans))
    rows: list[dict] = []
    order: list[int] = []
    n = 0

    def flush() -> None:
        if rows:
            table = pa.table({**_columns(rows), "_ts": pa.array([row["ts"] for row in rows], pa.float64()),
                              "_order": pa.array(order, pa.int64())})
            pq.write_table(table, os.path.join(parts, f"plans-{first:09d}-{n:012d}.parquet"))
            rows.clear()
            order.clear()

    for i in range(first, last):
        for j, row in enumerate(plans[i].behaviour.requests(_context(config, seeds, i, prompts), plans[i].client)):
            rows.append(row)
            order.append((i << 32) | j)
            n += 1
            if len(rows) >= chunk_rows:
                flush()
    flush()
    return n


def simulate_to_file(config: SimulationConfig, path: str | Path, *, workers: int = 1, chunk_rows: int = 200_000,
                     memory_limit: str = "4GB", prompts: B.PromptSource | None = None,
                     progress: Progress | None = None) -> tuple[Path, Path, int]:
    """Stream a simulated log to ``path`` (Parquet) and its labels sidecar; returns (log, labels, rows).

    The rows are those of :func:`simulate` with the same config, in the same order and with the
    same request ids, but memory stays bounded: clients are simulated ``chunk_rows`` rows at a
    time (in ``workers`` processes, each over a contiguous range of clients) into temporary
    parts, which DuckDB sorts by time out of core (``memory_limit``) into the final file.
    ``prompts`` (a custom prompt source) needs ``workers=1``.
    """
    import duckdb

    if workers < 1 or chunk_rows < 1:
        raise TrafficError(f"workers={workers} and chunk_rows={chunk_rows} must be positive")
    if prompts is not None and workers > 1:
        raise TrafficError("a custom prompt source cannot be sent to worker processes", hint="use workers=1")
    p = Path(path)
    if p.suffix.lower() not in (".parquet", ".pq"):
        raise TrafficError(f"cannot stream a simulated log to {p}", hint="use a .parquet path")
    p.parent.mkdir(parents=True, exist_ok=True)
    plans = _setup(config)
    parts = p.with_name(f".{p.name}.parts")
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir()
    progress = ensure_progress(progress)
    try:
        bounds = np.linspace(0, len(plans), workers + 1).astype(int)
        with progress.task("simulating clients", total=workers) as task:
            if workers == 1:
                n = _write_parts(config, 0, len(plans), str(parts), chunk_rows, prompts)
                task.advance()
            else:
                with ProcessPoolExecutor(workers) as pool:
                    futures = [pool.submit(_write_parts, config, int(a), int(b), str(parts), chunk_rows)
                               for a, b in zip(bounds[:-1], bounds[1:])]
                    n = 0
                    for f in futures:
                        n += f.result()
                        task.advance()
        if n == 0:
            raise TrafficError("the simulation produced no requests", hint="raise n_benign or days")
        columns = ", ".join(c for c in LOG_COLUMNS if c != "request_id")
        with duckdb.connect(":memory:") as con:
            con.execute(f"SET memory_limit = '{memory_limit}'")
            con.execute(f"SET temp_directory = '{parts / 'spill'}'")
            con.execute("SET preserve_insertion_order = true")
            con.execute(f"""COPY (
                SELECT printf('req-%x-%09d', {int(config.seed)}::BIGINT, row_number() OVER (ORDER BY _ts, _order) - 1)
                       AS request_id, {columns}
                FROM read_parquet('{parts}/*.parquet') ORDER BY _ts, _order
            ) TO '{p}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 262144)""")
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    lp = labels_path(p)
    pq.write_table(_labels(plans), lp)
    logger.info("simulated %d requests into %s", n, p)
    return p, lp, n


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
