"""Prompt templates: masking, MinHash signatures and LSH near-duplicate clusters (datasketch).

A *template* is what is left of a prompt once the filled slots are masked: numbers become
``<n>``, quoted spans ``<q>``. Prompts whose masked texts are near-duplicates (MinHash Jaccard
estimate over word 3-grams at or above ``threshold``) fall in one template cluster. Signatures
are computed once per distinct masked text, so a templated log of millions of rows costs only
as much as its distinct templates.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from distillscope.errors import TrafficError

_QUOTED = re.compile(r"\"[^\"]{1,2000}\"|“[^”]{1,2000}”|'[^']{4,2000}'|`[^`]{1,2000}`")
_NUMBER = re.compile(r"[$€£]?\d+(?:[.,]\d+)*%?")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z][a-z'-]{2,}")


def last_user_text(prompt: str | None) -> str:
    """The text a client asked in this request: the last user message of a chat, or the prompt."""
    if not prompt:
        return ""
    if prompt.startswith("[") and prompt.endswith("]"):
        try:
            messages = json.loads(prompt)
        except ValueError:
            return prompt
        if isinstance(messages, list):
            users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            users = [u for u in users if isinstance(u, str)]
            if users:
                return users[-1]
    return prompt


def mask(text: str) -> str:
    """Mask filled slots: quoted spans -> ``<q>``, numbers -> ``<n>``; lower-case, single spaces."""
    text = _QUOTED.sub(" <q> ", text)
    text = _NUMBER.sub(" <n> ", text)
    return _SPACE.sub(" ", text.lower()).strip()


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
    """datasketch MinHash of each masked text (word shingles)."""
    sets = (shingles(t, config.shingle) for t in masked_texts)
    return list(MinHash.generator(sets, num_perm=config.num_perm, seed=config.seed))


def cluster_templates(masked_texts: list[str], config: TemplateConfig = TemplateConfig()) -> np.ndarray:
    """Template cluster label per distinct masked text (LSH candidates verified by Jaccard estimate)."""
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
                first = members[0]
                rows.extend([first] * (len(members) - 1))
                cols.extend(members[1:])
    if rows:
        a, b = np.asarray(rows), np.asarray(cols)
        similar = (sig[a] == sig[b]).mean(axis=1) >= config.threshold
        a, b = a[similar], b[similar]
    else:
        a = b = np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def content_words(text: str) -> list[str]:
    """Lower-case words of three or more letters (the raw material of topic features)."""
    return _WORD.findall(text.lower())
