"""The harder strategies' features: each detects its constructed case and ignores its hard negative
(logprob appetite, end users behind a reseller key, windows inside an account, behaviour cohorts),
and logs with only some columns still scan."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from distillscope.traffic import SimulationConfig, calibrate, scan, simulate
from distillscope.traffic import behaviours as B
from distillscope.traffic import strategies as S
from distillscope.traffic.reference import benign_reference_config
from distillscope.traffic.simulate import _columns, default_prompts
from distillscope.traffic.strategies import HARD_NEGATIVES


def _rows(behaviour, accounts: list[str], ips: list[str], agents: list[str], seed: int, days: float = 7) -> list[dict]:
    ctx = B.Context(np.random.default_rng(seed), random.Random(seed), default_prompts(seed), 1_770_000_000.0, days)
    return list(behaviour.requests(ctx, B.Client(accounts, ips, agents)))


def _with(log: pa.Table, rows: list[dict], tag: str) -> pa.Table:
    cols = _columns(rows)
    extra = pa.table({"request_id": [f"{tag}-{i}" for i in range(len(rows))], **cols}).select(log.column_names)
    return pa.concat_tables([log, extra.cast(log.schema)])


@pytest.fixture(scope="module")
def calibration():
    cfg = replace(benign_reference_config(n_benign=300, seed=31), hard_negatives=tuple((k, 2) for k in HARD_NEGATIVES),
                  days=5)
    return calibrate(simulate(cfg).log)


@pytest.fixture(scope="module")
def population():
    return simulate(SimulationConfig(n_benign=120, n_batch=1, n_eval=2, n_student_groups=0, campaigns=(), days=5,
                                     seed=32, hard_negatives=(("reseller", 1), ("research", 1), ("moderation", 1))))


@pytest.fixture(scope="module")
def result(calibration, population):
    log = population.log
    log = _with(log, _rows(S.RouterWithDistiller(with_user=True), ["router"], ["198.51.100.9"], ["litellm/1.5"], 1,
                           days=5), "router")
    log = _with(log, _rows(S.LogprobHarvest(), ["harvest"], ["203.0.113.5"], ["python-requests/2.31.0"], 2, 5),
                "harvest")
    ips = [f"100.{64 + i}.{i}.{7 + i}" for i in range(40)]
    agents = [B.HUMAN_AGENTS[i % len(B.HUMAN_AGENTS)] for i in range(40)]
    log = _with(log, _rows(S.DiverseHydra(), [f"hydra-{i:02d}" for i in range(40)], ips, agents, 3, 5), "hydra")
    return scan(log, calibration), population.labels.to_pandas().set_index("account_id")


def _find(res, account):
    return next(a for a in res.accounts if a.account_id == account)


def test_logprob_appetite_flags_harvesting_not_a_moderation_classifier(result):
    res, labels = result
    feats = res.account_features.set_index("account_id")
    harvest = feats.loc["harvest"]
    moderation = feats.loc[labels.index[labels.label_kind == "moderation"][0]]
    assert harvest.mean_top_logprobs == 20 and harvest.harvest_share == 1.0
    assert moderation.mean_top_logprobs == 5 and moderation.logit_bias_share == 1.0
    assert harvest.logprob_breadth > moderation.logprob_breadth            # broader prompt set
    h, m = _find(res, "harvest"), _find(res, moderation.name)
    assert h.score > m.score and not m.flagged
    assert any(e.feature in ("mean_top_logprobs", "harvest_share", "logprob_breadth") for e in h.evidence) or not h.flagged


def test_end_user_of_a_reseller_stands_out_not_the_clean_reseller(result):
    """The distilling end user behind a reseller key gives the key the strongest end-user evidence of the
    log; with ~60 end users per key, the Bonferroni-adjusted p-value does not reach alpha at this
    reference size (measured: 0.26 -- reported, not hidden), and the clean reseller is not flagged."""
    res, labels = result
    router = _find(res, "router")
    clean = _find(res, labels.index[labels.label_kind == "reseller"][0])
    assert router.end_user_p is not None and clean.end_user_p is not None
    assert router.end_user_p < clean.end_user_p and router.end_user_p < 0.5
    assert not clean.flagged


def test_behaviour_cohort_links_a_diverse_hydra_not_a_research_group(result):
    res, labels = result
    hydra = {f"hydra-{i:02d}" for i in range(40)}
    flagged = {a.account_id for a in res.flagged_accounts}
    assert len(hydra & flagged) >= 0.9 * len(hydra)
    cohort = next(c for c in res.cohorts if set(c.accounts) & hydra)
    assert cohort.flagged and cohort.coverage_gain > 3 and set(cohort.accounts) <= hydra | {"harvest", "router"}
    research = set(labels.index[labels.label_kind == "research"])
    assert not research & flagged
    innocent = set(labels.index)
    assert not innocent & flagged, sorted(innocent & flagged)


def test_logs_with_only_some_columns_scan_and_name_what_cannot_run(calibration, population):
    log = population.log.select(["request_id", "ts", "account_id", "max_tokens", "completion_tokens"])
    res = scan(log, calibration)
    assert res.accounts
    assert res.unavailable["cot_share"] == "no prompt" and "no user" in res.unavailable["end-user test"]
    assert "ip_rotation" in res.unavailable and "mean_max_tokens" not in res.unavailable
    redacted = population.log.set_column(population.log.column_names.index("prompt"), "prompt",
                                         pa.nulls(population.log.num_rows, pa.string()))
    res2 = scan(redacted, calibration)
    assert "cot_share" in res2.unavailable and not res2.flagged_accounts
