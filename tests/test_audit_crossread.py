"""Cross-tokenizer reading mode: a suspect with its own tokenizer is read through text.

The null (suspect independent of the key) must stay exact: predictions may depend only on the
prefix before a position, p-values of an innocent foreign-tokenizer model are uniform across keys,
and a tiny student with its own BPE trained on watermarked text is found.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from distillscope.audit import cross_tokenizer_predictions, prepare_texts, select_reading_pairs
from distillscope.audit.crossread import _topk_at, _Job
from distillscope.watermark import WatermarkKey, make_scheme

pytestmark = pytest.mark.usefixtures("torch_one_thread")

PROMPTS = [f"Question {i}: say something about item {i}." for i in range(16)]


def _bpe(texts, vocab_size=400):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def _foreign_model(tokenizer, out_dir, seed, texts=None, steps=0):
    """A tiny Llama with its own tokenizer, optionally trained (full batch) on ``texts``; saved and loaded."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from distillscope.teacher import load_model

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    if texts:
        seqs = [tokenizer(t, add_special_tokens=True)["input_ids"] for t in texts]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
        labels = torch.full((len(seqs), width), -100)
        for r, s in enumerate(seqs):
            ids[r, :len(s)], labels[r, :len(s)] = torch.tensor(s), torch.tensor(s)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(steps):
            model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return load_model(str(out_dir), dtype="float32")


@pytest.fixture(scope="module")
def ours(model_settings):
    from distillscope.teacher import load_model

    return load_model("tiny:0", settings=model_settings, dtype="float32")


def _corpus(ours, key: WatermarkKey, n=12, tokens=24, seed=0):
    from distillscope.teacher import SamplingParams, Teacher

    scheme = make_scheme("kgw", key, gamma=0.25, delta=4.0, context_width=1)
    gens = Teacher(ours, watermark=scheme).generate(PROMPTS[:n], SamplingParams(max_new_tokens=tokens, temperature=1.0,
                                                                                top_k=50, seed=seed))
    return scheme, [(p, g.text) for p, g in zip(PROMPTS[:n], gens) if g.text]


def _p(scheme, ours, suspect, records) -> tuple[float, int]:
    texts = prepare_texts(records, ours.tokenizer, suspect)
    preds = cross_tokenizer_predictions(texts, ours.tokenizer, suspect)
    sel = select_reading_pairs([t.ours for t in texts], preds, scheme.context_width)
    det = scheme.detector(ours.tokenizer).score_pairs(sel.pairs, dedup=True)
    return det.p_value, det.n_scored


def test_output_layer_at_positions_matches_full_logits(ours, tmp_path):
    tok = _bpe(["some words and more words " * 20, "another line of text " * 20])
    suspect = _foreign_model(tok, tmp_path / "m", seed=1)
    seqs = [tok("some words and more")["input_ids"], tok("another line")["input_ids"]]
    jobs = [_Job(s, {p: [] for p in range(len(s))}) for s in seqs]
    got = _topk_at(suspect, jobs, 3, batch_size=2, progress=__import__("distillscope.progress").progress.NULL_PROGRESS)
    full = suspect.next_token_topk(seqs, 3)
    for g, f in zip(got, full):
        for pos, top in g.items():
            assert top[0] == int(f.ids[pos][0]) and set(top) == set(int(x) for x in f.ids[pos])


def test_predictions_depend_only_on_the_prefix(ours, tmp_path):
    """Changing the answer after position t never changes the predictions at positions <= t: the
    suspect never sees (its tokenization of) what comes after the prefix."""
    _, records = _corpus(ours, WatermarkKey(bytes(range(32))), n=4)
    tok = _bpe([p + " " + a for p, a in records] * 3)
    suspect = _foreign_model(tok, tmp_path / "m", seed=2)
    prompt, answer = records[0]
    ids = ours.tokenizer.encode(answer, add_special_tokens=False)
    cut = len(ids) // 2
    altered = ours.tokenizer.decode(ids[:cut]) + " completely different ending text"
    base = cross_tokenizer_predictions(prepare_texts([(prompt, answer)], ours.tokenizer, suspect), ours.tokenizer,
                                       suspect, k=2)[0]
    other_texts = prepare_texts([(prompt, altered)], ours.tokenizer, suspect)
    other = cross_tokenizer_predictions(other_texts, ours.tokenizer, suspect, k=2)[0]
    same = min(cut, len(other_texts[0].ours.answer_ids))
    assert list(other_texts[0].ours.answer_ids[:same]) == list(ids[:same])
    assert base[:same + 1] == other[:same + 1]
    assert sum(bool(p) for p in base) >= len(base) // 2  # most positions do give a prediction


@pytest.mark.slow
def test_innocent_foreign_model_is_uniform_across_keys(ours, tmp_path):
    """One innocent model with its own BPE, 30 corpora each watermarked with a fresh key: p-values
    under each corpus's own key are uniform (exact test under H0)."""
    tok = _bpe([f"{p} some answer text with words {i}" for i, p in enumerate(PROMPTS)] * 4)
    suspect = _foreign_model(tok, tmp_path / "m", seed=3)
    ps, ns = [], []
    for i in range(30):
        scheme, records = _corpus(ours, WatermarkKey(bytes((i * 7 + j) % 256 for j in range(32))), n=6, seed=i)
        p, n = _p(scheme, ours, suspect, records)
        ps.append(p)
        ns.append(n)
    assert min(ns) >= 10
    assert stats.kstest(ps, "uniform", alternative="greater").pvalue > 0.01
    assert np.mean(np.array(ps) <= 0.05) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(ps))


@pytest.mark.slow
def test_foreign_tokenizer_student_is_found(ours, tmp_path):
    scheme, records = _corpus(ours, WatermarkKey(bytes(range(3, 35))), n=16, tokens=32)
    texts = [f"{p}{a}" for p, a in records]
    tok = _bpe(texts * 2, vocab_size=600)
    student = _foreign_model(tok, tmp_path / "student", seed=4, texts=texts, steps=150)
    innocent = _foreign_model(tok, tmp_path / "innocent", seed=5)
    p_student, n_student = _p(scheme, ours, student, records)
    p_innocent, _ = _p(scheme, ours, innocent, records)
    assert p_student < 1e-4, (p_student, n_student)
    assert p_innocent > 1e-3


def test_predicting_only_first_appearances_selects_the_same_tuples(ours, tmp_path):
    scheme, records = _corpus(ours, WatermarkKey(bytes(range(32))), n=6)
    tok = _bpe([p + " " + a for p, a in records] * 3)
    suspect = _foreign_model(tok, tmp_path / "m", seed=6)
    texts = prepare_texts(records, ours.tokenizer, suspect)
    every = cross_tokenizer_predictions(texts, ours.tokenizer, suspect, continuation=2)
    only = cross_tokenizer_predictions(texts, ours.tokenizer, suspect, continuation=2, context_width=1)
    assert sum(map(bool, sum(only, []))) < sum(map(bool, sum(every, [])))     # fewer positions predicted
    a = select_reading_pairs([t.ours for t in texts], every, 1)
    b = select_reading_pairs([t.ours for t in texts], only, 1)
    assert a.pairs == b.pairs and a.n_seen_windows >= b.n_seen_windows
