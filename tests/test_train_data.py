"""Harvest-store reading, tokenizer checks and batching for training; store/tokenizer helpers
that test_train.py and test_eval.py reuse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from distillscope.distill.kd_data import (KDCollator, build_examples, read_store, split_heldout, topk_arrays)
from distillscope.distill.student import check_tokenizer
from distillscope.errors import InputDataError

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CAPITALS = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Japan", "Tokyo"),
            ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Norway", "Oslo")]


def qa_pairs(n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        if i % 2 == 0:
            country, city = CAPITALS[(i // 2) % len(CAPITALS)]
            out.append((f"What is the capital of {country}?", f"The capital of {country} is {city}."))
        else:
            a, b = i % 7, (3 * i) % 5
            out.append((f"What is {a} + {b}?", f"{a} + {b} = {a + b}."))
    return out


def make_tokenizer(directory: Path, vocab_size: int = 400, corpus_extra: tuple[str, ...] = ()):
    """A small byte-level BPE tokenizer with a chat template, saved as an HF directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size,
                                  special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [q + " " + a for q, a in qa_pairs(40)] + ["user assistant"] + list(corpus_extra)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)
    return fast


def make_store(directory: Path, tokenizer, n: int = 40, *, ids: bool = True, topk: str | None = "ids",
               failed: int = 0) -> Path:
    """A harvest store of ``n`` ok records (plus ``failed`` failures) in the harvest format.

    ``topk``: "ids" (top_logprob_ids), "strings" (top_logprobs as token strings) or None. The
    synthetic teacher puts 0.7 on the answer token, 0.1/0.05/0.05 on three neighbours.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps({
        "format": "distillscope-harvest", "version": 1, "endpoint": "http://test", "model": "synthetic",
        "params": {"logprobs": 4}}))
    vocab = len(tokenizer)
    rows = []
    for i, (q, a) in enumerate(qa_pairs(n)):
        tid = tokenizer(a, add_special_tokens=False)["input_ids"]
        top = [[[t, math.log(0.7)], [(t + 1) % vocab, math.log(0.1)], [(t + 2) % vocab, math.log(0.05)],
                [(t + 3) % vocab, math.log(0.05)]] for t in tid]
        rec = {"id": f"r{i:04d}", "status": "ok", "prompt": q, "messages": [{"role": "user", "content": q}],
               "completion": a, "finish_reason": "stop", "tokens": [tokenizer.decode([t]) for t in tid],
               "token_ids": tid if ids else None, "top_logprobs": None, "top_logprob_ids": None,
               "usage": {"completion_tokens": len(tid)}, "error": None, "attempts": 1}
        if topk == "ids":
            rec["top_logprob_ids"] = top
        elif topk == "strings":
            rec["top_logprobs"] = [[[tokenizer.decode([t]), lp] for t, lp in pos] for pos in top]
        rows.append(rec)
    for j in range(failed):
        rows.append({"id": f"f{j}", "status": "failed", "prompt": "x", "completion": None, "error": "boom"})
    (directory / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


@pytest.fixture
def tok(tmp_path):
    return make_tokenizer(tmp_path / "tok")


def test_read_store_keeps_latest_ok_records(tmp_path, tok):
    store = make_store(tmp_path / "s", tok, n=6, failed=2)
    with (store / "records.jsonl").open("a") as fh:     # a retry that failed after an ok answer
        fh.write(json.dumps({"id": "r0000", "status": "failed", "prompt": "x", "completion": None}) + "\n")
    recs = read_store(store)
    assert sorted(r["id"] for r in recs) == [f"r{i:04d}" for i in range(1, 6)]


@pytest.mark.parametrize("corruption,match", [
    ("not json\n", "line 7 is not valid JSON"),
    (json.dumps({"id": "z", "status": "ok", "prompt": "p", "completion": "c", "token_ids": [1, 2],
                 "top_logprob_ids": [[[1, -0.1]]]}) + "\n", "one list per completion token"),
    (json.dumps({"id": "y", "status": "ok", "prompt": "p", "completion": None}) + "\n", "no completion"),
])
def test_corrupt_store_is_a_clear_error(tmp_path, tok, corruption, match):
    store = make_store(tmp_path / "s", tok, n=6)
    with (store / "records.jsonl").open("a") as fh:
        fh.write(corruption)
    with pytest.raises(InputDataError, match=match):
        read_store(store)


def test_not_a_store(tmp_path):
    with pytest.raises(InputDataError, match="not a harvest store"):
        read_store(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    (tmp_path / "records.jsonl").write_text("")
    with pytest.raises(InputDataError, match="expected 'distillscope-harvest'"):
        read_store(tmp_path)


def test_heldout_split_is_deterministic_and_disjoint(tmp_path, tok):
    recs = read_store(make_store(tmp_path / "s", tok, n=200))
    train, held = split_heldout(recs, 0.2)
    train2, held2 = split_heldout(list(reversed(recs)), 0.2)
    assert {r["id"] for r in held} == {r["id"] for r in held2}
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert 20 <= len(held) <= 60


def test_tokenizer_check_detects_mismatch(tmp_path, tok):
    recs = read_store(make_store(tmp_path / "s", tok, n=10))
    assert check_tokenizer(tok, recs).compatible
    other = make_tokenizer(tmp_path / "other", vocab_size=300, corpus_extra=("zebra quantum " * 20,))
    check = check_tokenizer(other, recs)
    assert not check.compatible and check.reason


def test_string_topk_maps_onto_vocabulary(tmp_path, tok):
    exact = read_store(make_store(tmp_path / "a", tok, n=4, topk="ids"))
    strings = read_store(make_store(tmp_path / "b", tok, n=4, topk="strings"))
    ids_a, lps_a, _ = topk_arrays(exact[1], None)
    from distillscope.distill.kd_data import TokenMapper

    ids_b, lps_b, unmapped = topk_arrays(strings[1], TokenMapper(tok))
    assert unmapped == 0
    for row_a, row_b, lp_a, lp_b in zip(ids_a, ids_b, lps_a, lps_b):
        assert dict(zip(row_a.tolist(), lp_a.tolist())) == pytest.approx(dict(zip(row_b.tolist(), lp_b.tolist())))


def test_collator_aligns_labels_and_topk(tmp_path, tok):
    recs = read_store(make_store(tmp_path / "s", tok, n=3))
    data = build_examples(recs, tok, use_teacher_ids=True, with_topk=True, max_length=128)
    batch = KDCollator(tok.pad_token_id, with_topk=True)(data.examples)
    ex = data.examples[0]
    p, a = len(ex.prompt_ids), len(ex.answer_ids)
    assert ex.answer_ids[:-1] == tuple(recs[0]["token_ids"]) and ex.answer_ids[-1] == tok.eos_token_id
    assert batch["labels"][0, :p].eq(-100).all()
    assert batch["labels"][0, p:p + a].tolist() == list(ex.answer_ids)
    # the top-1 teacher id at each answer position is the answer token itself
    assert batch["topk_ids"][0, p:p + a - 1, 0].tolist() == recs[0]["token_ids"]
    assert torch.isinf(batch["topk_logprobs"][0, p + a - 1]).all()      # the appended EOS has no top-k
    assert batch["attention_mask"].sum().item() == sum(len(e.prompt_ids) + len(e.answer_ids) for e in data.examples)


def test_strings_only_store_trains_on_the_same_ids(tmp_path, tok):
    """An endpoint without token ids: tokens and top-k strings map back onto the same ids."""
    exact = build_examples(read_store(make_store(tmp_path / "a", tok, n=4)), tok, use_teacher_ids=True,
                           with_topk=True, max_length=128)
    strings = build_examples(read_store(make_store(tmp_path / "b", tok, n=4, ids=False, topk="strings")), tok,
                             use_teacher_ids=True, with_topk=True, max_length=128)
    for a, b in zip(exact.examples, strings.examples):
        assert a.answer_ids == b.answer_ids
        assert sorted(a.topk_ids[0].tolist()) == sorted(b.topk_ids[0].tolist())
    assert check_tokenizer(tok, read_store(tmp_path / "b")).compatible
