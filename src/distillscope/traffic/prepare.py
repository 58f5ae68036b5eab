"""Request-level columns derived once, in Python/Arrow, before the SQL features run on any engine.

Text work (masking, MinHash/LSH template clusters, reasoning-elicitation patterns, topic
embeddings) is done per *distinct* prompt and mapped back to rows, so both engines aggregate
the same precomputed columns and cannot drift apart. Derived columns:

=============== =========================================================================
ts_s            arrival time, epoch seconds (float)
hour            UTC hour of day (0..23)
minute          arrival minute, epoch minutes (int) -- synchronisation buckets
subnet          /24 of an IPv4 address, first three groups of an IPv6 address
ok              1 when the request was served (status < 400), else 0
cot             1 when the asked text elicits reasoning (step by step, chain of thought ...),
                null when the prompt is absent/redacted
capped          1 when the completion used >= 95% of max_tokens; null without both numbers
template        template cluster id (MinHash/LSH over masked text); null without prompt
topic           hashed most distinctive content word of the ask; null if none
e0 .. e15       unit topic embedding of the ask (hashed, IDF-weighted, template words removed)
=============== =========================================================================
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillscope.progress import Progress, ensure_progress
from distillscope.traffic.schema import RequestLogTable
from distillscope.traffic.templates import (TemplateConfig, cluster_templates, content_words, last_user_text,
                                            mask)

logger = logging.getLogger(__name__)

EMBED_DIM = 16
EMBED_COLUMNS = tuple(f"e{i}" for i in range(EMBED_DIM))

#: Phrases that elicit a model's reasoning (chain of thought); matched case-insensitively.
COT_PATTERN = re.compile(
    r"step[- ]by[- ]step|(your|the|full|my) (reasoning|chain of thought|thinking)|chain[- ]of[- ]thought"
    r"|think (it |this )?through|think carefully|reason (it out|through)|show (all |every )?(your |the )?"
    r"(work|steps|every step)|walk me through your|justify (each|every|your)|explain each step"
    r"|intermediate steps|<think>|rationale", re.IGNORECASE)
_STOP = frozenset("""the and for are but not you your with this that from have has had was were will would can could
should what which who whom when where why how all any each few more most other some such only own same than too
very just about into over under again then once here there does did doing its it's they them their our ours
please give tell write make explain using use also like want need know get one two three""".split())


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of the text-derived columns.

    templates: MinHash/LSH settings. frame_df: inside a template cluster of at least
    ``frame_min_texts`` distinct asks, words present in more than this share are template words and
    leave the topic embedding (0.5). common_df: words in more than this share of all distinct asks
    are generic and leave it too (0.05).
    """

    templates: TemplateConfig = field(default_factory=TemplateConfig)
    frame_df: float = 0.5
    frame_min_texts: int = 5
    common_df: float = 0.05


def _subnet(ip: pa.ChunkedArray) -> pa.ChunkedArray:
    v4 = pc.replace_substring_regex(ip, r"^(\d+\.\d+\.\d+)\.\d+$", r"\1")
    return pc.replace_substring_regex(v4, r"^([0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f]*):.*$", r"\1")


def _word_vectors(words: set[str]) -> dict[str, np.ndarray]:
    out = {}
    for w in words:
        h = zlib.crc32(w.encode())
        out[w] = np.array([1.0 if (h >> b) & 1 else -1.0 for b in range(EMBED_DIM)], dtype=np.float32)
    return out


def _topic_features(asks: list[str], clusters: np.ndarray, config: PrepareConfig
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Topic embedding (n x EMBED_DIM, NaN when no content words) and topic token per distinct ask."""
    n = len(asks)
    words = [[w for w in content_words(a) if w not in _STOP] for a in asks]
    df: Counter[str] = Counter()
    for ws in words:
        df.update(set(ws))
    per_cluster: dict[int, Counter[str]] = {}
    sizes = Counter(clusters.tolist())
    for ws, c in zip(words, clusters.tolist()):
        if sizes[c] >= config.frame_min_texts:
            per_cluster.setdefault(c, Counter()).update(set(ws))
    common = {w for w, k in df.items() if n >= 200 and k / n > config.common_df}
    vectors = _word_vectors(set(df))
    emb = np.full((n, EMBED_DIM), np.nan, dtype=np.float32)
    topic = np.full(n, -1, dtype=np.int64)
    for i, (ws, c) in enumerate(zip(words, clusters.tolist())):
        frame = per_cluster.get(c)
        kept = [w for w in set(ws) if w not in common
                and not (frame is not None and frame[w] / sizes[c] > config.frame_df)]
        if not kept:
            continue
        weights = np.array([math.log((1 + n) / (1 + df[w])) for w in kept], dtype=np.float32)
        v = (weights[:, None] * np.stack([vectors[w] for w in kept])).sum(axis=0)
        norm = float(np.linalg.norm(v))
        if norm > 0:
            emb[i] = v / norm
        topic[i] = zlib.crc32(kept[int(np.argmax(weights))].encode())
    return emb, topic


def _text_columns(prompts: pa.ChunkedArray, config: PrepareConfig, progress: Progress) -> dict[str, pa.Array]:
    encoded = pc.dictionary_encode(prompts).combine_chunks()
    uniq = encoded.dictionary.to_pylist()
    valid = ~np.asarray(encoded.indices.is_null().to_numpy(zero_copy_only=False))
    idx = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    with progress.task("template clusters (MinHash/LSH)", total=3) as task:
        asks = [last_user_text(p) for p in uniq]
        masked = [mask(a) for a in asks]
        masked_enc = pc.dictionary_encode(pa.array(masked))
        distinct_masked = masked_enc.dictionary.to_pylist()
        task.advance()
        labels = cluster_templates(distinct_masked, config.templates)
        per_prompt_cluster = labels[masked_enc.indices.to_numpy()] if uniq else np.zeros(0, np.int64)
        task.advance()
        cot = np.array([1 if COT_PATTERN.search(a) else 0 for a in asks], dtype=np.int64)
        emb, topic = _topic_features(asks, per_prompt_cluster, config)
        task.advance()
    mask_null = pa.array(~valid)
    out = {
        "cot": pa.array(cot[idx] if len(cot) else np.zeros(len(idx), np.int64), mask=~valid),
        "template": pa.array(per_prompt_cluster[idx] if len(uniq) else np.zeros(len(idx), np.int64), mask=~valid),
    }
    t = topic[idx] if len(uniq) else np.full(len(idx), -1)
    out["topic"] = pa.array(t, mask=np.logical_or(~valid, t < 0))
    e = emb[idx] if len(uniq) else np.full((len(idx), EMBED_DIM), np.nan, np.float32)
    for j, name in enumerate(EMBED_COLUMNS):
        col = e[:, j].astype(np.float64)
        out[name] = pa.array(col, mask=np.logical_or(np.isnan(col), mask_null.to_numpy(zero_copy_only=False)))
    return out


def prepare(log: RequestLogTable, config: PrepareConfig | None = None, *,
            progress: Progress | None = None) -> pa.Table:
    """The request table both engines read: canonical columns plus the derived ones above."""
    config = config or PrepareConfig()
    progress = ensure_progress(progress)
    t = log.table
    ts_us = t.column("ts").cast(pa.int64())
    ts_s = pc.divide(ts_us.cast(pa.float64()), 1e6)
    status = t.column("status")
    ok = pc.if_else(pc.is_null(status), 1, pc.if_else(pc.less(status, 400), 1, 0)).cast(pa.int64())
    mt = t.column("max_tokens").cast(pa.float64())
    ct = t.column("completion_tokens").cast(pa.float64())
    capped = pc.if_else(pc.and_(pc.greater(mt, 0), pc.equal(ok, 1)),
                        pc.if_else(pc.greater_equal(ct, pc.multiply(mt, 0.95)), 1, 0), None).cast(pa.int64())
    derived: dict[str, pa.Array | pa.ChunkedArray] = {
        "ts_s": ts_s,
        "hour": pc.divide(pc.divide(ts_us, 3_600_000_000), 1).cast(pa.int64()),
        "minute": pc.divide(ts_us, 60_000_000).cast(pa.int64()),
        "subnet": _subnet(t.column("client_ip")),
        "ok": ok,
        "capped": capped,
    }
    derived["hour"] = pc.subtract(derived["hour"], pc.multiply(pc.divide(derived["hour"], 24), 24))
    derived.update(_text_columns(t.column("prompt"), config, progress))
    for name, col in derived.items():
        t = t.append_column(name, col)
    return t
