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
cot             1 when the content classifier (:mod:`.content`) finds reasoning elicitation in the
                system prompt + last user message; null when the prompt is absent/redacted
datagen         1 when it finds a data-generation / machine-format request; null without prompt
task            task type index (classifier); null without prompt
subject         topic index (classifier); null without prompt
capped          1 when the completion used >= 95% of max_tokens; null without both numbers
template        template cluster id (MinHash/LSH over masked text); null without prompt
topic           hashed most distinctive content word of the ask; null if none
e0 .. e15       unit topic embedding of the ask (hashed, IDF-weighted, template words removed)
=============== =========================================================================
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import csr_matrix

from distillscope.progress import Progress, ensure_progress
from distillscope.traffic.content import ContentConfig, classifier_text, content_model
from distillscope.traffic.schema import RequestLogTable
from distillscope.traffic.templates import (TemplateConfig, cluster_templates, content_words, last_user_text,
                                            mask_array)
from distillscope.traffic.text_kernels import map_strings, replace_at

logger = logging.getLogger(__name__)

EMBED_DIM = 16
EMBED_COLUMNS = tuple(f"e{i}" for i in range(EMBED_DIM))

_STOP = frozenset("""the and for are but not you your with this that from have has had was were will would can could
should what which who whom when where why how all any each few more most other some such only own same than too
very just about into over under again then once here there does did doing its it's they them their our ours
please give tell write make explain using use also like want need know get one two three""".split())
_STOP_ARRAY = pa.array(sorted(_STOP))


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of the text-derived columns.

    templates: MinHash/LSH settings. frame_df: inside a template cluster of at least
    ``frame_min_texts`` distinct asks, words present in more than this share are template words and
    leave the topic embedding (0.5). common_df: words in more than this share of all distinct asks
    are generic and leave it too (0.05).
    """

    templates: TemplateConfig = field(default_factory=TemplateConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    frame_df: float = 0.5
    frame_min_texts: int = 5
    common_df: float = 0.05


def _subnet(ip: pa.ChunkedArray) -> pa.ChunkedArray:
    v4 = pc.replace_substring_regex(ip, r"^(\d+\.\d+\.\d+)\.\d+$", r"\1")
    return pc.replace_substring_regex(v4, r"^([0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f]*):.*$", r"\1")


def _word_vectors(crc: np.ndarray) -> np.ndarray:
    """+-1 vector per word from the bits of its CRC-32 ``crc`` (len(crc) x EMBED_DIM, float64)."""
    bits = (crc[:, None] >> np.arange(EMBED_DIM)[None, :]) & 1
    return np.where(bits == 1, 1.0, -1.0)


def _content_words_ascii(asks: pa.Array) -> pa.ListArray:
    """:func:`content_words` of ASCII strings: runs of ``[a-z'-]`` from their first letter, >= 3 long."""
    runs = pc.split_pattern_regex(pc.ascii_lower(asks), r"[^a-z'-]+")
    flat = pc.utf8_ltrim(pc.list_flatten(runs), "'-")
    lengths = pc.list_value_length(runs).to_numpy(zero_copy_only=False).astype(np.int64)
    ids = np.repeat(np.arange(len(asks)), lengths)
    keep = pc.greater_equal(pc.binary_length(flat), 3)
    kept = flat.filter(keep)
    counts = np.bincount(ids[keep.to_numpy(zero_copy_only=False)], minlength=len(asks))
    return pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(counts)].astype(np.int32)), kept)


def _ask_words(asks: pa.Array, vocabulary: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-stop content words of each ask in order of first use: (ask index, word id).

    ``vocabulary`` maps words to ids and grows as new words appear.
    """
    words = map_strings(asks, _content_words_ascii, content_words, pa.list_(pa.string()))
    lengths = pc.list_value_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(words)
    ask = np.repeat(np.arange(len(asks), dtype=np.int64), lengths)
    keep = pc.invert(pc.is_in(flat, value_set=_STOP_ARRAY)).to_numpy(zero_copy_only=False)
    enc = pc.dictionary_encode(flat.filter(pa.array(keep)))
    local_ids = np.array([vocabulary.setdefault(w, len(vocabulary)) for w in enc.dictionary.to_pylist()],
                         dtype=np.int64)
    word = local_ids[enc.indices.to_numpy(zero_copy_only=False)] if len(enc.indices) else np.zeros(0, np.int64)
    ask = ask[keep]
    _, first = np.unique(ask * (len(vocabulary) + 1) + word, return_index=True)
    first.sort()
    return ask[first].astype(np.int32), word[first].astype(np.int32)


def _topic_features(asks: pa.Array, clusters: np.ndarray, config: PrepareConfig, *, batch: int = 200_000
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Topic embedding (n x EMBED_DIM, NaN when no content words) and topic token per distinct ask.

    Words of an ask count once. A word is dropped when generic (in more than ``common_df`` of
    all asks, once there are 200) or a frame word of the ask's template cluster; the embedding
    is the IDF-weighted sum of the kept words' hashed vectors, normalised; the topic is the kept
    word of highest weight (the first one used in the ask on ties).
    """
    n = len(asks)
    vocabulary: dict[str, int] = {}
    parts = [_ask_words(asks.slice(lo, batch), vocabulary) for lo in range(0, n, batch)]
    ask = np.concatenate([p[0] + lo for p, lo in zip(parts, range(0, n, batch))]) if parts else np.zeros(0, np.int32)
    word = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
    del parts
    n_words = len(vocabulary)
    df = np.bincount(word, minlength=n_words)
    sizes = np.bincount(clusters, minlength=1)
    size = sizes[clusters[ask]]
    framed = size >= config.frame_min_texts
    frame_word = np.zeros(len(ask), dtype=bool)
    if framed.any():
        _, inverse, counts = np.unique(clusters[ask[framed]] * (n_words + 1) + word[framed], return_inverse=True,
                                       return_counts=True)
        frame_word[framed] = counts[inverse.ravel()] / size[framed] > config.frame_df
    common = (df / max(n, 1) > config.common_df) if n >= 200 else np.zeros(n_words, dtype=bool)
    kept = ~common[word] & ~frame_word
    ask, word = ask[kept], word[kept]
    weights = np.log((1 + n) / (1 + df[word])).astype(np.float32)
    crc = np.fromiter((zlib.crc32(w.encode()) for w in vocabulary), dtype=np.int64, count=n_words)
    vectors = _word_vectors(crc)
    emb = np.full((n, EMBED_DIM), np.nan, dtype=np.float32)
    topic = np.full(n, -1, dtype=np.int64)
    if len(ask) == 0:
        return emb, topic
    # Pairs are grouped by ask (ascending), each ask's words in order of first use.
    per_ask = np.bincount(ask, minlength=n)
    indptr = np.r_[0, np.cumsum(per_ask)]
    sums = csr_matrix((weights.astype(np.float64), word, indptr), shape=(n, n_words)) @ vectors
    norms = np.linalg.norm(sums, axis=1)
    good = (per_ask > 0) & (norms > 0)
    emb[good] = (sums[good] / norms[good, None]).astype(np.float32)
    del sums
    starts = indptr[:-1][per_ask > 0]
    is_max = weights == np.repeat(np.maximum.reduceat(weights, starts), per_ask[per_ask > 0])
    at_max = np.flatnonzero(is_max)
    lead = at_max[np.r_[True, ask[at_max][1:] != ask[at_max][:-1]]]
    topic[ask[lead]] = crc[word[lead]]
    return emb, topic


def _asks_of(prompts: pa.Array) -> pa.Array:
    """:func:`last_user_text` of each prompt (JSON chats are parsed; other prompts are the ask)."""
    chat = pc.and_(pc.starts_with(prompts, "["), pc.ends_with(prompts, "]")).to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(chat)
    return replace_at(prompts, idx, [last_user_text(p) for p in prompts.take(pa.array(idx)).to_pylist()])


def content_columns(prompts: list[str], config: ContentConfig) -> dict[str, np.ndarray]:
    """The classifier's columns (cot, datagen, task, subject) of distinct prompts."""
    pred = content_model(config).predict([classifier_text(p) or "" for p in prompts])
    return {"cot": (pred.reasoning >= 0.5).astype(np.int64), "datagen": (pred.datagen >= 0.5).astype(np.int64),
            "task": pred.task, "subject": pred.topic}


def _text_columns(prompts: pa.ChunkedArray, config: PrepareConfig, progress: Progress) -> dict[str, pa.Array]:
    encoded = pc.dictionary_encode(prompts).combine_chunks()
    valid = ~np.asarray(encoded.indices.is_null().to_numpy(zero_copy_only=False))
    idx = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    n_uniq = len(encoded.dictionary)
    logger.info("text columns: %d rows, %d distinct prompts", len(idx), n_uniq)
    with progress.task("template clusters (MinHash/LSH)", total=3) as task:
        prompt_list = encoded.dictionary.to_pylist()
        asks = _asks_of(encoded.dictionary)
        del encoded                      # the distinct prompts: as large as the prompt column
        masked_enc = pc.dictionary_encode(mask_array(asks))
        task.advance()
        labels = cluster_templates(masked_enc.dictionary, config.templates)
        per_prompt_cluster = labels[masked_enc.indices.to_numpy()] if n_uniq else np.zeros(0, np.int64)
        task.advance()
        content = content_columns(prompt_list, config.content)
        emb, topic = _topic_features(asks, per_prompt_cluster, config)
        task.advance()
    mask_null = pa.array(~valid)
    out = {name: pa.array(col[idx] if n_uniq else np.zeros(len(idx), np.int64), mask=~valid)
           for name, col in content.items()}
    out.update({
        "template": pa.array(per_prompt_cluster[idx] if n_uniq else np.zeros(len(idx), np.int64), mask=~valid),
    })
    t = topic[idx] if n_uniq else np.full(len(idx), -1)
    out["topic"] = pa.array(t, mask=np.logical_or(~valid, t < 0))
    e = emb[idx] if n_uniq else np.full((len(idx), EMBED_DIM), np.nan, np.float32)
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
        "end_user": t.column("user"),
    }
    derived["hour"] = pc.subtract(derived["hour"], pc.multiply(pc.divide(derived["hour"], 24), 24))
    derived.update(_text_columns(t.column("prompt"), config, progress))
    for name, col in derived.items():
        t = t.append_column(name, col)
    return t
