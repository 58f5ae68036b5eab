"""Feature definitions, written once as SQL in a dialect-neutral subset run by DuckDB and Spark.

The subset: ``CAST(.. AS DOUBLE|BIGINT|STRING)``, ``COUNT(DISTINCT ..)``, ``AVG``, ``SUM``,
``STDDEV_SAMP``, ``LN``, ``SQRT``, ``FLOOR``, ``NULLIF``, ``CASE``, ``concat``, ``LAG() OVER``,
``UNION ALL``, CTEs and joins. The per-entity distinct counts (days, IPs, subnets, agents,
topics) are counted from one ``SELECT DISTINCT entity, kind, value`` table instead of five
``COUNT(DISTINCT)`` in one aggregate: Spark plans several distinct aggregates as an Expand that
copies every row once per aggregate, which made the account query 2-3x slower there (same results
on both engines). Both engines read the same prepared request table (see :mod:`.prepare`)
registered as ``requests``; the campaign variant groups the same definitions by
``campaign_id`` through a ``membership(account_id, campaign_id)`` table.

Every feature of an entity with no usable input is NULL (never 0): a feature over an absent
column, a ratio with a zero denominator, a timing statistic with fewer than three gaps. The
scorer treats NULL as no evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from distillscope.traffic.prepare import EMBED_COLUMNS

#: Features the scorer reads, with the direction that points at distillation (+1 high, -1 low)
#: and a one-line meaning (used in evidence and docs).
SCORED_FEATURES: dict[str, tuple[int, str]] = {
    "cot_share": (1, "share of requests eliciting chain-of-thought reasoning (content classifier)"),
    "datagen_share": (1, "share of requests asking for generated data / records in a machine format (classifier)"),
    "task_entropy": (1, "spread over task types (classifier; capability sweep = high)"),
    "subject_entropy": (1, "spread over topics (classifier; taxonomy coverage = high)"),
    "mean_max_tokens": (1, "mean max_tokens requested"),
    "mean_completion_tokens": (1, "mean completion length (tokens)"),
    "out_in_ratio": (1, "completion tokens per prompt token"),
    "capped_share": (1, "share of answers that hit max_tokens"),
    "logprob_share": (1, "share of requests asking for top logprobs"),
    "mean_top_logprobs": (1, "mean number of top logprobs requested per request"),
    "harvest_share": (1, "share of requests asking for logprobs on a short output (max_tokens <= 16)"),
    "logprob_breadth": (1, "logprob share times topic spread (logprobs over a broad prompt set)"),
    "logit_bias_share": (1, "share of requests using logit_bias"),
    "hour_entropy": (1, "spread of activity over the 24 hours (round-the-clock = high)"),
    "requests_per_day": (1, "requests per active day"),
    "n_days_active": (1, "days with activity (persistence)"),
    "rejected_share": (1, "share of requests rejected (rate limits hit)"),
    "ip_rotation": (1, "distinct client IPs per request"),
    "gap_cv": (-1, "coefficient of variation of in-session gaps (machine pacing = low)"),
}
#: Features that measure one behaviour: the combined score takes the strongest of each group, so a
#: behaviour seen through several correlated features (four views of logprob use) counts once.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "reasoning": ("cot_share",),
    "datagen": ("datagen_share",),
    "breadth": ("task_entropy", "subject_entropy"),
    "output": ("mean_max_tokens", "mean_completion_tokens", "out_in_ratio", "capped_share"),
    "logprobs": ("logprob_share", "mean_top_logprobs", "harvest_share", "logprob_breadth", "logit_bias_share"),
    "rhythm": ("hour_entropy", "gap_cv"),
    "volume": ("requests_per_day", "n_days_active"),
    "evasion": ("rejected_share", "ip_rotation"),
}

#: Heavy-tailed features the scorer standardises on a log1p scale.
LOG_SCALED = frozenset({"mean_max_tokens", "mean_completion_tokens", "out_in_ratio", "requests_per_day",
                        "n_days_active"})

#: Every output column of :func:`entity_features_sql`, in order (after the entity id).
FEATURE_COLUMNS: tuple[str, ...] = (
    "n_requests", "n_ok", "n_prompts", "n_days_active", "first_ts", "last_ts", "mean_prompt_tokens",
    "mean_completion_tokens", "out_in_ratio", "mean_max_tokens", "capped_share", "cot_share", "datagen_share",
    "logprob_share", "mean_top_logprobs", "harvest_share", "logprob_breadth", "logit_bias_share", "rejected_share",
    "gap_cv", "n_gaps", "hour_entropy", "task_entropy", "subject_entropy", "n_ips", "n_subnets", "n_agents",
    "n_templates", "n_topics", "template_top_share", "topic_ratio", "topic_spread", "requests_per_day",
    "ip_rotation",
)

IN_SESSION_GAP_S = 600.0

#: Columns of the prepared request table the SQL reads (engines ship only these).
SQL_COLUMNS: tuple[str, ...] = (
    "request_id", "account_id", "ts_s", "hour", "minute", "ok", "status", "client_ip", "subnet", "user_agent",
    "prompt_tokens", "completion_tokens", "max_tokens", "capped", "cot", "datagen", "task", "subject", "logprobs",
    "logit_bias", "template", "topic", "end_user", "temperature", *EMBED_COLUMNS,
)


@dataclass(frozen=True)
class FeatureQuery:
    """One named query of the feature layer; ``sql`` runs unchanged on DuckDB and Spark."""

    name: str
    sql: str


#: Requests per window of an account (the windowed test inside an account, :mod:`.scan`).
WINDOW = 150

#: Entities the feature SQL can group by: accounts, campaigns (through ``membership``), end users
#: (``account/user`` where the log names one) and windows of ``WINDOW`` consecutive requests of an
#: account (``account#wK``).
ENTITIES = ("account_id", "campaign_id", "end_user_id", "window_id")


def entity_source_sql(entity: str, window: int = WINDOW) -> str:
    """The request rows of each entity (see :data:`ENTITIES`)."""
    if entity == "account_id":
        return "SELECT *, account_id AS entity FROM requests WHERE account_id IS NOT NULL"
    if entity == "end_user_id":
        return ("SELECT *, concat(account_id, '/', end_user) AS entity FROM requests "
                "WHERE account_id IS NOT NULL AND end_user IS NOT NULL")
    if entity == "window_id":
        return ("SELECT w.*, concat(w.account_id, '#w', CAST(CAST(FLOOR(CAST(w.rn - 1 AS DOUBLE) / "
                f"{int(window)}) AS BIGINT) AS STRING)) AS entity FROM (SELECT requests.*, ROW_NUMBER() OVER "
                "(PARTITION BY account_id ORDER BY ts_s, request_id) AS rn FROM requests "
                "WHERE account_id IS NOT NULL) w")
    if entity == "campaign_id":
        return ("SELECT r.*, m.campaign_id AS entity FROM requests r "
                "JOIN membership m ON r.account_id = m.account_id")
    raise ValueError(f"unknown entity {entity!r}")


def entity_features_sql(entity: str = "account_id", window: int = WINDOW) -> FeatureQuery:
    """Per-entity aggregate features (entity: one of :data:`ENTITIES`)."""
    means = ", ".join(f"AVG({c}) AS m_{c}" for c in EMBED_COLUMNS)
    norm = " + ".join(f"a.m_{c} * a.m_{c}" for c in EMBED_COLUMNS)
    sql = f"""
WITH src AS ({entity_source_sql(entity, window)}),
r AS (
  SELECT src.*, ts_s - LAG(ts_s) OVER (PARTITION BY entity ORDER BY ts_s, request_id) AS gap FROM src
),
cats AS (
  SELECT entity, 0 AS kind, hour AS v FROM src
  UNION ALL SELECT entity, 1 AS kind, task AS v FROM src WHERE task IS NOT NULL
  UNION ALL SELECT entity, 2 AS kind, subject AS v FROM src WHERE subject IS NOT NULL
),
cat_c AS (SELECT entity, kind, v, COUNT(*) AS c FROM cats GROUP BY entity, kind, v),
cat_tot AS (SELECT entity, kind, CAST(SUM(c) AS DOUBLE) AS n FROM cat_c GROUP BY entity, kind),
cat_ent AS (
  SELECT h.entity, h.kind, -SUM((CAST(h.c AS DOUBLE) / t.n) * LN(CAST(h.c AS DOUBLE) / t.n)) AS ent, MIN(t.n) AS n
  FROM cat_c h JOIN cat_tot t ON h.entity = t.entity AND h.kind = t.kind GROUP BY h.entity, h.kind
),
hour_ent AS (
  SELECT entity,
    MAX(CASE WHEN kind = 0 THEN ent END) AS hour_entropy,
    MAX(CASE WHEN kind = 1 AND n >= 2 THEN ent END) AS task_entropy,
    MAX(CASE WHEN kind = 2 AND n >= 2 THEN ent END) AS subject_entropy
  FROM cat_ent GROUP BY entity
),
tpl AS (SELECT entity, template, COUNT(*) AS c FROM r WHERE template IS NOT NULL GROUP BY entity, template),
tpl_top AS (SELECT entity, CAST(MAX(c) AS DOUBLE) AS top_c, CAST(SUM(c) AS DOUBLE) AS tot_c,
  COUNT(*) AS n_templates FROM tpl GROUP BY entity),
dv AS (
  SELECT entity, 0 AS kind, CAST(CAST(FLOOR(ts_s / 86400) AS BIGINT) AS STRING) AS v FROM src WHERE ts_s IS NOT NULL
  UNION ALL SELECT entity, 1 AS kind, client_ip AS v FROM src WHERE client_ip IS NOT NULL
  UNION ALL SELECT entity, 2 AS kind, subnet AS v FROM src WHERE subnet IS NOT NULL
  UNION ALL SELECT entity, 3 AS kind, user_agent AS v FROM src WHERE user_agent IS NOT NULL
  UNION ALL SELECT entity, 4 AS kind, CAST(topic AS STRING) AS v FROM src WHERE topic IS NOT NULL
),
dc AS (SELECT entity, kind, COUNT(*) AS c FROM (SELECT DISTINCT entity, kind, v FROM dv) x GROUP BY entity, kind),
dn AS (
  SELECT entity,
    SUM(CASE WHEN kind = 0 THEN c ELSE 0 END) AS n_days_active,
    SUM(CASE WHEN kind = 1 THEN c ELSE 0 END) AS n_ips,
    SUM(CASE WHEN kind = 2 THEN c ELSE 0 END) AS n_subnets,
    SUM(CASE WHEN kind = 3 THEN c ELSE 0 END) AS n_agents,
    SUM(CASE WHEN kind = 4 THEN c ELSE 0 END) AS n_topics
  FROM dc GROUP BY entity
),
a AS (
  SELECT entity,
    COUNT(*) AS n_requests,
    CAST(SUM(ok) AS BIGINT) AS n_ok,
    COUNT(template) AS n_prompts,
    MIN(ts_s) AS first_ts, MAX(ts_s) AS last_ts,
    AVG(CASE WHEN ok = 1 THEN CAST(prompt_tokens AS DOUBLE) END) AS mean_prompt_tokens,
    AVG(CASE WHEN ok = 1 THEN CAST(completion_tokens AS DOUBLE) END) AS mean_completion_tokens,
    SUM(CASE WHEN ok = 1 THEN CAST(completion_tokens AS DOUBLE) END) AS sum_ct,
    SUM(CASE WHEN ok = 1 THEN CAST(prompt_tokens AS DOUBLE) END) AS sum_pt,
    AVG(CAST(max_tokens AS DOUBLE)) AS mean_max_tokens,
    AVG(CAST(capped AS DOUBLE)) AS capped_share,
    AVG(CAST(cot AS DOUBLE)) AS cot_share,
    AVG(CAST(datagen AS DOUBLE)) AS datagen_share,
    AVG(CASE WHEN logprobs IS NULL THEN NULL WHEN logprobs > 0 THEN 1 ELSE 0 END) AS logprob_share,
    AVG(CAST(logprobs AS DOUBLE)) AS mean_top_logprobs,
    AVG(CASE WHEN logprobs IS NULL THEN NULL WHEN logprobs > 0 AND max_tokens IS NOT NULL AND max_tokens <= 16
        THEN 1 ELSE 0 END) AS harvest_share,
    AVG(CASE WHEN logit_bias IS NULL THEN NULL WHEN logit_bias THEN 1 ELSE 0 END) AS logit_bias_share,
    AVG(CASE WHEN status IS NULL THEN NULL WHEN status >= 400 THEN 1 ELSE 0 END) AS rejected_share,
    STDDEV_SAMP(CASE WHEN gap < {IN_SESSION_GAP_S} THEN gap END) AS sd_gap,
    AVG(CASE WHEN gap < {IN_SESSION_GAP_S} THEN gap END) AS mean_gap,
    COUNT(CASE WHEN gap < {IN_SESSION_GAP_S} THEN gap END) AS n_gaps,
    COUNT(topic) AS n_topic_rows,
    COUNT(e0) AS n_embedded,
    {means}
  FROM r GROUP BY entity
)
SELECT a.entity AS {entity},
  a.n_requests, a.n_ok, a.n_prompts, COALESCE(d.n_days_active, 0) AS n_days_active, a.first_ts, a.last_ts,
  a.mean_prompt_tokens, a.mean_completion_tokens,
  a.sum_ct / NULLIF(a.sum_pt, 0) AS out_in_ratio,
  a.mean_max_tokens, a.capped_share, a.cot_share, a.datagen_share, a.logprob_share, a.mean_top_logprobs,
  a.harvest_share, a.logprob_share * e.subject_entropy AS logprob_breadth, a.logit_bias_share, a.rejected_share,
  CASE WHEN a.n_gaps >= 3 AND a.mean_gap > 0 THEN a.sd_gap / a.mean_gap END AS gap_cv,
  a.n_gaps,
  CASE WHEN a.n_requests >= 2 THEN e.hour_entropy END AS hour_entropy, e.task_entropy, e.subject_entropy,
  CASE WHEN d.n_ips > 0 THEN d.n_ips END AS n_ips,
  CASE WHEN d.n_subnets > 0 THEN d.n_subnets END AS n_subnets,
  CASE WHEN d.n_agents > 0 THEN d.n_agents END AS n_agents,
  CASE WHEN a.n_prompts > 0 THEN t.n_templates END AS n_templates,
  CASE WHEN a.n_topic_rows > 0 THEN d.n_topics END AS n_topics,
  t.top_c / NULLIF(t.tot_c, 0) AS template_top_share,
  CASE WHEN a.n_topic_rows >= 2 THEN CAST(d.n_topics AS DOUBLE) / a.n_topic_rows END AS topic_ratio,
  CASE WHEN a.n_embedded >= 2 THEN CAST(1 AS DOUBLE) - SQRT({norm}) END AS topic_spread,
  CAST(a.n_requests AS DOUBLE) / NULLIF(d.n_days_active, 0) AS requests_per_day,
  CASE WHEN d.n_ips > 0 AND a.n_requests >= 2 THEN CAST(d.n_ips AS DOUBLE) / a.n_requests END AS ip_rotation
FROM a
LEFT JOIN dn d ON a.entity = d.entity
LEFT JOIN hour_ent e ON a.entity = e.entity
LEFT JOIN tpl_top t ON a.entity = t.entity
ORDER BY {entity}
"""
    return FeatureQuery(f"{entity.split('_')[0]}_features", sql)


@dataclass(frozen=True)
class CoordinationConfig:
    """How accounts are linked.

    sync_bucket_s: width of the time buckets in which using the same template counts as
    synchronised activity (300). max_key_accounts: keys (an IP, subnet, user agent, template or
    time bucket + template) held by more accounts than this are too common to link anyone (200).
    """

    sync_bucket_s: int = 300
    max_key_accounts: int = 200


def coordination_keys_sql(config: CoordinationConfig = CoordinationConfig()) -> FeatureQuery:
    """The rare keys of every account (input of :func:`coordination_pairs_sql`).

    Kinds: ``ip``, ``subnet``, ``agent`` (user agent), ``template`` (LSH template cluster) and
    ``sync`` (the same template within the same time bucket). A key is rare when at least two
    and at most ``max_key_accounts`` accounts hold it; ``w`` is its rarity ``ln(N / holders)``;
    ``n_kind`` is the account's number of keys of that kind (for Jaccard similarity).
    """
    minutes = max(1, config.sync_bucket_s // 60)
    sql = f"""
WITH base AS (SELECT * FROM requests WHERE account_id IS NOT NULL),
keys AS (
  SELECT DISTINCT account_id, 'ip' AS kind, client_ip AS k FROM base WHERE client_ip IS NOT NULL
  UNION ALL SELECT DISTINCT account_id, 'subnet' AS kind, subnet AS k FROM base WHERE subnet IS NOT NULL
  UNION ALL SELECT DISTINCT account_id, 'agent' AS kind, user_agent AS k FROM base WHERE user_agent IS NOT NULL
  UNION ALL SELECT DISTINCT account_id, 'template' AS kind, CAST(template AS STRING) AS k
    FROM base WHERE template IS NOT NULL
  UNION ALL SELECT DISTINCT account_id, 'sync' AS kind,
    concat(CAST(CAST(FLOOR(CAST(minute AS DOUBLE) / {minutes}) AS BIGINT) AS STRING), '/',
           CAST(template AS STRING)) AS k FROM base WHERE template IS NOT NULL
),
counted AS (
  SELECT account_id, kind, k, COUNT(*) OVER (PARTITION BY kind, k) AS holders,
         COUNT(*) OVER (PARTITION BY account_id, kind) AS n_kind
  FROM keys
),
n_acc AS (SELECT COUNT(DISTINCT account_id) AS total FROM base)
SELECT counted.account_id, counted.kind, counted.k, counted.n_kind,
       LN(CAST(n_acc.total AS DOUBLE) / counted.holders) AS w
FROM counted CROSS JOIN n_acc
WHERE counted.holders >= 2 AND counted.holders <= {config.max_key_accounts}
"""
    return FeatureQuery("coordination_keys", sql)


def coordination_pairs_sql() -> FeatureQuery:
    """Pairs of accounts sharing rare keys (table ``rare_keys``), count and weight per kind.

    The anchor kinds (ip, subnet, sync) are paired across all accounts; agent and template only
    for pairs an anchor already links (they never link on their own, see
    :class:`campaigns.LinkRule`), which keeps the self-join small. ``n_a``/``n_b``: each
    account's number of keys of that kind. Row order is unspecified.
    """
    sql = """
WITH anchor AS (
  SELECT x.account_id AS a, y.account_id AS b, x.kind AS kind, COUNT(*) AS shared, SUM(x.w) AS weight,
         MIN(x.n_kind) AS n_a, MIN(y.n_kind) AS n_b
  FROM rare_keys x JOIN rare_keys y ON x.kind = y.kind AND x.k = y.k AND x.account_id < y.account_id
  WHERE x.kind IN ('ip', 'subnet', 'sync')
  GROUP BY x.account_id, y.account_id, x.kind
),
anchor_pairs AS (SELECT DISTINCT a, b FROM anchor),
weak AS (
  SELECT p.a AS a, p.b AS b, x.kind AS kind, COUNT(*) AS shared, SUM(x.w) AS weight,
         MIN(x.n_kind) AS n_a, MIN(y.n_kind) AS n_b
  FROM anchor_pairs p
  JOIN rare_keys x ON x.account_id = p.a
  JOIN rare_keys y ON y.account_id = p.b AND y.kind = x.kind AND y.k = x.k
  WHERE x.kind IN ('agent', 'template')
  GROUP BY p.a, p.b, x.kind
)
SELECT * FROM anchor UNION ALL SELECT * FROM weak
"""
    return FeatureQuery("coordination_pairs", sql)
