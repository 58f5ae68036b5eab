"""The per-prompt Python definition of the text columns, kept as the oracle of the vectorised ones.

This is the implementation ``traffic/prepare.py`` and ``traffic/templates.py`` had before they
were vectorised (one Python pass and one datasketch ``MinHash``/LSH insert per distinct
prompt), with one fix: a prompt's words are taken in order of first use rather than in ``set``
order, so the topic token (highest IDF weight, first on ties) no longer depends on the
process's string-hash seed.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasketch import MinHashLSH
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from distillscope.traffic.content import classifier_text, content_model
from distillscope.traffic.prepare import _STOP, EMBED_DIM, PrepareConfig
from distillscope.traffic.templates import TemplateConfig, content_words, last_user_text, mask, minhashes


def cluster_templates(masked_texts: list[str], config: TemplateConfig = TemplateConfig()) -> np.ndarray:
    n = len(masked_texts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    mhs = minhashes(masked_texts, config)
    sig = np.stack([m.hashvalues for m in mhs])
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    with lsh.insertion_session(buffer_size=100_000) as session:
        for i, m in enumerate(mhs):
            session.insert(i, m, check_duplication=False)
    rows, cols = [], []
    for table in lsh.hashtables:
        for bucket in table.keys():
            members = list(table.get(bucket))
            if len(members) > 1:
                rows.extend([members[0]] * (len(members) - 1))
                cols.extend(members[1:])
    a, b = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    if len(a):
        similar = (sig[a] == sig[b]).mean(axis=1) >= config.threshold
        a, b = a[similar], b[similar]
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _word_vectors(words: set[str]) -> dict[str, np.ndarray]:
    out = {}
    for w in words:
        h = zlib.crc32(w.encode())
        out[w] = np.array([1.0 if (h >> b) & 1 else -1.0 for b in range(EMBED_DIM)], dtype=np.float32)
    return out


def topic_features(asks: list[str], clusters: np.ndarray, config: PrepareConfig) -> tuple[np.ndarray, np.ndarray]:
    n = len(asks)
    words = [list(dict.fromkeys(w for w in content_words(a) if w not in _STOP)) for a in asks]
    df: Counter[str] = Counter()
    for ws in words:
        df.update(ws)
    per_cluster: dict[int, Counter[str]] = {}
    sizes = Counter(clusters.tolist())
    for ws, c in zip(words, clusters.tolist()):
        if sizes[c] >= config.frame_min_texts:
            per_cluster.setdefault(c, Counter()).update(ws)
    common = {w for w, k in df.items() if n >= 200 and k / n > config.common_df}
    vectors = _word_vectors(set(df))
    emb = np.full((n, EMBED_DIM), np.nan, dtype=np.float32)
    topic = np.full(n, -1, dtype=np.int64)
    for i, (ws, c) in enumerate(zip(words, clusters.tolist())):
        frame = per_cluster.get(c)
        kept = [w for w in ws if w not in common and not (frame is not None and frame[w] / sizes[c] > config.frame_df)]
        if not kept:
            continue
        weights = np.array([math.log((1 + n) / (1 + df[w])) for w in kept], dtype=np.float32)
        v = (weights[:, None] * np.stack([vectors[w] for w in kept])).sum(axis=0)
        norm = float(np.linalg.norm(v))
        if norm > 0:
            emb[i] = v / norm
        topic[i] = zlib.crc32(kept[int(np.argmax(weights))].encode())
    return emb, topic


def text_columns(prompts: pa.ChunkedArray | pa.Array, config: PrepareConfig = PrepareConfig()) -> dict[str, np.ndarray]:
    """Per row: cot, template, topic (-1 = none) and the embedding (NaN = none); null prompts give -1/NaN."""
    encoded = pc.dictionary_encode(prompts)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    uniq = encoded.dictionary.to_pylist()
    valid = ~np.asarray(encoded.indices.is_null().to_numpy(zero_copy_only=False))
    idx = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    asks = [last_user_text(p) for p in uniq]
    masked = [mask(a) for a in asks]
    distinct = list(dict.fromkeys(masked))
    where = {m: i for i, m in enumerate(distinct)}
    labels = cluster_templates(distinct, config.templates)
    cluster = labels[[where[m] for m in masked]] if uniq else np.zeros(0, np.int64)
    # the content classifier, one prompt at a time (the batch path classifies all distinct prompts at once)
    model = content_model(config.content)
    cot = np.array([int(model.predict([classifier_text(p) or ""]).reasoning[0] >= 0.5) for p in uniq], dtype=np.int64)
    emb, topic = topic_features(asks, cluster, config)
    out = {"cot": np.where(valid, cot[idx] if uniq else -1, -1),
           "template": np.where(valid, cluster[idx] if uniq else -1, -1),
           "topic": np.where(valid, topic[idx] if uniq else -1, -1)}
    e = emb[idx] if uniq else np.full((len(idx), EMBED_DIM), np.nan, np.float32)
    out["embedding"] = np.where(valid[:, None], e, np.nan)
    return out
