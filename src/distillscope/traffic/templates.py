"""Prompt templates: masking, MinHash signatures and LSH near-duplicate clusters (datasketch).

A *template* is what is left of a prompt once the filled slots are masked: numbers become
``<n>``, quoted spans ``<q>``. Prompts whose masked texts are near-duplicates (MinHash Jaccard
estimate over word 3-grams at or above ``threshold``) fall in one template cluster. Signatures
are computed once per distinct masked text, so a templated log of millions of rows costs only
as much as its distinct templates.

At scale the per-text Python of datasketch (one ``MinHash`` object and one LSH insert per text)
dominated a scan, so :func:`signatures` computes the same signatures in batches with numpy
(each distinct shingle is hashed once with datasketch's own hash function, the permutations are
datasketch's, and a check against ``datasketch.MinHash`` guards every call), and
:func:`cluster_templates` bands them with numpy into the buckets a ``MinHashLSH`` index with the
same ``(b, r)`` would hold, choosing each bucket's representative exactly as iterating that
index does -- so the clusters are the ones datasketch gives, only faster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasketch import MinHash, MinHashLSH
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from distillscope.errors import TrafficError
from distillscope.records import last_user_text  # noqa: F401  (re-exported: the ask of a logged prompt)
from distillscope.traffic.text_kernels import ASCII_SPACE, map_strings, scatter

_QUOTED = re.compile(r"\"[^\"]{1,2000}\"|“[^”]{1,2000}”|'[^']{4,2000}'|`[^`]{1,2000}`")
_NUMBER = re.compile(r"[$€£]?\d+(?:[.,]\d+)*%?")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z][a-z'-]{2,}")
# RE2 allows repeats up to 1000, so the fast path drops the bound of 2000 and only takes strings
# too short to hold a longer quoted span; longer ones go through ``mask`` itself.
_QUOTED_RE2 = re.sub(r"\{(\d),2000\}", r"{\1,}", _QUOTED.pattern)
_QUOTED_MAX_TEXT = 2002


def mask(text: str) -> str:
    """Mask filled slots: quoted spans -> ``<q>``, numbers -> ``<n>``; lower-case, single spaces."""
    text = _QUOTED.sub(" <q> ", text)
    text = _NUMBER.sub(" <n> ", text)
    return _SPACE.sub(" ", text.lower()).strip()


def _mask_ascii(texts: pa.Array) -> pa.Array:
    out = pc.replace_substring_regex(texts, _QUOTED_RE2, " <q> ")
    out = pc.replace_substring_regex(out, _NUMBER.pattern.replace(r"\d", "[0-9]"), " <n> ")
    out = pc.replace_substring_regex(pc.ascii_lower(out), ASCII_SPACE + "+", " ")
    return pc.utf8_trim(out, " ")


def mask_array(texts: pa.Array) -> pa.Array:
    """:func:`mask` of every string of an Arrow array (RE2 on ASCII strings, Python on the rest)."""
    return map_strings(texts, _mask_ascii, mask, pa.string(), max_length=_QUOTED_MAX_TEXT)


def shingles(masked: str, k: int = 3) -> list[bytes]:
    words = masked.split(" ")
    if len(words) <= k:
        return [masked.encode()]
    return [" ".join(words[i:i + k]).encode() for i in range(len(words) - k + 1)]


@dataclass(frozen=True)
class TemplateConfig:
    """MinHash/LSH settings. num_perm: permutations (64). threshold: Jaccard for 'same template' (0.5).
    shingle: words per shingle (3). seed: MinHash seed (1)."""

    num_perm: int = 64
    threshold: float = 0.5
    shingle: int = 3
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise TrafficError(f"template threshold={self.threshold} must be in (0, 1)", hint="e.g. 0.5")
        if self.num_perm < 16:
            raise TrafficError(f"template num_perm={self.num_perm} is too small", hint="use 16 or more (64)")


def minhashes(masked_texts: list[str], config: TemplateConfig) -> list[MinHash]:
    """datasketch MinHash of each masked text (word shingles): the reference :func:`signatures` matches."""
    sets = (shingles(t, config.shingle) for t in masked_texts)
    return list(MinHash.generator(sets, num_perm=config.num_perm, seed=config.seed))


def _shingle_table(masked: pa.Array, k: int) -> tuple[np.ndarray, pa.Array]:
    """(text index, shingle) pairs of :func:`shingles`, text by text, as arrays."""
    words = pc.split_pattern(masked, " ")
    lengths = pc.list_value_length(words).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(words)
    word_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n_grams = np.where(lengths > k, lengths - k + 1, 1)
    text_ids = np.repeat(np.arange(len(masked)), n_grams)
    gram_start = np.concatenate([[0], np.cumsum(n_grams)[:-1]])
    pos = np.arange(len(text_ids)) - np.repeat(gram_start, n_grams) + np.repeat(word_start, n_grams)
    is_long = np.repeat(lengths > k, n_grams)
    long_pos, short_at = pos[is_long], np.flatnonzero(~is_long)
    joined = pc.binary_join_element_wise(*(flat.take(pa.array(long_pos + i)) for i in range(k)), " ")
    short = masked.take(pa.array(text_ids[short_at]))
    return text_ids, scatter([joined.cast(pa.string()), short.cast(pa.string())], [np.flatnonzero(is_long), short_at])


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: the pre-mix of datasketch's ``affine32`` scheme."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(masked_texts: list[str] | pa.Array, config: TemplateConfig, *, batch: int = 20_000) -> np.ndarray:
    """MinHash signatures (n x num_perm, uint32) equal to :func:`minhashes`' hash values, in batches.

    Each batch hashes its distinct shingles once (datasketch's hash function), permutes them with
    datasketch's permutations (uint32 arithmetic, as datasketch does) and takes the minimum per
    text with ``np.minimum.reduceat``. The first text is checked against ``datasketch.MinHash``,
    so a datasketch release with another scheme fails loudly instead of changing the clusters.
    """
    texts = masked_texts if isinstance(masked_texts, pa.Array) else pa.array(masked_texts, pa.string())
    reference = MinHash(num_perm=config.num_perm, seed=config.seed)
    if reference.scheme != "affine32":
        raise TrafficError(f"datasketch MinHash scheme {reference.scheme!r} is not supported by the batched "
                           "signatures", hint="pin datasketch to a release whose default scheme is affine32")
    a, b = (np.asarray(p, dtype=np.uint32) for p in reference.permutations)
    sig = np.empty((len(texts), config.num_perm), dtype=np.uint32)
    for lo in range(0, len(texts), batch):
        chunk = texts.slice(lo, batch)
        chunk = pa.concat_arrays([chunk]) if chunk.offset else chunk
        text_ids, grams = _shingle_table(chunk, config.shingle)
        enc = pc.dictionary_encode(grams)
        distinct = enc.dictionary.cast(pa.binary()).to_pylist()
        hv = np.fromiter((reference.hashfunc(x) for x in distinct), dtype=np.uint32, count=len(distinct))
        permuted = _fmix32(hv)[:, None] * a[None, :] + b[None, :]
        starts = np.flatnonzero(np.r_[True, text_ids[1:] != text_ids[:-1]])
        gathered = permuted[enc.indices.to_numpy(zero_copy_only=False)]
        sig[lo:lo + len(chunk)] = np.minimum.reduceat(gathered, starts, axis=0)
    if len(texts):
        first = texts[0].as_py()
        check = minhashes([first], config)[0].hashvalues
        if not np.array_equal(check, sig[0]):
            raise TrafficError("batched MinHash signatures disagree with datasketch",
                               hint="pin the datasketch version distillscope was tested with")
    return sig


def _bucket_edges(band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (representative, member) of one LSH band table, as ``MinHashLSH`` iteration gives them.

    Texts whose band values are equal share a bucket. datasketch keeps a bucket as a Python
    ``set`` filled in insertion order (ascending text index) and this module links every member
    to the first one its iteration yields -- which is not always the smallest index -- so the
    representative is taken from the same set.
    """
    _, inverse, counts = np.unique(band, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    members = np.flatnonzero(counts[inverse] > 1)
    if len(members) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    groups = inverse[members]
    order = np.argsort(groups, kind="stable")
    members, groups = members[order], groups[order]
    bounds = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1], True])
    member_list = members.tolist()
    firsts = np.array([next(iter(set(member_list[s:e]))) for s, e in zip(bounds[:-1], bounds[1:])], np.int64)
    reps = np.repeat(firsts, np.diff(bounds))
    keep = reps != members
    return reps[keep], members[keep]


def cluster_templates(masked_texts: list[str] | pa.Array, config: TemplateConfig = TemplateConfig()) -> np.ndarray:
    """Template cluster label per distinct masked text (LSH candidates verified by Jaccard estimate).

    Buckets are those of ``datasketch.MinHashLSH(threshold, num_perm)`` (its ``b`` bands of ``r``
    rows); candidates are verified by the signature agreement, and connected components of the
    verified pairs are the clusters.
    """
    n = len(masked_texts)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sig = signatures(masked_texts, config)
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    rows, cols = [], []
    for start, end in lsh.hashranges:
        band = np.ascontiguousarray(sig[:, start:end]).view(np.dtype((np.void, 4 * (end - start)))).ravel()
        r, c = _bucket_edges(band)
        rows.append(r)
        cols.append(c)
    a, b = np.concatenate(rows), np.concatenate(cols)
    if len(a):
        similar = (sig[a] == sig[b]).mean(axis=1) >= config.threshold
        a, b = a[similar], b[similar]
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def content_words(text: str) -> list[str]:
    """Lower-case words of three or more letters (the raw material of topic features)."""
    return _WORD.findall(text.lower())
