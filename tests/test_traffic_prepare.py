"""The vectorised text columns equal their per-prompt Python definition (tests/traffic_prepare_reference.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import traffic_prepare_reference as reference

from distillscope.traffic import SimulationConfig, simulate
from distillscope.traffic.prepare import EMBED_COLUMNS, prepare
from distillscope.traffic.schema import load_log
from distillscope.traffic.templates import TemplateConfig, cluster_templates, mask, mask_array, minhashes, signatures

# Strings on both sides of the ASCII fast path: Unicode whitespace and case, long quoted spans,
# chats, empty and null prompts.
ODD = ["Say \"hello world\" 3 times", "İstanbul is 'quite far' away, think it through", "Ünïcödé\u2003spaces  ok",
       "x" * 10 + '"' + "y" * 2500 + '"', 'a "' + "b" * 1999 + '" c', "ſtep by ſtep please", "", "  ",
       '[{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"}, '
       '{"role": "user", "content": "Show your work for 12 apples"}]', "[not json]", "Kelvin \u212a 42%",
       "tabs\tand\x1cseparators\x0bhere", "$1,234.50 or €3 or 7.5%", "`code span` and “curly quoted”"]


def _log(prompts: list[str | None]) -> pa.Table:
    n = len(prompts)
    return pa.table({"request_id": [f"r{i}" for i in range(n)], "ts": pa.array(np.arange(n) * 1_000_000,
                     pa.timestamp("us", tz="UTC")), "account_id": [f"a{i % 3}" for i in range(n)], "prompt": prompts})


def _assert_same(log: pa.Table) -> None:
    prepared = prepare(load_log(log))
    ref = reference.text_columns(prepared.column("prompt"))
    for col in ("cot", "template", "topic"):
        got = prepared.column(col).fill_null(-1).to_numpy()
        assert np.array_equal(got, ref[col]), col
    emb = np.stack([prepared.column(c).to_numpy(zero_copy_only=False) for c in EMBED_COLUMNS], axis=1)
    assert np.array_equal(np.isnan(emb), np.isnan(ref["embedding"]))
    assert np.nanmax(np.abs(emb - ref["embedding"]), initial=0.0) < 1e-6   # float32 sums in another order


def test_mask_array_equals_mask_on_odd_strings():
    assert mask_array(pa.array(ODD)).to_pylist() == [mask(s) for s in ODD]


def test_signatures_equal_datasketch():
    texts = [mask(s) for s in ODD] + ["a b", "one two three four five", "one two three four six"]
    sig = signatures(texts, TemplateConfig(), batch=4)
    assert np.array_equal(sig, np.stack([m.hashvalues for m in minhashes(texts, TemplateConfig())]))


def test_cluster_templates_equal_datasketch_lsh():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    frames = [list(rng.choice(vocab, size=int(rng.integers(20, 31)))) for _ in range(60)]
    texts = []
    for _ in range(4000):    # templates with 1-3 words swapped: near-duplicates spread over the index range
        words = list(frames[int(rng.integers(len(frames)))])
        for _ in range(int(rng.integers(1, 3))):
            words[int(rng.integers(len(words)))] = str(rng.choice(vocab))
        texts.append(" ".join(words))
    texts = list(dict.fromkeys(texts))
    got = cluster_templates(texts)
    assert np.array_equal(got, reference.cluster_templates(texts))
    assert 60 <= len(set(got.tolist())) < len(texts) / 2     # real clusters, not all singletons


def test_odd_prompts_give_the_reference_columns():
    _assert_same(_log(ODD + [None, ODD[0], ODD[8]]))


@pytest.mark.slow
def test_simulated_log_gives_the_reference_columns():
    """A fixed simulated log (about 40k rows, every behaviour): same clusters, flags, topics, embeddings."""
    log = simulate(SimulationConfig(n_benign=600, n_batch=6, n_eval=3, n_student_groups=1, days=3, seed=11,
                                    campaigns=(("single", 1), ("paraphrase", 1), ("hydra", 1), ("hydra-cover", 1)))).log
    assert log.num_rows > 20_000
    _assert_same(log)
